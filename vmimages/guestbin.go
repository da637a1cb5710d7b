package vmimages

import (
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
)

// GuestBinaryName is the file name FindGuestBinary looks for; `make build`
// puts the static hpc-guest into bin/ next to hpcd, hpc-agent and hpc.
const GuestBinaryName = "hpc-guest"

// ErrNoGuestBinary is wrapped by FindGuestBinary when no hpc-guest was
// found, so that callers and tests can tell a missing binary from a bad one.
var ErrNoGuestBinary = errors.New("no hpc-guest binary found")

// FindGuestBinary returns the static hpc-guest binary to put into images.
// The node agent's runner (runner.New, for hpc-agent and `hpcd dev`) and
// `hpc image build tiny` call it; it never builds anything, so an agent
// host needs no Go toolchain. It takes, in this order:
//
//  1. explicit, when not empty (the --guest flag of hpc-agent, hpcd dev and
//     hpc image build tiny): it must be a static binary, no other is tried;
//  2. hpc-guest next to the running executable (how `make build` and
//     release tarballs lay binaries out);
//  3. hpc-guest on $PATH.
//
// Every candidate must be a static ELF executable, since the initramfs has
// no dynamic loader; a dynamic one is skipped and named in the error. When
// none is found the error wraps ErrNoGuestBinary and says how to get one.
func FindGuestBinary(explicit string) (string, error) {
	if explicit != "" {
		if err := CheckStatic(explicit); err != nil {
			return "", err
		}
		return explicit, nil
	}
	var candidates []string
	if exe, err := os.Executable(); err == nil {
		candidates = append(candidates, filepath.Join(filepath.Dir(exe), GuestBinaryName))
	}
	if p, err := exec.LookPath(GuestBinaryName); err == nil {
		candidates = append(candidates, p)
	}
	var rejected []error
	for _, c := range candidates {
		if _, err := os.Stat(c); err != nil {
			continue
		}
		err := CheckStatic(c)
		if err == nil {
			return c, nil
		}
		rejected = append(rejected, err)
	}
	err := fmt.Errorf("%w next to the executable or on $PATH: run `make build` (it puts a static hpc-guest next to the other binaries in bin/), or name one with the --guest flag", ErrNoGuestBinary)
	if len(rejected) > 0 {
		err = fmt.Errorf("%w; rejected: %w", err, errors.Join(rejected...))
	}
	return "", err
}

// CheckStatic fails unless path is an ELF executable without an
// interpreter (a static binary), the only kind the initramfs can run as
// /init. FindGuestBinary checks every candidate with it; tests use it on
// the binaries they build.
func CheckStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("hpc-guest %s: %w", path, err)
		}
		return fmt.Errorf("hpc-guest %s is not an ELF executable: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("hpc-guest %s is dynamically linked; rebuild it with `make build` or CGO_ENABLED=0 go build ./cmd/hpc-guest", path)
		}
	}
	return nil
}
