package runner

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"libvirt.org/go/libvirtxml"

	"vhpc/guestproto"
	"vhpc/jobdata"
	"vhpc/nodeagent/libvirt"
	"vhpc/nodeagent/vm"
	"vhpc/scheduler/model"
	"vhpc/vmimages"
)

// fakeRunner wires a Runner over the in-memory libvirt fake; guest is the
// scripted guest behaviour run when a domain starts.
func fakeRunner(t *testing.T, guestFn func(f *libvirt.Fake, d *libvirtxml.Domain)) (*Runner, *libvirt.Fake) {
	t.Helper()
	f := libvirt.NewFake()
	if guestFn != nil {
		f.OnStart = func(d *libvirtxml.Domain) { guestFn(f, d) }
	}
	state := t.TempDir()
	boot := t.TempDir() // a guest with its own id gets copies of these
	for _, name := range []string{"k", "i"} {
		if err := os.WriteFile(filepath.Join(boot, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := newRunner(Config{StateDir: state, Namespace: "t", ShutdownGrace: 300 * time.Millisecond, PollInterval: 10 * time.Millisecond,
		GuestIDLockDir: filepath.Join(state, "guest-ids"), Logger: slog.New(slog.DiscardHandler)},
		f, vmimages.Image{Name: "tiny", Kernel: filepath.Join(boot, "k"), Initrd: filepath.Join(boot, "i"), Cmdline: "c"})
	if err != nil {
		t.Fatal(err)
	}
	r.hv = "tcg"
	t.Cleanup(func() {
		doms, _ := f.List(context.Background(), vm.NamePrefix)
		if len(doms) != 0 {
			t.Errorf("domains left: %v", doms)
		}
		ents, _ := os.ReadDir(filepath.Join(state, "jobs"))
		if len(ents) != 0 {
			t.Errorf("job dirs left: %v", ents)
		}
	})
	return r, f
}

// shareOf returns the job share directory of a domain definition.
func shareOf(d *libvirtxml.Domain) string { return d.Devices.Filesystems[0].Source.Mount.Dir }

// exitWith is a scripted guest that writes started.json, some output and
// exit.json with code, then powers off.
func exitWith(code int, errMsg string) func(*libvirt.Fake, *libvirtxml.Domain) {
	return func(f *libvirt.Fake, d *libvirtxml.Domain) {
		share := shareOf(d)
		_ = guestproto.WriteStarted(share, guestproto.Started{BootSeconds: 1.5})
		fh, _ := os.OpenFile(filepath.Join(share, guestproto.OutputFile), os.O_WRONLY|os.O_APPEND, 0)
		_, _ = fh.WriteString("hello from the fake guest\n")
		fh.Close()
		_ = guestproto.WriteExit(share, guestproto.Exit{ExitCode: code, Error: errMsg, BootSeconds: 1.5, RunSeconds: 0.25})
		f.Stop(d.Name)
	}
}

func fakeTask(alloc string) Task {
	return Task{AllocID: alloc, Job: 9, Attempt: 1, Command: []string{"/bin/true"},
		Placement: model.Placement{Cores: []int{2, 3}, MemoryMiB: 512}}
}

func TestRunOutcomes(t *testing.T) {
	tests := []struct {
		name      string
		guest     func(*libvirt.Fake, *libvirtxml.Domain)
		walltime  time.Duration
		wantState model.AllocState
		wantCode  int
		wantIn    string
		// started: the guest wrote started.json, so "running" must be
		// reported even though it stopped before the first poll.
		started bool
	}{
		{name: "completed", guest: exitWith(0, ""), wantState: model.AllocCompleted, started: true},
		{name: "failed exit code", guest: exitWith(3, ""), wantState: model.AllocFailed, wantCode: 3, wantIn: "exit code 3", started: true},
		{name: "guest error", guest: exitWith(127, "start \"nope\": not found"), wantState: model.AllocFailed, wantCode: 127, wantIn: "not found", started: true},
		{name: "crash without exit.json", guest: func(f *libvirt.Fake, d *libvirtxml.Domain) { f.Stop(d.Name) },
			wantState: model.AllocFailed, wantCode: -1, wantIn: "without an exit status"},
		{name: "walltime, guest ignores ACPI", guest: nil, walltime: 50 * time.Millisecond,
			wantState: model.AllocTimedOut, wantCode: -1, wantIn: "walltime"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, f := fakeRunner(t, tc.guest)
			tk := fakeTask("9.0.0")
			tk.Walltime = tc.walltime
			var phases []string
			res, err := r.Run(context.Background(), tk, func(p string) { phases = append(phases, p) })
			if err != nil {
				t.Fatal(err)
			}
			if res.State != tc.wantState || res.ExitCode != tc.wantCode || !strings.Contains(res.Reason, tc.wantIn) {
				t.Fatalf("result %+v, want state %s code %d reason ~%q", res, tc.wantState, tc.wantCode, tc.wantIn)
			}
			if f.Starts("vhpc-t-9-0-0") != 1 {
				t.Errorf("started %d times", f.Starts("vhpc-t-9-0-0"))
			}
			want := []string{PhaseStaging, PhaseBooting, PhaseStopped}
			if tc.started {
				want = []string{PhaseStaging, PhaseBooting, PhaseRunning, PhaseStopped}
			}
			if !slices.Equal(phases, want) {
				t.Errorf("phases %v, want %v", phases, want)
			}
		})
	}
}

func TestRunWalltimeGracefulShutdown(t *testing.T) {
	r, f := fakeRunner(t, func(f *libvirt.Fake, d *libvirtxml.Domain) {
		_ = guestproto.WriteStarted(shareOf(d), guestproto.Started{})
	})
	f.OnShutdown = func(name string) {
		// The guest handles the power button: job terminated, exit.json, off.
		d, _ := f.XML(context.Background(), name)
		_ = guestproto.WriteExit(shareOf(d), guestproto.Exit{ExitCode: 143, Signal: "terminated", Stopped: true})
		f.Stop(name)
	}
	tk := fakeTask("9.0.1")
	tk.Walltime = 30 * time.Millisecond
	res, err := r.Run(context.Background(), tk, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.State != model.AllocTimedOut || res.ExitCode != 143 {
		t.Fatalf("result %+v", res)
	}
}

func TestRunCancel(t *testing.T) {
	r, f := fakeRunner(t, nil) // a guest that never ends
	ctx, cancel := context.WithCancel(context.Background())
	booted := make(chan struct{})
	done := make(chan Result, 1)
	go func() {
		res, _ := r.Run(ctx, fakeTask("9.0.2"), func(p string) {
			if p == PhaseBooting {
				close(booted)
			}
		})
		done <- res
	}()
	<-booted
	cancel()
	select {
	case res := <-done:
		if res.State != model.AllocCancelled {
			t.Fatalf("result %+v", res)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if st, _ := f.State(context.Background(), "vhpc-t-9-0-0"); st != libvirt.StateAbsent {
		t.Errorf("domain state %s after cancel", st)
	}
}

func TestRunStartFailureCleansUp(t *testing.T) {
	r, f := fakeRunner(t, nil)
	f.FailStart = errors.New("qemu exploded")
	res, err := r.Run(context.Background(), fakeTask("9.0.3"), nil)
	if err == nil || res.State != model.AllocFailed || !strings.Contains(res.Reason, "qemu exploded") {
		t.Fatalf("res %+v err %v", res, err)
	}
}

func TestRunRejects(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Task)
		want string
	}{
		{"bad alloc id", func(t *Task) { t.AllocID = "../etc" }, "allocation id"},
		{"no command", func(t *Task) { t.Command = nil }, "neither"},
		{"no cores", func(t *Task) { t.Placement.Cores = nil }, "no cores"},
		{"unknown image", func(t *Task) { t.Image = "centos" }, "not available"},
		{"inputs without a store", func(t *Task) { t.Inputs = "sha256:" + strings.Repeat("a", 64) }, "no data store"},
		{"outputs without a store", func(t *Task) { t.StageOut = []Stage{{From: "a"}} }, "no data store"},
		{"inputs not a digest", func(t *Task) { t.Data = jobdata.Store{}; t.Inputs = "/etc/passwd" }, "want sha256"},
		{"absolute stage", func(t *Task) { t.Data = jobdata.Store{}; t.StageOut = []Stage{{From: "/etc/passwd"}} }, "absolute"},
		{"dotdot stage", func(t *Task) { t.Data = jobdata.Store{}; t.StageOut = []Stage{{From: "a", To: "../../x"}} }, "leaves"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, f := fakeRunner(t, nil)
			tk := fakeTask("9.1.0")
			tc.mod(&tk)
			res, err := r.Run(context.Background(), tk, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) || res.State != model.AllocFailed {
				t.Fatalf("err %v res %+v, want %q", err, res, tc.want)
			}
			if f.Starts("vhpc-t-9-0-0") != 0 {
				t.Error("a rejected task started a domain")
			}
		})
	}
}

func TestRunningAndAdopt(t *testing.T) {
	r, f := fakeRunner(t, nil)
	tk := fakeTask("9.0.4")
	if _, err := r.start(context.Background(), tk, nil); err != nil {
		t.Fatal(err)
	}
	ids, err := r.Running(context.Background())
	if err != nil || len(ids) != 1 || ids[0] != "9.0.4" {
		t.Fatalf("Running = %v, %v", ids, err)
	}
	// A second Run of the same allocation must not start it twice.
	if _, err := r.Run(context.Background(), tk, nil); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second Run: %v", err)
	}
	// Adopt with the wrong allocation id refuses.
	other := tk
	other.AllocID = "9.0.5"
	if _, err := r.Adopt(context.Background(), other, nil); err == nil || !strings.Contains(err.Error(), "not adopting") {
		t.Fatalf("adopt of a foreign domain: %v", err)
	}
	// The guest finishes while nobody watches; Adopt collects it.
	d, _ := f.XML(context.Background(), "vhpc-t-9-0-0")
	exitWith(4, "")(f, d)
	res, err := r.Adopt(context.Background(), tk, nil)
	if err != nil || res.State != model.AllocFailed || res.ExitCode != 4 {
		t.Fatalf("adopt: %+v %v", res, err)
	}
	if f.Starts("vhpc-t-9-0-0") != 1 {
		t.Errorf("started %d times", f.Starts("vhpc-t-9-0-0"))
	}
	b, err := os.ReadFile(r.LogPath(tk.AllocID))
	if err != nil || !strings.Contains(string(b), "fake guest") {
		t.Errorf("log after cleanup: %q %v", b, err)
	}
	if err := r.RemoveLogs(tk.AllocID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(r.LogPath(tk.AllocID)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("log not removed: %v", err)
	}
}

func TestAdoptLost(t *testing.T) {
	r, _ := fakeRunner(t, nil)
	res, err := r.Adopt(context.Background(), fakeTask("9.0.6"), nil)
	if err != nil || res.State != model.AllocFailed || !strings.Contains(res.Reason, "lost") {
		t.Fatalf("res %+v err %v", res, err)
	}
}

func TestHypervisorSettle(t *testing.T) {
	tests := []struct {
		name   string
		cfg    string
		cache  string
		want   string
		reason string
	}{
		{"forced kvm", "kvm", "", "kvm", "forced"},
		{"forced tcg ignores cache", "tcg", `{"hypervisor":"kvm"}`, "tcg", "forced"},
		{"cached", "auto", `{"hypervisor":"kvm","reason":"probe ok"}`, "kvm", "probe ok"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := fakeRunner(t, nil)
			r.cfg.Hypervisor = tc.cfg
			if tc.cache != "" {
				if err := os.WriteFile(filepath.Join(r.cfg.StateDir, probeCacheFile), []byte(tc.cache), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.settleHypervisor(context.Background()); err != nil {
				t.Fatal(err)
			}
			if r.Hypervisor() != tc.want || !strings.Contains(r.hvReason, tc.reason) {
				t.Fatalf("got %s (%s), want %s (%s)", r.Hypervisor(), r.hvReason, tc.want, tc.reason)
			}
		})
	}
}

// TestProbe: without a usable /dev/kvm the runner picks TCG at once; with
// one whose probe guest hangs it picks TCG after the probe timeout; with
// one whose probe guest finishes, KVM. Each result is cached.
func TestProbe(t *testing.T) {
	tests := []struct {
		name    string
		device  bool
		guest   func(*libvirt.Fake, *libvirtxml.Domain)
		want    string
		wantWhy string
	}{
		{"no device", false, nil, "tcg", "KVM unusable"},
		{"probe hangs", true, nil, "tcg", "did not finish"},
		{"probe boots", true, exitWith(0, ""), "kvm", "finished"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := fakeRunner(t, tc.guest)
			r.cfg.Hypervisor, r.cfg.ProbeTimeout = "auto", 300*time.Millisecond
			r.kvmDevice = filepath.Join(t.TempDir(), "kvm")
			if tc.device {
				if err := os.WriteFile(r.kvmDevice, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.settleHypervisor(context.Background()); err != nil {
				t.Fatal(err)
			}
			if r.Hypervisor() != tc.want || !strings.Contains(r.hvReason, tc.wantWhy) {
				t.Fatalf("got %s (%s), want %s (~%s)", r.Hypervisor(), r.hvReason, tc.want, tc.wantWhy)
			}
			if _, err := os.Stat(r.LogPath("probe-kvm")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("probe logs left: %v", err)
			}
			b, err := os.ReadFile(filepath.Join(r.cfg.StateDir, probeCacheFile))
			if err != nil || !strings.Contains(string(b), `"`+tc.want+`"`) {
				t.Fatalf("cache %q %v", b, err)
			}
		})
	}
}
