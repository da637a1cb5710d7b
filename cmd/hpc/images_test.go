package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vhpc/imagestore/registrytest"
	"vhpc/scheduler/server"
	"vhpc/scheduler/server/servertest"
)

// writeImageDir writes a small image directory shaped like the builder's.
func writeImageDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"config.json": `{"ref":"chemistry/lammps:2024.08","base":"bookworm","template":{"machine":"q35"},"kernelVersion":"6.1.0-28-amd64",` +
			`"cmdline":"root=/dev/vda init=/usr/sbin/hpc-guest","packages":[{"name":"lammps","version":"20220623.1-1"},{"name":"python3","version":"3.11.2-1"}],` +
			`"provenance":{"specHash":"sha256:abc","builder":"debian-v1"}}`,
		"kernel":     strings.Repeat("k", 4096),
		"initrd":     strings.Repeat("i", 2048),
		"root.qcow2": strings.Repeat("q", 8192),
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestImageCatalogCommands(t *testing.T) {
	reg := registrytest.Start(t)
	master := servertest.Start(t, func(c *server.Config) { c.ImageRegistry, c.RegistryTokens = reg.URL, reg.Issuer })
	addr := master.GRPCAddr()
	ctx := context.Background()
	hpc := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(ctx, append([]string{"image"}, append(args, "--addr", addr)...), &out, &errOut)
		return out.String(), err
	}
	dir := writeImageDir(t)

	out, err := hpc("push", dir, "chemistry/lammps:2024.08")
	if err != nil || !strings.Contains(out, "pushed chemistry/lammps:2024.08 sha256:") {
		t.Fatalf("push: %v\n%s", err, out)
	}
	// --registry given explicitly, --public, flags before the arguments.
	if out, err := hpc("push", "--public", "--registry", reg.URL, dir, "public/lammps"); err != nil || !strings.Contains(out, "pushed public/lammps:latest") {
		t.Fatalf("push public: %v\n%s", err, out)
	}

	out, err = hpc("ls")
	if err != nil || !strings.Contains(out, "chemistry/lammps:2024.08") || !strings.Contains(out, "public/lammps:latest") ||
		!strings.Contains(out, "spec chemistry/lammps:2024.08, hash sha256:abc, on bookworm") {
		t.Fatalf("ls: %v\n%s", err, out)
	}
	out, err = hpc("ls", "--department", "chemistry", "--json")
	var rows []map[string]any
	if err != nil || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 1 || rows[0]["ref"] != "chemistry/lammps:2024.08" {
		t.Fatalf("ls --json: %v\n%s", err, out)
	}

	out, err = hpc("inspect", "chemistry/lammps:2024.08")
	for _, want := range []string{"Kernel", "6.1.0-28-amd64", `{"machine":"q35"}`, "20220623.1-1", "root.qcow2", "application/vnd.vhpc.image.disk.qcow2", "Packages (2)"} {
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("inspect: %v, want %q in\n%s", err, want, out)
		}
	}

	if out, err := hpc("rm", "chemistry/lammps:2024.08"); err != nil || !strings.Contains(out, "removed chemistry/lammps:2024.08") {
		t.Fatalf("rm: %v\n%s", err, out)
	}

	bad := []struct {
		args []string
		want string
	}{
		{[]string{"rm", "chemistry/lammps:2024.08"}, "not in the catalog"},
		{[]string{"inspect", "public/lamps"}, `did you mean "public/lammps:latest"`},
		{[]string{"push", dir}, "takes 2 argument(s), got 1"},
		{[]string{"push", dir, "lammps"}, "want department/name[:tag]"},
		{[]string{"push", t.TempDir(), "chemistry/empty:1"}, "no config.json"},
		{[]string{"ls", "--bogus"}, "flag provided but not defined"},
	}
	for _, b := range bad {
		if out, err := hpc(b.args...); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("hpc image %v: %v (%s), want %q", b.args, err, out, b.want)
		}
	}
}

func TestImagePushNeedsARegistry(t *testing.T) {
	master := servertest.Start(t, nil)
	var out bytes.Buffer
	err := run(context.Background(), []string{"image", "push", writeImageDir(t), "chemistry/x:1", "--addr", master.GRPCAddr()}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "pass --registry URL") {
		t.Fatalf("push without a registry: %v", err)
	}
}
