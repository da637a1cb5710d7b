package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vhpc/api"
	"vhpc/imagestore"
	"vhpc/imagestore/registrytest"
	"vhpc/jobdata"
)

// fakeClock is a settable Config.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// pushSet uploads files (name -> content) as physics' input file set.
func pushSet(t *testing.T, reg *registrytest.Registry, files map[string]string) string {
	t.Helper()
	return pushSetTo(t, reg, jobdata.RepositoryName("physics"), reg.Options(), files)
}

// pushSetTo uploads files (name -> content) as a file set to repository
// repo with opts.
func pushSetTo(t *testing.T, reg *registrytest.Registry, repo string, opts imagestore.Options, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	var stages []jobdata.Stage
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		stages = append(stages, jobdata.Stage{From: name})
	}
	c, err := jobdata.Collect(dir, stages, jobdata.CollectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := jobdata.Push(context.Background(), reg.URL, repo, c, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p.Digest
}

// TestInputsQuotaAndRetention: the master checks a submission's file set
// against its stageIn and the department's data quota (a set counted
// once), and once a finished job's retention is over it deletes its sets
// from the store, keeps a set another job still names, and shows when.
func TestInputsQuotaAndRetention(t *testing.T) {
	reg := registrytest.Start(t)
	clock := &fakeClock{now: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
	ts := runMember(t, Config{ID: "t1", DataDir: t.TempDir(), RaftAddr: "127.0.0.1:0", ImageRegistry: reg.URL, RegistryTokens: reg.Issuer,
		DataQuotas: map[string]int64{"physics": 100}, Retention: time.Hour, RetentionInterval: 20 * time.Millisecond, Now: clock.Now})
	ctx := context.Background()
	if err := ts.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	spec := func(file string) []byte {
		return []byte("name: q\ndepartment: physics\nstageIn: [" + file + "]\nscript: cat " + file + "\n")
	}
	tokens := 0
	submit := func(file, set string) (uint64, error) {
		tokens++
		r, err := ts.jobs.Submit(ctx, &api.SubmitRequest{ClientToken: fmt.Sprintf("data-test-token-%04d", tokens), Spec: spec(file), User: "ada", Inputs: set})
		return r.GetJobId(), err
	}
	a := pushSet(t, reg, map[string]string{"a.dat": strings.Repeat("a", 60)})
	b := pushSet(t, reg, map[string]string{"b.dat": strings.Repeat("b", 60)})

	first, err := submit("a.dat", a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := submit("a.dat", a+"x"); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a malformed set: %v; want InvalidArgument", err)
	}
	if _, err := submit("b.dat", a); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "which no stageIn destination") {
		t.Errorf("a set that is not the stageIn: %v; want InvalidArgument", err)
	}
	second, err := submit("a.dat", a) // the same set again: counted once
	if err != nil || second == first {
		t.Fatalf("second job on the same set: %d, %v", second, err)
	}
	if _, err := submit("b.dat", b); status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "quota of 100") {
		t.Fatalf("over the quota: %v; want ResourceExhausted naming it", err)
	}

	// The first job ends; after the retention its set stays, since the
	// second still names it. Once the second ends too, it goes.
	if _, err := ts.jobs.Cancel(ctx, &api.CancelJobRequest{Id: first}); err != nil {
		t.Fatal(err)
	}
	j, _ := ts.jobs.Get(ctx, &api.GetJobRequest{Id: first})
	if exp := j.GetArtifactsExpire(); exp == nil || !exp.AsTime().Equal(clock.Now().Add(time.Hour)) {
		t.Errorf("artifacts_expire %v, want end + 1h", exp)
	}
	clock.advance(2 * time.Hour)
	waitUntil(t, "the first job's artifacts to expire", func() bool {
		j, _ := ts.jobs.Get(ctx, &api.GetJobRequest{Id: first})
		return j.GetArtifactsDeleted() != nil
	})
	if _, err := jobdata.Inspect(ctx, reg.URL, jobdata.RepositoryName("physics"), a, reg.Options()); err != nil {
		t.Fatalf("the set a pending job names was deleted: %v", err)
	}
	if _, err := ts.jobs.Cancel(ctx, &api.CancelJobRequest{Id: second}); err != nil {
		t.Fatal(err)
	}
	clock.advance(2 * time.Hour)
	waitUntil(t, "the second job's artifacts to expire", func() bool {
		j, _ := ts.jobs.Get(ctx, &api.GetJobRequest{Id: second})
		return j.GetArtifactsDeleted() != nil
	})
	if _, err := jobdata.Inspect(ctx, reg.URL, jobdata.RepositoryName("physics"), a, reg.Options()); err == nil {
		t.Fatal("the set is still in the store after both jobs expired")
	}
	if _, err := submit("b.dat", b); err != nil { // the quota has room again
		t.Fatalf("after the retention freed the quota: %v", err)
	}
}

// TestOutputsInTheJobsRepository: an agent stores a job's outputs in the
// job's own repository with its allocation's token, the master records
// where (a report naming another repository is refused and changes
// nothing), the job shows it for fetch, and retention deletes the set
// there.
func TestOutputsInTheJobsRepository(t *testing.T) {
	reg := registrytest.Start(t)
	clock := &fakeClock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	ts := runMember(t, Config{ID: "t1", DataDir: t.TempDir(), RaftAddr: "127.0.0.1:0", ImageRegistry: reg.URL, RegistryTokens: reg.Issuer,
		Retention: time.Hour, RetentionInterval: 20 * time.Millisecond, Now: clock.Now})
	ctx := ctxT(t)
	if err := ts.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	registerNode(t, ts, "n1", 4)
	al := submitAndPlace(t, ts.node, "n1", ts.jobs, "outputs", "name: out\ndepartment: physics\nstageOut: [{from: out.txt}]\nscript: echo hi > out.txt\n")
	tok, err := ts.node.RegistryToken(ctx, &api.RegistryTokenRequest{AllocId: al.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	own := jobdata.OutputRepositoryName("physics", al.GetJob())
	set := pushSetTo(t, reg, own, imagestore.Options{Token: imagestore.StaticToken(tok.GetToken())}, map[string]string{"out.txt": "hi\n"})
	report := func(repo string) error {
		_, err := ts.node.UpdateAllocation(ctx, &api.UpdateAllocationRequest{AllocId: al.GetId(), Node: "n1", Attempt: al.GetAttempt(),
			State: "completed", Outputs: set, OutputBytes: 3, OutputFiles: 1, OutputsRepository: repo})
		return err
	}
	for _, bad := range []string{jobdata.OutputRepositoryName("physics", al.GetJob()+1), jobdata.OutputRepositoryName("chemistry", al.GetJob()), "physics/sim"} {
		if err := report(bad); status.Code(err) != codes.InvalidArgument {
			t.Errorf("outputs reported in %s: %v; want InvalidArgument", bad, err)
		}
	}
	if j, _ := ts.jobs.Get(ctx, &api.GetJobRequest{Id: al.GetJob()}); j.GetState() != "running" && j.GetState() != "starting" && j.GetState() != "scheduled" {
		t.Fatalf("a refused report changed the job: %s", j.GetState())
	}
	if err := report(own); err != nil {
		t.Fatal(err)
	}
	j, err := ts.jobs.Get(ctx, &api.GetJobRequest{Id: al.GetJob()})
	if err != nil {
		t.Fatal(err)
	}
	if got := j.GetAllocations()[0]; got.GetOutputs() != set || got.GetOutputsRepository() != own {
		t.Fatalf("job shows outputs %s in %q; want %s in %s", got.GetOutputs(), got.GetOutputsRepository(), set, own)
	}
	clock.advance(2 * time.Hour)
	waitUntil(t, "the job's artifacts to expire", func() bool {
		j, _ := ts.jobs.Get(ctx, &api.GetJobRequest{Id: al.GetJob()})
		return j.GetArtifactsDeleted() != nil
	})
	if _, err := jobdata.Inspect(ctx, reg.URL, own, set, reg.Options()); err == nil {
		t.Fatal("the outputs are still in the job's repository after its retention")
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
