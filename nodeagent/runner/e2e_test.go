package runner

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"vhpc/imagestore/registrytest"
	"vhpc/jobdata"
	"vhpc/nodeagent/libvirt"
	"vhpc/nodeagent/vm"
	"vhpc/scheduler/model"
	"vhpc/vmimages/guesttest"
)

// The e2e tests boot real guests through a real libvirtd (QEMU TCG here,
// KVM where the probe says it works). They run whenever libvirtd answers
// on qemu:///system; with VHPC_E2E=1 (CI) an unreachable libvirtd is a
// failure, not a skip. Start libvirt with scripts/start-libvirt.sh.

const e2eURI = "qemu:///system"

// e2eHypervisor probes once per test binary (the probe result is cached in
// a shared directory) so that every test does not pay for a KVM probe.
var e2eHypervisor = sync.OnceValues(func() (string, error) {
	if hv := os.Getenv("VHPC_HYPERVISOR"); hv != "" {
		return hv, nil
	}
	dir := filepath.Join(os.TempDir(), "vhpc-e2e-probe")
	gb, err := e2eGuestBinary()
	if err != nil {
		return "", err
	}
	r, err := New(context.Background(), Config{StateDir: dir, ImageDir: e2eImageDir(), LibvirtURI: e2eURI, GuestBinary: gb, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return "", err
	}
	defer r.Close()
	return r.Hypervisor(), nil
})

// e2eGuestBinary builds hpc-guest once per test binary (the runner itself
// never builds it; see vmimages.FindGuestBinary).
var e2eGuestBinary = sync.OnceValues(func() (string, error) {
	return guesttest.Build(context.Background(), filepath.Join(os.TempDir(), "vhpc-e2e-guest"))
})

// e2eImageDir is shared between runs: images are content-addressed.
func e2eImageDir() string { return filepath.Join(os.TempDir(), "vhpc-e2e-images") }

func libvirtReachable() error {
	c, err := libvirt.Connect(e2eURI)
	if err != nil {
		return err
	}
	return c.Close()
}

func requireLibvirt(t *testing.T) {
	t.Helper()
	if err := libvirtReachable(); err != nil {
		if os.Getenv("VHPC_E2E") == "1" {
			t.Fatalf("VHPC_E2E=1 but libvirt is unreachable: %v", err)
		}
		t.Skipf("e2e: libvirt unreachable (%v); run scripts/start-libvirt.sh, and set VHPC_E2E=1 to make this a failure", err)
	}
}

// newE2ERunner returns a Runner on a fresh state dir, and registers a
// cleanup check: no vhpc- domain, job directory or scratch file remains.
func newE2ERunner(t *testing.T, mod func(*Config)) (*Runner, Config) {
	t.Helper()
	requireLibvirt(t)
	hv, err := e2eHypervisor()
	if err != nil {
		t.Fatalf("settle hypervisor: %v", err)
	}
	gb, err := e2eGuestBinary()
	if err != nil {
		t.Fatalf("hpc-guest: %v", err)
	}
	state := t.TempDir()
	// QEMU runs as libvirt-qemu and must traverse the test's temp dirs.
	for _, d := range []string{filepath.Dir(state), state} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{
		StateDir: state, ImageDir: e2eImageDir(), LibvirtURI: e2eURI, Hypervisor: hv, GuestBinary: gb,
		ShutdownGrace: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	}
	if mod != nil {
		mod(&cfg)
	}
	r, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer r.Close()
		doms, err := r.doms.List(context.Background(), vm.Prefix(r.ns))
		if err != nil {
			t.Errorf("list domains: %v", err)
		}
		for _, d := range doms {
			t.Errorf("domain %s (%s) left behind", d.Name, d.State)
			_ = r.doms.DestroyAndUndefine(context.Background(), d.Name)
		}
		ents, err := os.ReadDir(filepath.Join(state, "jobs"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Error(err)
		}
		for _, e := range ents {
			t.Errorf("job directory %s left behind", e.Name())
		}
		_ = filepath.WalkDir(state, func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(p, ".img") {
				t.Errorf("scratch file %s left behind", p)
			}
			return nil
		})
	})
	return r, cfg
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func task(alloc string, job uint64, cores []int, cmd ...string) Task {
	return Task{
		AllocID: alloc, Job: job, Attempt: 1, Command: cmd,
		Placement: model.Placement{Cores: cores, MemoryMiB: 256, Scratch: 64},
	}
}

// phases records progress phases and signals when one is reached.
type phases struct {
	mu   sync.Mutex
	seen []string
	ch   map[string]chan struct{}
}

func newPhases() *phases {
	return &phases{ch: map[string]chan struct{}{PhaseBooting: make(chan struct{}), PhaseRunning: make(chan struct{})}}
}

func (p *phases) report(ph string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen = append(p.seen, ph)
	if c, ok := p.ch[ph]; ok {
		close(c)
		delete(p.ch, ph)
	}
}

func (p *phases) wait(t *testing.T, ph string, c chan struct{}, d time.Duration) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(d):
		t.Fatalf("phase %q not reached within %s", ph, d)
	}
}

func (p *phases) chanFor(ph string) chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ch[ph]
}

func TestE2EOutputAndExitCode(t *testing.T) {
	r, _ := newE2ERunner(t, nil)
	ph := newPhases()
	tk := task("1.0.0", 1, []int{0, 1}, "/bin/sh", "-c", `echo "hello ncpus=$VHPC_NCPUS uid=$(id -u) scratch=$VHPC_SCRATCH"; echo to-stderr >&2; touch $VHPC_SCRATCH/x`)
	res, err := r.Run(context.Background(), tk, ph.report)
	if err != nil {
		t.Fatal(err)
	}
	if res.State != model.AllocCompleted || res.ExitCode != 0 {
		t.Fatalf("result %+v", res)
	}
	if res.BootSeconds <= 0 {
		t.Errorf("boot seconds %v", res.BootSeconds)
	}
	out, err := os.ReadFile(r.LogPath(tk.AllocID))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"hello ncpus=2 uid=1000 scratch=/scratch", "to-stderr"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
	if got := strings.Join(ph.seen, ","); got != "staging,booting,running,stopped" {
		t.Errorf("phases %s", got)
	}
	t.Logf("boot %.2fs run %.2fs (%s)", res.BootSeconds, res.RunSeconds, r.Hypervisor())
}

func TestE2EFailingExitCode(t *testing.T) {
	r, _ := newE2ERunner(t, nil)
	tk := task("2.0.0", 2, []int{0}, "")
	tk.Command, tk.Script = nil, "echo failing\nexit 7\n"
	res, err := r.Run(context.Background(), tk, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.State != model.AllocFailed || res.ExitCode != 7 || !strings.Contains(res.Reason, "exit code 7") {
		t.Fatalf("result %+v", res)
	}
}

func TestE2ECancel(t *testing.T) {
	r, _ := newE2ERunner(t, nil)
	ph := newPhases()
	running := ph.chanFor(PhaseRunning)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type ret struct {
		res Result
		err error
	}
	done := make(chan ret, 1)
	go func() {
		res, err := r.Run(ctx, task("3.0.0", 3, []int{0}, "/bin/sleep", "600"), ph.report)
		done <- ret{res, err}
	}()
	ph.wait(t, PhaseRunning, running, 90*time.Second)
	cancel()
	// The job sleeps 600 s: Run returning at all means the guest was
	// destroyed, not waited for; 30 s only bounds a hung test.
	select {
	case got := <-done:
		if got.err != nil || got.res.State != model.AllocCancelled {
			t.Fatalf("result %+v err %v", got.res, got.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestE2EWalltime(t *testing.T) {
	r, _ := newE2ERunner(t, func(c *Config) { c.ShutdownGrace = 5 * time.Second })
	ph := newPhases()
	running := ph.chanFor(PhaseRunning)
	tk := task("4.0.0", 4, []int{1}, "/bin/sleep", "600")
	tk.Walltime = 20 * time.Second
	type ret struct {
		res Result
		err error
	}
	done := make(chan ret, 1)
	go func() {
		res, err := r.Run(context.Background(), tk, ph.report)
		done <- ret{res, err}
	}()
	ph.wait(t, PhaseRunning, running, 90*time.Second)
	select {
	case got := <-done:
		if got.err != nil || got.res.State != model.AllocTimedOut {
			t.Fatalf("result %+v err %v", got.res, got.err)
		}
		t.Logf("timeout result %+v", got.res)
	case <-time.After(tk.Walltime + 30*time.Second):
		t.Fatal("walltime not enforced")
	}
}

// TestE2EStageInOut: the inputs arrive by digest from a real registry, the
// outputs leave as a file set the user fetches; a stageOut source the job
// did not write is named in the result, the rest still uploaded.
func TestE2EStageInOut(t *testing.T) {
	r, _ := newE2ERunner(t, nil)
	reg := registrytest.Start(t)
	store := jobdata.Store{Registry: reg.URL, Options: reg.Options()}
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "in.txt"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := jobdata.Collect(src, []jobdata.Stage{{From: "in.txt"}}, jobdata.CollectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in, err := jobdata.Push(context.Background(), reg.URL, jobdata.RepositoryName("physics"), c, reg.Options())
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(src); err != nil { // the node never sees the submit directory
		t.Fatal(err)
	}
	tk := task("5.0.0", 5, []int{0}, "")
	tk.Command, tk.Script = nil, "set -e\ntr a-z A-Z < in.txt > out.txt\nmkdir -p res && echo deep > res/d.txt\n"
	tk.Inputs, tk.Data = in.Digest, store
	tk.InputRepository, tk.OutputRepository = jobdata.RepositoryName("physics"), jobdata.OutputRepositoryName("physics", 5)
	tk.StageOut = []Stage{{From: "out.txt"}, {From: "res", To: "results"}, {From: "never.txt"}}
	res, err := r.Run(context.Background(), tk, nil)
	if err != nil || res.State != model.AllocCompleted {
		t.Fatalf("result %+v err %v", res, err)
	}
	o := res.Outputs
	if o == nil || o.Files != 2 || len(o.Missing) != 1 || o.Missing[0] != "never.txt" || !strings.Contains(res.Reason, "not produced by the job: never.txt") {
		t.Fatalf("outputs %+v, reason %q: want 2 files and never.txt missing", o, res.Reason)
	}
	if o.Repository != tk.OutputRepository {
		t.Fatalf("outputs stored in %q; want the job's own repository %q", o.Repository, tk.OutputRepository)
	}
	fetched := t.TempDir()
	if err := store.FetchInputs(context.Background(), o.Repository, o.Digest, fetched); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"out.txt": "FROM THE HOST\n", "results/d.txt": "deep\n"} {
		b, err := os.ReadFile(filepath.Join(fetched, p))
		if err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", p, b, err, want)
		}
	}
}

func TestE2ESideBySidePinned(t *testing.T) {
	r, _ := newE2ERunner(t, nil)
	type ret struct {
		res Result
		err error
	}
	var wg sync.WaitGroup
	results := make([]ret, 2)
	pins := make([]string, 2)
	for i := range 2 {
		ph := newPhases()
		booting := ph.chanFor(PhaseBooting)
		tk := task("6.0."+string(rune('0'+i)), 6, []int{i}, "/bin/sh", "-c", "echo side $VHPC_RANK; sleep 2")
		tk.Rank = i
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := r.Run(context.Background(), tk, ph.report)
			results[i] = ret{res, err}
		}()
		select {
		case <-booting:
		case <-time.After(60 * time.Second):
			t.Fatal("not booting")
		}
		d, err := r.doms.XML(context.Background(), vm.Name(r.ns, 6, 0, i))
		if err != nil {
			t.Fatal(err)
		}
		if d.CPUTune == nil || len(d.CPUTune.VCPUPin) != 1 {
			t.Fatalf("live XML has no vcpupin: %+v", d.CPUTune)
		}
		pins[i] = d.CPUTune.VCPUPin[0].CPUSet
	}
	wg.Wait()
	for i, rr := range results {
		if rr.err != nil || rr.res.State != model.AllocCompleted {
			t.Errorf("task %d: %+v %v", i, rr.res, rr.err)
		}
	}
	if pins[0] != "0" || pins[1] != "1" {
		t.Errorf("vcpupin cpusets %v, want disjoint [0 1]", pins)
	}
}

// TestE2EAdopt: an agent starts a guest and "crashes" (its Runner is
// dropped mid-job); a new Runner on the same state dir finds the guest,
// waits for it without starting it again, and collects its result.
func TestE2EAdopt(t *testing.T) {
	r1, cfg := newE2ERunner(t, nil)
	tk := task("7.0.0", 7, []int{0}, "/bin/sh", "-c", "echo adopted-run; sleep 3; exit 5")
	st, err := r1.start(context.Background(), tk, nil)
	if err != nil {
		t.Fatal(err)
	}
	r1.Close() // the old agent is gone; its guest keeps running

	r2, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	ids, err := r2.Running(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0] != tk.AllocID {
		t.Fatalf("Running = %v, want [%s]", ids, tk.AllocID)
	}
	if _, err := r2.Run(context.Background(), tk, nil); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("Run of a live allocation: err = %v, want 'already exists'", err)
	}
	res, err := r2.Adopt(context.Background(), tk, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.State != model.AllocFailed || res.ExitCode != 5 {
		t.Fatalf("adopted result %+v", res)
	}
	out, err := os.ReadFile(r2.LogPath(tk.AllocID))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(out), "adopted-run"); n != 1 {
		t.Errorf("job ran %d times, want once: %q", n, out)
	}
	if _, err := os.Stat(st.dir.Root); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("job dir left: %v", err)
	}
}
