package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"vhpc/guestproto"
	"vhpc/vmimages"
)

// BenchmarkFullPathVsBareQEMU compares, side by side in one run, a bare
// qemu-system-x86_64 boot of the tiny image running /bin/true with the
// whole product path for the same job: `hpcsub --wait job.yaml` against
// `hpcd dev` (submit, Raft commit, scheduling, the agent's watch, staging,
// libvirt define/start, the guest, report, cleanup). It reports seconds
// per job for each and their ratio.
//
//	go test -tags libvirt_dlopen -run '^$' -bench FullPath -benchtime 3x ./cmd/hpcd/
func BenchmarkFullPathVsBareQEMU(b *testing.B) {
	c := startDev(b)
	dir := b.TempDir()
	job := filepath.Join(dir, "true.yaml")
	if err := os.WriteFile(job, []byte("name: true\nresources:\n  cpusPerTask: 1\n  memory: 256MiB\n  scratch: 0\nwalltime: 5m\ncommand: [\"/bin/true\"]\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	// The image the dev agent built (and cached) on start-up.
	metas, _ := filepath.Glob(filepath.Join(c.data, "agent", "images", "tiny-*", "image.json"))
	if len(metas) != 1 {
		b.Fatalf("want one tiny image under %s, found %v", c.data, metas)
	}
	raw, err := os.ReadFile(metas[0])
	if err != nil {
		b.Fatal(err)
	}
	var img vmimages.Image
	if err := json.Unmarshal(raw, &img); err != nil {
		b.Fatal(err)
	}
	var bare, full time.Duration
	b.ResetTimer()
	for i := range b.N {
		share := filepath.Join(dir, "bare", string(rune('a'+i%26)))
		if err := os.MkdirAll(filepath.Join(share, guestproto.WorkDir), 0o755); err != nil {
			b.Fatal(err)
		}
		req := guestproto.Request{Version: guestproto.ProtocolVersion, AllocID: "bare", Argv: []string{"/bin/true"}, UID: guestproto.JobUID, GID: guestproto.JobGID, NCPUs: 1}
		if err := guestproto.WriteRequest(share, req); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := vmimages.BootBare(context.Background(), img, "tcg", 256, share, guestproto.ShareTag, filepath.Join(dir, "bare.log")); err != nil {
			b.Fatal(err)
		}
		bare += time.Since(start)
		if e, err := guestproto.ReadExit(share); err != nil || e.ExitCode != 0 {
			b.Fatalf("bare guest: %+v %v", e, err)
		}

		start = time.Now()
		if code, _, errOut := c.hpcsub(dir, "--wait", "true.yaml"); code != 0 {
			b.Fatalf("hpcsub --wait: exit %d: %s", code, errOut)
		}
		full += time.Since(start)
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(bare.Seconds()/n, "bare-s/job")
	b.ReportMetric(full.Seconds()/n, "hpcsub-wait-s/job")
	b.ReportMetric(full.Seconds()/bare.Seconds(), "ratio")
	b.ReportMetric(0, "ns/op")
}
