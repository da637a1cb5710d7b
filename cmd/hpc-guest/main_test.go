package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"vhpc/vmimages"
)

// TestImportGraph pins what keeps hpc-guest static and the product free
// of the Go toolchain: hpc-guest links no cgo (runtime/cgo would make a
// cgo-enabled build dynamic) and nothing of the host side (go-nvml comes
// in through nodeagent/gpu); no command links the test helper that runs
// `go build`. The graph is listed with cgo on, as `make build` builds.
func TestImportGraph(t *testing.T) {
	tests := []struct {
		name      string
		pkg       string
		forbidden []string // import path prefixes
	}{
		{"hpc-guest is static and host-free", "vhpc/cmd/hpc-guest", []string{"runtime/cgo", "github.com/NVIDIA/go-nvml", "vhpc/nodeagent/"}},
		{"hpcd never builds hpc-guest", "vhpc/cmd/hpcd", []string{"vhpc/vmimages/guesttest"}},
		{"hpc-agent never builds hpc-guest", "vhpc/cmd/hpc-agent", []string{"vhpc/vmimages/guesttest"}},
		{"hpc never builds hpc-guest", "vhpc/cmd/hpc", []string{"vhpc/vmimages/guesttest"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("go", "list", "-deps", tc.pkg)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("go list -deps %s: %v", tc.pkg, err)
			}
			for _, dep := range strings.Fields(string(out)) {
				for _, f := range tc.forbidden {
					if strings.HasPrefix(dep, f) {
						t.Errorf("%s depends on %s", tc.pkg, dep)
					}
				}
			}
		})
	}
}

// TestStaticWithCgoOn builds hpc-guest the way a plain `go build ./cmd/...`
// with CGO_ENABLED=1 would and checks that it still has no ELF
// interpreter: the initramfs has no dynamic loader (`make build` builds
// it with CGO_ENABLED=0 besides).
func TestStaticWithCgoOn(t *testing.T) {
	if testing.Short() {
		t.Skip("links hpc-guest; skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "hpc-guest")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if err := vmimages.CheckStatic(bin); err != nil {
		t.Fatal(err)
	}
}

// TestGuestDependencies pins hpc-guest's dependencies outside the
// standard library to an allow-list: a new one must be a well-kept,
// cgo-free library, added here on purpose. Package net is excluded too:
// with cgo on it links the cgo resolver (the launcher uses raw sockets).
func TestGuestDependencies(t *testing.T) {
	allowed := map[string]bool{
		"vhpc/cmd/hpc-guest": true, "vhpc/guest": true, "vhpc/guestproto": true,
		"golang.org/x/sys/unix": true,
	}
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "vhpc/cmd/hpc-guest")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if !allowed[dep] {
			t.Errorf("hpc-guest depends on %s, which is not on the allow-list", dep)
		}
	}
	cmd = exec.Command("go", "list", "-deps", "vhpc/cmd/hpc-guest")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "net" {
			t.Error("hpc-guest imports package net (the cgo resolver with cgo on)")
		}
	}
}

// TestRshDispatch runs the built hpc-guest as the launcher client, under
// its symlink name and as `hpc-guest rsh`, and as neither (not PID 1).
func TestRshDispatch(t *testing.T) {
	if testing.Short() {
		t.Skip("links hpc-guest; skipped with -short")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "hpc-guest")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	link := filepath.Join(dir, "vhpc-rsh")
	if err := os.Symlink(bin, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		argv     []string
		wantCode int
		wantErr  string
	}{
		{"symlink without a host", []string{link, "-x"}, 255, "vhpc-rsh: no host"},
		{"subcommand with a bad option", []string{bin, "rsh", "-Z", "node1", "true"}, 255, "unknown option -Z"},
		{"symlink outside a job", []string{link, "node1", "true"}, 255, "is this a guest of a multi-node job?"},
		{"not PID 1", []string{bin}, 2, "must run as PID 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(tc.argv[0], tc.argv[1:]...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.wantCode || !strings.Contains(stderr.String(), tc.wantErr) {
				t.Errorf("exit %d stderr %q, want %d %q", code, stderr.String(), tc.wantCode, tc.wantErr)
			}
		})
	}
}
