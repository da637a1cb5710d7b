package vmimages

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
)

// FindGuestBinary returns a static hpc-guest binary to put into images:
//
//  1. explicit, when not empty;
//  2. hpc-guest next to the running executable (how release tarballs ship);
//  3. hpc-guest on $PATH;
//  4. built from source into buildDir with `CGO_ENABLED=0 go build`, when
//     the working directory is inside the vhpc module (dev trees, tests).
//
// Every candidate is checked to be a static ELF executable, since the
// initramfs has no dynamic loader.
func FindGuestBinary(ctx context.Context, explicit, buildDir string, log *slog.Logger) (string, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if explicit != "" {
		return explicit, checkStatic(explicit)
	}
	var candidates []string
	if exe, err := os.Executable(); err == nil {
		candidates = append(candidates, filepath.Join(filepath.Dir(exe), "hpc-guest"))
	}
	if p, err := exec.LookPath("hpc-guest"); err == nil {
		candidates = append(candidates, p)
	}
	for _, c := range candidates {
		if _, err := os.Stat(c); err == nil {
			if err := checkStatic(c); err == nil {
				return c, nil
			}
		}
	}
	root, err := moduleRoot()
	if err != nil {
		return "", fmt.Errorf("no hpc-guest binary next to the executable or on $PATH, and %w", err)
	}
	if err := os.MkdirAll(buildDir, 0o755); err != nil {
		return "", fmt.Errorf("build hpc-guest: %w", err)
	}
	out := filepath.Join(buildDir, "hpc-guest")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, "./cmd/hpc-guest")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build hpc-guest from %s: %w: %s", root, err, stderr.Bytes())
	}
	log.Debug("built hpc-guest from source", "path", out)
	return out, checkStatic(out)
}

// moduleRoot walks up from the working directory to the vhpc go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("module vhpc\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("the working directory is not inside the vhpc source tree (cannot build hpc-guest)")
		}
		dir = parent
	}
}

// checkStatic fails unless path is an ELF executable without an
// interpreter (a static binary).
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("hpc-guest %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("hpc-guest %s is dynamically linked; build it with CGO_ENABLED=0", path)
		}
	}
	return nil
}
