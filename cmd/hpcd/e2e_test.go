package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vhpc/api"
	"vhpc/client"
	"vhpc/imagestore"
	"vhpc/jobdata"
	"vhpc/nodeagent/runner"
	"vhpc/nodeagent/vm"
)

// e2eCluster is `hpcd dev` (master + in-process agent, real libvirt and
// QEMU) plus the hpcsub binary, as a user would run them.
type e2eCluster struct {
	t          testing.TB
	hpcd, sub  string
	data, addr string
	raftAddr   string
	proc       *proc
	jobs       api.JobServiceClient
	// extra are more hpcd dev flags (a policy under test).
	extra []string
}

func requireLibvirt(t testing.TB) {
	t.Helper()
	if err := exec.Command("virsh", "-c", "qemu:///system", "version").Run(); err != nil {
		if os.Getenv("VHPC_E2E") == "1" {
			t.Fatalf("VHPC_E2E=1 but libvirt is not reachable (run scripts/start-libvirt.sh): %v", err)
		}
		t.Skipf("libvirt not reachable (%v); set VHPC_E2E=1 to make this a failure", err)
	}
}

func buildBinaries(t testing.TB, dir string) (hpcd, hpcsub string) {
	t.Helper()
	withGuest(t, dir)
	return goBuild(t, dir, "."), goBuild(t, dir, "../hpcsub")
}

// startDev starts "hpcd dev" (master and one agent) with the given extra
// flags and waits for its node.
func startDev(t testing.TB, extra ...string) *e2eCluster {
	t.Helper()
	requireLibvirt(t)
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} { // QEMU's user traverses into job dirs
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	c := &e2eCluster{t: t, data: filepath.Join(dir, "data"), addr: freePort(t), raftAddr: freePort(t), extra: extra}
	c.hpcd, c.sub = buildBinaries(t, dir)
	// hpcd dev is secure by default: its user credential goes here, and
	// this test's clients (hpcsub, hpc, dialServing) use it.
	creds := filepath.Join(dir, "credentials")
	c.extra = append(c.extra, "--credentials-out", creds)
	t.Setenv(client.CredentialsEnv, creds)
	c.start()
	c.jobs = api.NewJobServiceClient(dialServing(t, c.addr))
	c.waitFor(t, "the node to register", func() bool {
		n, err := c.jobs.Nodes(context.Background(), &api.NodesRequest{})
		return err == nil && len(n.GetNodes()) == 1 && n.GetNodes()[0].GetState() == "ready"
	})
	t.Cleanup(c.checkNothingLeft)
	return c
}

func (c *e2eCluster) start() {
	args := append([]string{"dev", "--data-dir", c.data, "--addr", c.addr, "--raft-addr", c.raftAddr,
		"--http", "", "--hypervisor", "tcg", "--log-level", "warn"}, c.extra...)
	cmd := exec.Command(c.hpcd, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.proc = &proc{cmd: cmd, addr: c.addr}
	c.t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
}

// hpcsub runs the CLI in dir and returns its exit status and output.
func (c *e2eCluster) hpcsub(dir string, args ...string) (int, string, string) {
	cmd := exec.Command(c.sub, append([]string{"--addr", c.addr}, args...)...)
	cmd.Dir = dir
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatal(err)
	}
	return code, out.String(), errOut.String()
}

func (c *e2eCluster) job(id uint64) *api.Job {
	j, err := c.jobs.Get(context.Background(), &api.GetJobRequest{Id: id})
	if err != nil {
		return &api.Job{State: "unknown: " + err.Error()}
	}
	return j
}

// waitFor polls cond until it holds, failing after two minutes (guests
// boot under TCG here).
func (c *e2eCluster) waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	waitWithin(t, 2*time.Minute, what, cond)
}

// waitWithin polls cond every 200 ms until it holds, failing after d.
func waitWithin(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !pollWithin(d, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// pollWithin polls cond every 200 ms until it holds (true) or d has
// passed (false), for callers that describe a timeout themselves.
func pollWithin(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
	return true
}

// domains lists the libvirt guests of the agents whose state directories
// are given. Tests in other packages boot guests at the same time (go test
// runs packages in parallel), so a test only ever looks at its own
// agents' namespaces.
func domains(t testing.TB, agentStateDirs ...string) []string {
	out, err := exec.Command("virsh", "-c", "qemu:///system", "list", "--all", "--name").Output()
	if err != nil {
		t.Fatalf("virsh list: %v", err)
	}
	var ours []string
	for _, d := range strings.Fields(string(out)) {
		for _, dir := range agentStateDirs {
			if strings.HasPrefix(d, vm.Prefix(runner.DefaultNamespace(dir))) {
				ours = append(ours, d)
				break
			}
		}
	}
	return ours
}

// checkNothingLeft: no guest, job directory or scratch disk of this
// cluster's agent remains once every job has ended.
func (c *e2eCluster) checkNothingLeft() {
	for _, d := range domains(c.t, filepath.Join(c.data, "agent")) {
		c.t.Errorf("guest %s left behind", d)
	}
	jobsDir := filepath.Join(c.data, "agent", "jobs")
	entries, _ := os.ReadDir(jobsDir)
	if len(entries) > 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		c.t.Errorf("job directories left behind in %s: %v", jobsDir, names)
	}
}

func TestE2EJobsRunInGuests(t *testing.T) {
	if testing.Short() {
		t.Skip("boots real guests; skipped with -short")
	}
	c := startDev(t)
	examples, _ := filepath.Abs("../../examples")

	t.Run("hello prints from the guest and exits 0", func(t *testing.T) {
		code, out, errOut := c.hpcsub(examples, "--follow", "hello.yaml")
		if code != 0 || !strings.Contains(out, "hello from the guest: Linux") || !strings.Contains(out, "2 vCPUs") {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		// Progress lines report changes the watcher sees, not every
		// phase: a guest that boots and finishes within one coalesced
		// agent report goes from booting to completed ("running on node"
		// then never shows; CI saw a 7 s hello do that).
		for _, want := range []string{"scheduled on node", "booting guest vhpc-", "completed, exit 0"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("progress lacks %q:\n%s", want, errOut)
			}
		}
		_, logs, _ := c.hpcsub(examples, "logs", "1")
		if !strings.Contains(logs, "hello from the guest") {
			t.Errorf("hpcsub logs 1 = %q", logs)
		}
	})

	t.Run("public/tiny from the catalog is pulled by digest and boots", func(t *testing.T) {
		images := api.NewImageServiceClient(dialServing(t, c.addr))
		c.waitFor(t, "hpcd dev to publish public/tiny", func() bool {
			im, err := images.Get(context.Background(), &api.GetImageRequest{Ref: "public/tiny"})
			return err == nil && im.GetPublic() && strings.HasPrefix(im.GetDigest(), "sha256:")
		})
		dir := t.TempDir()
		// The guest's init mounts what programs expect of Linux: POSIX
		// shared memory on /dev/shm (MPI's intra-node transports) and ptys.
		job := "name: cat\nimage: public/tiny\ncommand: [\"/bin/sh\", \"-c\", \"echo hello from the catalog; grep -E ' /dev/(shm|pts) ' /proc/mounts\"]\n"
		if err := os.WriteFile(filepath.Join(dir, "job.yaml"), []byte(job), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := c.hpcsub(dir, "--follow", "--parsable", "job.yaml")
		if code != 0 || !strings.Contains(out, "hello from the catalog") ||
			!strings.Contains(out, " /dev/shm tmpfs rw,nosuid,nodev") || !strings.Contains(out, " /dev/pts devpts rw,nosuid,noexec") {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		id := strings.Fields(out)[0]
		_, show, _ := c.hpcsub(dir, "show", id)
		if !regexp.MustCompile(`Image:\s+public/tiny:latest @ sha256:[0-9a-f]{64}\n`).MatchString(show) || !strings.Contains(show, "pulled it from the registry") {
			t.Fatalf("hpcsub show %s:\n%s", id, show)
		}
	})

	t.Run("a failing job's exit code propagates", func(t *testing.T) {
		code, _, errOut := c.hpcsub(examples, "--wait", "fail.yaml")
		if code != 3 || !strings.Contains(errOut, "failed, exit 3") {
			t.Fatalf("exit %d, want 3\n%s", code, errOut)
		}
	})

	t.Run("stage-in and stage-out round-trip a file", func(t *testing.T) {
		dir := t.TempDir()
		for _, f := range []string{"stage.yaml", "input.txt"} {
			b, err := os.ReadFile(filepath.Join(examples, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		code, _, errOut := c.hpcsub(dir, "--wait", "stage.yaml")
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, errOut)
		}
		in, _ := os.ReadFile(filepath.Join(dir, "input.txt"))
		got, err := os.ReadFile(filepath.Join(dir, "result.txt"))
		if err != nil || !strings.Contains(string(got), strings.ToUpper(strings.TrimSpace(string(in)))) {
			t.Fatalf("result.txt = %q, %v", got, err)
		}

		// The same inputs again: nothing but the manifest is sent. Then
		// the submit directory disappears before the job runs: the node
		// never reads it, and the outputs come back with hpcsub fetch.
		code, stdout, errOut := c.hpcsub(dir, "--parsable", "stage.yaml")
		if code != 0 || !strings.Contains(errOut, "(0 B sent, the rest was in the store)") {
			t.Fatalf("second submission: exit %d\n%s", code, errOut)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		id, _ := strconv.ParseUint(strings.TrimSpace(stdout), 10, 64)
		c.waitFor(t, "the job of a vanished directory", func() bool { return c.job(id).GetState() == "completed" })
		for _, al := range c.job(id).GetAllocations() { // in the job's own repository, which only its token writes
			if want := jobdata.OutputRepositoryName("default", id); al.GetOutputs() != "" && al.GetOutputsRepository() != want {
				t.Fatalf("outputs of %s stored in %q; want %s", al.GetId(), al.GetOutputsRepository(), want)
			}
		}
		out := t.TempDir()
		if code, _, errOut := c.hpcsub(out, "fetch", strconv.FormatUint(id, 10), "results"); code != 0 {
			t.Fatalf("fetch: exit %d\n%s", code, errOut)
		}
		if again, err := os.ReadFile(filepath.Join(out, "results", "result.txt")); err != nil || string(again) != string(got) {
			t.Fatalf("fetched result.txt = %q, %v; want %q", again, err, got)
		}
	})

	t.Run("a forged submission cannot make a node read a host file", func(t *testing.T) {
		before, err := c.jobs.List(context.Background(), &api.ListJobsRequest{All: true})
		if err != nil {
			t.Fatal(err)
		}
		spec := []byte("name: steal\nstageIn: [{from: passwd, to: passwd}]\nscript: cat passwd\n")
		for name, req := range map[string]*api.SubmitRequest{
			"a submit dir of /etc, no upload": {Spec: spec, SubmitDir: "/etc"},
			"a made-up file set":              {Spec: spec, SubmitDir: "/etc", Inputs: "sha256:" + strings.Repeat("0", 64)},
			"a file set that is not a digest": {Spec: spec, Inputs: "/etc/passwd"},
		} {
			req.ClientToken, req.Filename = strings.Repeat("f", 16)+strconv.Itoa(len(name)), "steal.yaml" // the user is the credential's
			_, err := c.jobs.Submit(context.Background(), req)
			if status.Code(err) != codes.InvalidArgument {
				t.Errorf("%s: %v; want InvalidArgument", name, err)
			}
		}
		after, err := c.jobs.List(context.Background(), &api.ListJobsRequest{All: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(after.GetJobs()) != len(before.GetJobs()) {
			t.Fatalf("%d jobs before, %d after refused submissions", len(before.GetJobs()), len(after.GetJobs()))
		}
	})

	t.Run("a dataset is mounted read-only and pulled once per node", func(t *testing.T) {
		ctx := context.Background()
		info, err := c.jobs.DataStore(ctx, &api.DataStoreRequest{Department: "default"})
		if err != nil {
			t.Fatal(err)
		}
		src := t.TempDir()
		if err := os.MkdirAll(filepath.Join(src, "chr"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, "chr", "1.fa"), []byte(">chr1\nACGT\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		files, err := jobdata.Collect(src, []jobdata.Stage{{From: "chr"}}, jobdata.CollectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		set, err := jobdata.Push(ctx, info.GetRegistry(), jobdata.RepositoryName("default"), files, imagestore.Options{Token: imagestore.StaticToken(info.GetRegistryToken())})
		files.Close()
		if err != nil {
			t.Fatal(err)
		}
		images := api.NewImageServiceClient(dialServing(t, c.addr))
		if _, err := images.Put(ctx, &api.PutImageRequest{Ref: "default/genome:v1", Digest: set.Digest, Kind: "dataset", ClientToken: "dataset-e2e-token-1"}); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		job := "name: ds\ndatasets: [genome:v1]\nscript: |\n  cat /datasets/genome/chr/1.fa\n  if touch /datasets/genome/x 2>/dev/null; then echo WRITABLE; else echo read-only; fi\n"
		if err := os.WriteFile(filepath.Join(dir, "job.yaml"), []byte(job), 0o644); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			code, out, errOut := c.hpcsub(dir, "--follow", "job.yaml")
			if code != 0 || !strings.Contains(out, "ACGT") || !strings.Contains(out, "read-only") || strings.Contains(out, "WRITABLE") {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
		}
		cached, _ := os.ReadDir(filepath.Join(c.data, "agent", "dataset-cache"))
		if len(cached) != 1 || cached[0].Name() != strings.TrimPrefix(set.Digest, "sha256:") {
			t.Errorf("dataset cache holds %v; want the one set, pulled once for both jobs", cached)
		}
		if code, _, errOut := c.hpcsub(dir, "--dry-run", "job.yaml"); code != 0 {
			t.Errorf("dry run: %d %s", code, errOut)
		}
		bad := "name: ds2\nimage: genome:v1\nscript: true\n"
		if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		if code, _, errOut := c.hpcsub(dir, "bad.yaml"); code == 0 || !strings.Contains(errOut, "is a dataset") {
			t.Errorf("a dataset as the image: exit %d %s", code, errOut)
		}
	})

	t.Run("an array's outputs are fetched as frames", func(t *testing.T) {
		dir := t.TempDir()
		b, err := os.ReadFile(filepath.Join(examples, "render.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "render.yaml"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		code, _, errOut := c.hpcsub(dir, "--wait", "render.yaml")
		if code != 0 || !strings.Contains(errOut, "fetched 24 files") {
			t.Fatalf("render: exit %d\n%s", code, errOut)
		}
		for f := 1; f <= 24; f++ {
			got, err := os.ReadFile(filepath.Join(dir, "out", fmt.Sprintf("frame-%04d.txt", f)))
			if err != nil || string(got) != fmt.Sprintf("frame %d of teapot\n", f) {
				t.Errorf("frame %d: %q, %v", f, got, err)
			}
		}
	})

	t.Run("cancel destroys the running guest", func(t *testing.T) {
		dir := t.TempDir()
		spec := "name: sleeper\nwalltime: 10m\nresources:\n  cpusPerTask: 1\nscript: |\n  echo started\n  sleep 600\n"
		if err := os.WriteFile(filepath.Join(dir, "sleep.yaml"), []byte(spec), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := c.hpcsub(dir, "--parsable", "sleep.yaml")
		if code != 0 {
			t.Fatalf("submit: %d %s", code, errOut)
		}
		var id uint64
		if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &id); err != nil {
			t.Fatal(err)
		}
		if !pollWithin(2*time.Minute, func() bool { return c.job(id).GetState() == "running" }) {
			j := c.job(id)
			t.Fatalf("the sleeper is not running after 2 minutes: state %s, reason %q, allocations %v", j.GetState(), j.GetReason(), j.GetAllocations())
		}
		if code, _, errOut := c.hpcsub(dir, "cancel", strings.TrimSpace(out)); code != 0 {
			t.Fatalf("cancel: %d %s", code, errOut)
		}
		c.waitFor(t, "the guest to be destroyed", func() bool {
			j := c.job(id)
			return j.GetState() == "cancelled" && len(j.GetAllocations()) == 1 && j.GetAllocations()[0].GetState() == "cancelled"
		})
	})

	t.Run("hpcd killed with -9 mid-job re-adopts the guest", func(t *testing.T) {
		dir := t.TempDir()
		spec := "name: survivor\nwalltime: 10m\nresources:\n  cpusPerTask: 1\nscript: |\n  echo before\n  sleep 12\n  echo after\n"
		if err := os.WriteFile(filepath.Join(dir, "survivor.yaml"), []byte(spec), 0o644); err != nil {
			t.Fatal(err)
		}
		_, out, _ := c.hpcsub(dir, "--parsable", "survivor.yaml")
		var id uint64
		if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &id); err != nil {
			t.Fatalf("submit: %q", out)
		}
		c.waitFor(t, "the survivor to run", func() bool { return c.job(id).GetState() == "running" })
		before := domains(t, filepath.Join(c.data, "agent"))
		if err := c.proc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = c.proc.cmd.Wait()
		if after := domains(t, filepath.Join(c.data, "agent")); len(after) < len(before) {
			t.Fatalf("the guest died with the agent: before %v, after %v", before, after)
		}
		c.start()
		c.waitFor(t, "the adopted job to end", func() bool {
			j, err := c.jobs.Get(context.Background(), &api.GetJobRequest{Id: id})
			return err == nil && j.GetState() == "completed"
		})
		j := c.job(id)
		if j.GetAttempt() != 1 || len(j.GetAllocations()) != 1 {
			t.Errorf("job restarted instead of being adopted: attempt %d, %d allocations", j.GetAttempt(), len(j.GetAllocations()))
		}
		_, logs, _ := c.hpcsub(dir, "logs", strings.TrimSpace(out))
		if !strings.Contains(logs, "after") || strings.Count(logs, "before") != 1 {
			t.Errorf("output across the restart should hold \"before\" once and \"after\": %q", logs)
		}
	})
}
