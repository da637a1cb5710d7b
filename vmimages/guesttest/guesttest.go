// Package guesttest builds hpc-guest for the tests that boot real guests
// or start hpcd dev and hpc-agent as processes (nodeagent/runner's e2e
// tests, cmd/hpcd's tests). Test code only: it runs the Go toolchain,
// which the product never does (vmimages.FindGuestBinary only finds a
// built binary), and no command imports it (cmd/hpc-guest's tests check).
package guesttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"vhpc/vmimages"
)

// Build compiles cmd/hpc-guest into dir/hpc-guest and returns its path.
// It builds the way `make build` does for hpc-guest (CGO_ENABLED=0), with
// -trimpath and -buildvcs=false so that the same source gives the same
// bytes wherever and at whichever commit it is built, which keeps the tiny
// and Debian images' content hashes, and so the cached images (a Debian
// image takes minutes to build), the same across test runs and commits. The binary is written under a
// temporary name and renamed into place, so test binaries running at
// once never see half a file. The working directory must be inside the
// vhpc module (go test runs tests in their package's directory). Callers
// build once per test binary (a sync.OnceValues in the test) and share it.
func Build(ctx context.Context, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("build hpc-guest: %w", err)
	}
	out := filepath.Join(dir, vmimages.GuestBinaryName)
	tmp := out + "." + strconv.Itoa(os.Getpid()) + ".tmp"
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-o", tmp, "vhpc/cmd/hpc-guest")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build hpc-guest: %w: %s", err, stderr.Bytes())
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", fmt.Errorf("build hpc-guest: %w", err)
	}
	return out, vmimages.CheckStatic(out)
}

// Install puts the hpc-guest binary bin into dir as hpc-guest (a hard
// link, or a copy across filesystems), where vmimages.FindGuestBinary
// finds it next to an executable built into dir. An hpc-guest already in
// dir is left alone.
func Install(bin, dir string) error {
	dst := filepath.Join(dir, vmimages.GuestBinaryName)
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	if err := os.Link(bin, dst); err == nil {
		return nil
	}
	if err := copyFile(bin, dst); err != nil {
		return fmt.Errorf("install hpc-guest into %s: %w", dir, err)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	return errors.Join(err, out.Close())
}
