package runner

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"vhpc/guestproto"
	"vhpc/scheduler/model"
	"vhpc/vmimages"
)

// BenchmarkBootOverhead compares, in one run, a bare QEMU boot of the tiny
// image running /bin/true (qemu-system-x86_64 -kernel/-initrd with the same
// 9p job share, no libvirt, no staging) with Runner.Run of the same job
// (job dir, scratch disk, libvirt define/start, polling, cleanup). It
// reports seconds per boot for each and their ratio:
//
//	go test -tags libvirt_dlopen -run '^$' -bench BootOverhead -benchtime 3x ./nodeagent/runner
func BenchmarkBootOverhead(b *testing.B) {
	requireLibvirtB(b)
	r, hv, state := benchRunner(b)
	img := r.Image()
	accel := "tcg"
	if hv == "kvm" {
		accel = "kvm"
	}
	var bare, run time.Duration
	var bareBoot, runBoot float64
	b.ResetTimer()
	for i := range b.N {
		// Bare QEMU.
		share := filepath.Join(state, fmt.Sprintf("bare-%d", i))
		if err := os.MkdirAll(filepath.Join(share, guestproto.WorkDir), 0o755); err != nil {
			b.Fatal(err)
		}
		req := guestproto.Request{Version: guestproto.ProtocolVersion, AllocID: "bench", Argv: []string{"/bin/true"}, UID: guestproto.JobUID, GID: guestproto.JobGID, NCPUs: 1}
		if err := guestproto.WriteRequest(share, req); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := vmimages.BootBare(context.Background(), img, accel, 256, share, guestproto.ShareTag, filepath.Join(state, "bare-console.log")); err != nil {
			b.Fatal(err)
		}
		bare += time.Since(start)
		e, err := guestproto.ReadExit(share)
		if err != nil || e.ExitCode != 0 {
			b.Fatalf("bare guest: %+v %v", e, err)
		}
		bareBoot += e.BootSeconds
		// Runner.
		start = time.Now()
		res, err := r.Run(context.Background(), Task{AllocID: fmt.Sprintf("bench.%d", i), Job: 1, Task: int64(i), Command: []string{"/bin/true"},
			Placement: model.Placement{Cores: []int{0}, MemoryMiB: 256}}, nil)
		if err != nil || res.State != model.AllocCompleted {
			b.Fatalf("runner: %+v %v", res, err)
		}
		run += time.Since(start)
		runBoot += res.BootSeconds
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(bare.Seconds()/n, "bare-s/boot")
	b.ReportMetric(run.Seconds()/n, "runner-s/boot")
	b.ReportMetric(run.Seconds()/bare.Seconds(), "ratio")
	// In-guest kernel+init time (from exit.json): separates guest speed
	// from host-side overhead (libvirt, QEMU start, polling, cleanup).
	b.ReportMetric(bareBoot/n, "bare-guest-boot-s")
	b.ReportMetric(runBoot/n, "runner-guest-boot-s")
	b.ReportMetric(0, "ns/op")
}

// benchRunner is a Runner over a fresh state directory (removed when the
// benchmark ends) with the e2e hypervisor, hpc-guest and tiny image; it
// also returns the hypervisor and the state directory.
func benchRunner(b *testing.B) (r *Runner, hv, state string) {
	b.Helper()
	hv, err := e2eHypervisor()
	if err != nil {
		b.Fatal(err)
	}
	gb, err := e2eGuestBinary()
	if err != nil {
		b.Fatal(err)
	}
	state, err = os.MkdirTemp("", "vhpc-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(state) })
	if err := os.Chmod(state, 0o755); err != nil {
		b.Fatal(err)
	}
	r, err = New(context.Background(), Config{StateDir: state, ImageDir: e2eImageDir(), Hypervisor: hv, GuestBinary: gb,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.Close() })
	return r, hv, state
}

func requireLibvirtB(b *testing.B) {
	b.Helper()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		b.Fatalf("qemu-system-x86_64: %v", err)
	}
	if err := libvirtReachable(); err != nil {
		if os.Getenv("VHPC_E2E") == "1" {
			b.Fatalf("VHPC_E2E=1 but libvirt is unreachable: %v", err)
		}
		b.Skipf("libvirt unreachable (%v); run scripts/start-libvirt.sh", err)
	}
}
