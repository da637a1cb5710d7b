package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

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
	gb, err := testGuestBinary()
	if err != nil {
		t.Fatal(err)
	}
	specFile := filepath.Join("..", "..", "images", "python.yaml")
	spec, err := imagespec.LoadFile(specFile)
	if err != nil {
		t.Fatal(err)
	}
	img, err := vmimages.BuildDebian(context.Background(), spec, filepath.Dir(specFile), vmimages.DebianOptions{
		Store: filepath.Join(os.TempDir(), "vhpc-e2e-debian"), GuestBinary: gb, Progress: os.Stderr,
	})
	if err != nil {
		t.Fatalf("build public/python:1: %v", err)
	}
	t.Logf("image %s (cached=%v)", img.Dir, img.Cached)

	dir := filepath.Dir(c.hpcd)
	hpc := goBuild(t, dir, "../hpc")
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
		return st == "completed" || st == "failed" || st == "cancelled"
	})
	_, logs, _ := c.hpcsub(work, "logs", strconv.FormatUint(id, 10))
	if j := c.job(id); j.GetState() != "completed" || !regexp.MustCompile(`(?m)^Python 3\.\d+\.\d+$`).MatchString(logs) {
		t.Fatalf("job %s (%s), output:\n%s", j.GetState(), j.GetReason(), logs)
	}
}
