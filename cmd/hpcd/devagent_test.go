package main

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDevExitsWhenItsAgentCannotStart: `hpcd dev` built without an
// hpc-guest beside it (plain `go build`, no --guest, none on PATH) must
// not serve a cluster where no job can run: it exits non-zero and says
// why, naming what to do.
func TestDevExitsWhenItsAgentCannotStart(t *testing.T) {
	dir := t.TempDir()
	bin := goBuild(t, dir, ".") // no hpc-guest next to it
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "dev", "--data-dir", filepath.Join(dir, "data"), "--addr", freePort(t),
		"--raft-addr", freePort(t), "--http", "", "--hypervisor", "tcg")
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + dir}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || ctx.Err() != nil {
		t.Fatalf("hpcd dev: %v (context %v), want exit status 1:\n%s", err, ctx.Err(), out.String())
	}
	for _, want := range []string{"the in-process agent could not start", "hpcd dev --no-agent"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output does not say %q:\n%s", want, out.String())
		}
	}
}
