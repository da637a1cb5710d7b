package vmimages

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vhpc/imagespec"
)

func TestParseDpkgStatus(t *testing.T) {
	status := `Package: zlib1g
Status: install ok installed
Version: 1:1.2.13.dfsg-1

Package: removed-one
Status: deinstall ok config-files
Version: 1.0

Package: python3
Status: install ok installed
Architecture: amd64
Version: 3.11.2-1+b1
Description: interactive high-level object-oriented language
 continuation line: with a colon
`
	got, err := parseDpkgStatus(strings.NewReader(status))
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{{"python3", "3.11.2-1+b1"}, {"zlib1g", "1:1.2.13.dfsg-1"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestDebianCmdline(t *testing.T) {
	tests := []struct {
		name, extra, want string
	}{
		{"none", "", "root=/dev/vda rootfstype=ext4 rw fsck.mode=skip console=ttyS0 panic=-1 quiet loglevel=3 init=/usr/sbin/hpc-guest"},
		{"extra", "  mitigations=off   nokaslr ", "root=/dev/vda rootfstype=ext4 rw fsck.mode=skip console=ttyS0 panic=-1 quiet loglevel=3 init=/usr/sbin/hpc-guest mitigations=off nokaslr"},
	}
	for _, tc := range tests {
		if got := DebianCmdline(imagespec.Template{KernelCmdline: tc.extra}); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestSpecHash: the cache key follows the spec, the copied files' bytes
// and hpc-guest, and nothing else.
func TestSpecHash(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("run.sh", "v1")
	write("guest", "guest-v1")
	load := func(y string) *imagespec.Spec {
		t.Helper()
		s, err := imagespec.Load("s.yaml", []byte(y))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	base := "name: a/b:1\npackages: [python3]\nfiles: [{src: run.sh, dst: /opt/run.sh}]\n"
	o := DebianOptions{GuestBinary: filepath.Join(dir, "guest")}
	hash := func(s *imagespec.Spec) string {
		t.Helper()
		h, err := SpecHash(s, dir, o)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	h0 := hash(load(base))
	if h := hash(load(base)); h != h0 {
		t.Errorf("same inputs, hash %s != %s", h, h0)
	}
	if h := hash(load(base + "env: {A: b}\n")); h == h0 {
		t.Error("env change kept the hash")
	}
	write("run.sh", "v2")
	h1 := hash(load(base))
	if h1 == h0 {
		t.Error("file content change kept the hash")
	}
	write("guest", "guest-v2")
	if h := hash(load(base)); h == h1 {
		t.Error("hpc-guest change kept the hash")
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := SpecHash(load("name: a/b\nfiles: [{src: link, dst: /x}]\n"), dir, o); err == nil {
		t.Error("a symlink out of the spec directory was followed")
	}
}

// TestRunToolNamesAptError: a failing tool's error carries apt's "E:"
// lines (the unknown package), and every line reaches the progress writer.
func TestRunToolNamesAptError(t *testing.T) {
	var progress strings.Builder
	cmd := exec.CommandContext(context.Background(), "sh", "-c", `echo "I: downloading"; echo "E: Unable to locate package pyhton3" >&2; exit 100`)
	err := runTool(cmd, &progress)
	if err == nil || !strings.Contains(err.Error(), "E: Unable to locate package pyhton3") {
		t.Errorf("err %v", err)
	}
	if !strings.Contains(progress.String(), "I: downloading") {
		t.Errorf("progress %q", progress.String())
	}
}

func TestRemoveBuildDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "build")
	if err := os.MkdirAll(filepath.Join(dir, "rootfs", "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := removeBuildDir(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("still there: %v", err)
	}
}

func TestOpenDebianIncomplete(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenDebian(dir); err == nil {
		t.Error("empty directory opened as an image")
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(`{"cmdline":"root=/dev/vda"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenDebian(dir); err == nil || !strings.Contains(err.Error(), KernelFile) {
		t.Errorf("missing kernel: %v", err)
	}
}

// TestBuildDebianUnknownPackage runs mmdebstrap for real (network, root):
// a spec naming a package Debian does not have fails with apt's line
// naming it, and leaves nothing in the store. apt reports the package
// only after the essential set is installed (about 5 minutes on a shared
// 2-core machine), so it runs by hand: VHPC_E2E_SLOW=1.
func TestBuildDebianUnknownPackage(t *testing.T) {
	if os.Getenv("VHPC_E2E_SLOW") != "1" {
		t.Skip("runs mmdebstrap against the Debian mirror for minutes; set VHPC_E2E_SLOW=1")
	}
	if os.Geteuid() != 0 {
		t.Fatal("VHPC_E2E_SLOW=1 but not root: mmdebstrap's root mode needs root")
	}
	spec, err := imagespec.Load("bad.yaml", []byte("name: public/broken:1\npackages: [python3, vhpc-no-such-package]\n"))
	if err != nil {
		t.Fatal(err)
	}
	store := t.TempDir()
	var progress strings.Builder
	// Any static binary will do as hpc-guest: the build fails before it is used.
	_, err = BuildDebian(context.Background(), spec, t.TempDir(), DebianOptions{Store: store, GuestBinary: "/bin/busybox", Progress: &progress})
	if err == nil || !strings.Contains(err.Error(), "Unable to locate package vhpc-no-such-package") {
		t.Fatalf("err %v\nprogress:\n%s", err, progress.String())
	}
	ents, _ := os.ReadDir(store)
	if len(ents) != 0 {
		t.Errorf("left in the store: %v", ents)
	}
}

func TestClampTimes(t *testing.T) {
	root := t.TempDir()
	old := filepath.Join(root, "old")
	if err := os.WriteFile(old, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	past := time.Unix(1000, 0)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "new"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/nonexistent", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	b := &debianBuild{rootfs: root, o: DebianOptions{SourceDateEpoch: DefaultSourceDateEpoch}}
	if err := b.clampTimes(context.Background()); err != nil {
		t.Fatal(err)
	}
	epoch := time.Unix(DefaultSourceDateEpoch, 0)
	for p, want := range map[string]time.Time{"old": past, "etc": epoch, "etc/new": epoch, "link": epoch} {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(want) {
			t.Errorf("%s: mtime %v, want %v", p, fi.ModTime(), want)
		}
	}
}
