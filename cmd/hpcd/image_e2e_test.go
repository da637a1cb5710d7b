package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"vhpc/api"

	"vhpc/imagespec"
	"vhpc/vmimages"
)

// TestE2EDepartmentImageThroughTheRegistry is issue 13's whole path on one
// host: `hpcd dev` (which starts docker-registry), a real Debian image
// (images/python.yaml, built with mmdebstrap once and cached by spec hash
// in $TMPDIR/vhpc-e2e-debian, shared with nodeagent/runner's e2e test),
// `hpc image push` into the registry and the catalog, `hpcsub` of a job
// with `image: public/python:1` resolved to the digest at submit, the agent
// pulling it by digest into its cache and booting it; the job prints
// `python3 --version` from inside the guest.
func TestE2EDepartmentImageThroughTheRegistry(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a Debian guest")
	}
	if os.Geteuid() != 0 {
		if os.Getenv("VHPC_E2E") == "1" {
			t.Fatal("VHPC_E2E=1 but not root: building a Debian image needs root")
		}
		t.Skip("building a Debian image needs root")
	}
	c := startDev(t)
	img, hpc := e2ePythonImage(t, c)
	out, err := exec.Command(hpc, "image", "push", img.Dir, "public/python:1", "--addr", c.addr).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "pushed public/python:1 sha256:") {
		t.Fatalf("hpc image push: %v\n%s", err, out)
	}
	out, err = exec.Command(hpc, "image", "inspect", "public/python:1", "--addr", c.addr).CombinedOutput()
	if err != nil || !regexp.MustCompile(`(?m)^\s+python3\s+3\.\d+`).Match(out) {
		t.Fatalf("hpc image inspect: %v\n%s", err, out)
	}

	work := t.TempDir()
	job := "name: py\nimage: public/python:1\nresources:\n  memory: 512MiB\nwalltime: 5m\ncommand: [\"/bin/sh\", \"-c\", \"python3 --version\"]\n"
	if err := os.WriteFile(filepath.Join(work, "job.yaml"), []byte(job), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := c.hpcsub(work, "--parsable", "job.yaml")
	if code != 0 {
		t.Fatalf("hpcsub: %d\n%s%s", code, stdout, stderr)
	}
	id, err := strconv.ParseUint(strings.TrimSpace(stdout), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if j := c.job(id); j.GetImageRef() != "public/python:1" || !strings.HasPrefix(j.GetImageDigest(), "sha256:") {
		t.Fatalf("job image %q %q", j.GetImageRef(), j.GetImageDigest())
	}
	c.waitFor(t, "the job to end", func() bool {
		st := c.job(id).GetState()
		return st == "completed" || st == "failed" || st == "cancelled" || st == "timeout"
	})
	_, logs, _ := c.hpcsub(work, "logs", strconv.FormatUint(id, 10))
	if j := c.job(id); j.GetState() != "completed" || !regexp.MustCompile(`(?m)^Python 3\.\d+\.\d+$`).MatchString(logs) {
		t.Fatalf("job %s (%s), output:\n%s", j.GetState(), j.GetReason(), logs)
	}
}

// e2ePythonImage builds (or finds by spec hash) images/python.yaml and
// builds the hpc CLI next to c's hpcd.
func e2ePythonImage(t testing.TB, c *e2eCluster) (vmimages.DebianImage, string) {
	t.Helper()
	return e2eImage(t, "python.yaml"), goBuild(t, filepath.Dir(c.hpcd), "../hpc")
}

// e2eImage builds (or finds by spec hash) images/SPEC with the test's
// hpc-guest, in $TMPDIR/vhpc-e2e-debian (shared with nodeagent/runner's
// e2e test): once per machine for the same spec and hpc-guest.
func e2eImage(t testing.TB, spec string) vmimages.DebianImage {
	t.Helper()
	gb, err := testGuestBinary()
	if err != nil {
		t.Fatal(err)
	}
	specFile := filepath.Join("..", "..", "images", spec)
	s, err := imagespec.LoadFile(specFile)
	if err != nil {
		t.Fatal(err)
	}
	img, err := vmimages.BuildDebian(context.Background(), s, filepath.Dir(specFile), vmimages.DebianOptions{
		Store: filepath.Join(os.TempDir(), "vhpc-e2e-debian"), GuestBinary: gb, Progress: os.Stderr,
	})
	if err != nil {
		t.Fatalf("build %s: %v", s.Name, err)
	}
	t.Logf("image %s (cached=%v)", img.Dir, img.Cached)
	return img
}

// BenchmarkImageJobStart measures a job in the Debian image public/python
// from submit to its first output line, side by side: with the image
// already in the node's cache, and with a new digest (the same files
// under a config.json that differs, pushed just before, timer stopped) that
// the agent must pull first.
//
//	VHPC_E2E=1 go test -tags libvirt_dlopen -run '^$' -bench ImageJobStart -benchtime 2x ./cmd/hpcd/
func BenchmarkImageJobStart(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("building a Debian image needs root")
	}
	c := startDev(b)
	img, hpc := e2ePythonImage(b, c)
	push := func(dir, ref string) {
		if out, err := exec.Command(hpc, "image", "push", dir, ref, "--addr", c.addr).CombinedOutput(); err != nil {
			b.Fatalf("hpc image push %s: %v\n%s", ref, err, out)
		}
	}
	run := func(ref string) {
		spec := "name: py\nimage: " + ref + "\nresources:\n  memory: 512MiB\nwalltime: 5m\ncommand: [\"/bin/sh\", \"-c\", \"python3 --version\"]\n"
		resp, err := c.jobs.Submit(context.Background(), &api.SubmitRequest{Spec: []byte(spec), ClientToken: ref + strconv.Itoa(b.N) + time.Now().String()})
		if err != nil {
			b.Fatal(err)
		}
		stream, err := c.jobs.Logs(context.Background(), &api.LogsRequest{Id: resp.GetJobId(), Follow: true})
		if err != nil {
			b.Fatal(err)
		}
		for {
			chunk, err := stream.Recv()
			if err != nil {
				b.Fatalf("job %d (%s) ended without output: %v", resp.GetJobId(), ref, err)
			}
			if len(chunk.GetData()) > 0 {
				break
			}
		}
		b.StopTimer()
		c.waitFor(b, "the job to end", func() bool { return c.job(resp.GetJobId()).GetState() == "completed" })
		b.StartTimer()
	}
	push(img.Dir, "public/python:1")
	run("public/python:1") // warm the cache
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			run("public/python:1")
		}
	})
	b.Run("pulled", func(b *testing.B) {
		i := 0
		for b.Loop() {
			b.StopTimer()
			i++
			variant := b.TempDir()
			for _, f := range []string{"kernel", "initrd", "root.qcow2"} {
				if err := os.Link(filepath.Join(img.Dir, f), filepath.Join(variant, f)); err != nil {
					b.Fatal(err)
				}
			}
			cfg, err := os.ReadFile(filepath.Join(img.Dir, "config.json"))
			if err != nil {
				b.Fatal(err)
			}
			var obj map[string]any
			if err := json.Unmarshal(cfg, &obj); err != nil {
				b.Fatal(err)
			}
			obj["benchVariant"] = i
			if cfg, err = json.Marshal(obj); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(variant, "config.json"), cfg, 0o644); err != nil {
				b.Fatal(err)
			}
			ref := fmt.Sprintf("public/python:bench-%d", i)
			push(variant, ref)
			b.StartTimer()
			run(ref)
		}
	})
}
