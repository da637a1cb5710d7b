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
