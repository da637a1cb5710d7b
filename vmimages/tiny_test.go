package vmimages

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeInputs lays out a fake /boot, /lib/modules, busybox and hpc-guest.
func fakeInputs(t *testing.T, kernel []byte) TinySpec {
	t.Helper()
	root := t.TempDir()
	boot, mods := filepath.Join(root, "boot"), filepath.Join(root, "modules")
	kver := "9.9.9-test"
	md := filepath.Join(mods, kver)
	for _, p := range []string{boot, filepath.Join(md, "kernel/fs/ext4"), filepath.Join(md, "kernel/fs/jbd2"), filepath.Join(md, "kernel/lib")} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		filepath.Join(md, "modules.dep"):              "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/jbd2/jbd2.ko\nkernel/fs/jbd2/jbd2.ko:\nkernel/lib/crc16.ko:\n",
		filepath.Join(md, "kernel/fs/ext4/ext4.ko"):   "ext4",
		filepath.Join(md, "kernel/fs/jbd2/jbd2.ko"):   "jbd2",
		filepath.Join(md, "kernel/lib/crc16.ko"):      "crc16",
		filepath.Join(boot, "vmlinuz-"+kver):          string(kernel),
		filepath.Join(root, "hpc-guest"):              "guest-binary",
		filepath.Join(root, "busybox"):                "#!/bin/sh\necho sh\necho mke2fs\necho ls\n",
		filepath.Join(boot, "vmlinuz-1.0-nomodules"):  "old kernel without modules",
		filepath.Join(root, "unrelated-for-coverage"): "",
	}
	for p, c := range files {
		if err := os.WriteFile(p, []byte(c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return TinySpec{BootDir: boot, ModulesRoot: mods, Busybox: filepath.Join(root, "busybox"),
		GuestBinary: filepath.Join(root, "hpc-guest"), Modules: []string{"ext4", "virtio_blk"}}
}

func TestEnsureTinyCachesByContent(t *testing.T) {
	spec := fakeInputs(t, []byte("not a bzImage"))
	store := t.TempDir()
	ctx := context.Background()
	img, err := EnsureTiny(ctx, store, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !img.Built || img.KernelVersion != "9.9.9-test" || filepath.Base(img.Kernel) != "vmlinuz" {
		t.Fatalf("first build: %+v", img)
	}
	again, err := EnsureTiny(ctx, store, spec, nil)
	if err != nil || again.Built || again.Dir != img.Dir {
		t.Fatalf("second call rebuilt: %+v %v", again, err)
	}
	// Changing any input (here a module) yields a new image.
	mod := filepath.Join(spec.ModulesRoot, "9.9.9-test", "kernel/lib/crc16.ko")
	if err := os.WriteFile(mod, []byte("crc16 v2"), 0o644); err != nil {
		t.Fatal(err)
	}
	third, err := EnsureTiny(ctx, store, spec, nil)
	if err != nil || !third.Built || third.Dir == img.Dir {
		t.Fatalf("changed input not rebuilt: %+v %v", third, err)
	}

	// The initramfs holds /init, busybox applets, ordered modules, /dev/console.
	f, err := os.Open(third.Initrd)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	ents := readCpio(t, raw)
	checks := map[string]string{
		"init":                  "guest-binary",
		"bin/sh":                "busybox",
		"bin/mke2fs":            "busybox",
		"lib/modules/load.list": "/lib/modules/9.9.9-test/kernel/lib/crc16.ko\n/lib/modules/9.9.9-test/kernel/fs/jbd2/jbd2.ko\n/lib/modules/9.9.9-test/kernel/fs/ext4/ext4.ko\n",
		"lib/modules/9.9.9-test/kernel/lib/crc16.ko": "crc16 v2",
	}
	for name, want := range checks {
		if e, ok := ents[name]; !ok || string(e.data) != want {
			t.Errorf("%s = %q (present %v), want %q", name, e.data, ok, want)
		}
	}
	if e := ents["dev/console"]; e.mode != cpioCharDev|0o600 || e.rdevMaj != 5 || e.rdevMin != 1 {
		t.Errorf("dev/console %+v", e)
	}
	if e := ents["init"]; e.mode != cpioFile|0o755 {
		t.Errorf("init mode %o", e.mode)
	}
}

func TestEnsureTinyErrors(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*TinySpec)
		want string
	}{
		{"no guest", func(s *TinySpec) { s.GuestBinary = "" }, "hpc-guest"},
		{"no kernel", func(s *TinySpec) { s.BootDir = t.TempDir() }, "linux-image-amd64"},
		{"no busybox", func(s *TinySpec) { s.Busybox = "/nonexistent/busybox" }, "busybox-static"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := fakeInputs(t, []byte("k"))
			tc.mod(&spec)
			_, err := EnsureTiny(context.Background(), t.TempDir(), spec, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

// fakeBzImage builds a minimal bzImage header around a gzip payload.
func fakeBzImage(t *testing.T, payload []byte) []byte {
	t.Helper()
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(payload)
	zw.Close()
	b := make([]byte, 2*512)
	b[0x1f1] = 1 // setup_sects
	copy(b[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(b[0x206:], 0x20f)
	binary.LittleEndian.PutUint32(b[0x248:], 0)
	return append(b, append(z.Bytes(), 0xde, 0xad, 0xbe, 0xef)...) // trailing bytes as in real kernels
}

func TestExtractVmlinux(t *testing.T) {
	elf := append([]byte("\x7fELF"), bytes.Repeat([]byte{1}, 100)...)
	dir := t.TempDir()
	tests := []struct {
		name    string
		kernel  []byte
		wantErr bool
	}{
		{"gzip ELF", fakeBzImage(t, elf), false},
		{"gzip non-ELF", fakeBzImage(t, []byte("garbage")), true},
		{"not a bzImage", []byte("nope"), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, dst := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "vmlinux")
			if err := os.WriteFile(src, tc.kernel, 0o644); err != nil {
				t.Fatal(err)
			}
			err := extractVmlinux(context.Background(), src, dst)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v", err)
			}
			if err == nil {
				if b, _ := os.ReadFile(dst); !bytes.Equal(b, elf) {
					t.Errorf("extracted %d bytes, want the ELF", len(b))
				}
			}
		})
	}
	// With a PVH-capable kernel the image boots the extracted ELF.
	spec := fakeInputs(t, fakeBzImage(t, elf))
	img, err := EnsureTiny(context.Background(), t.TempDir(), spec, nil)
	if err != nil || filepath.Base(img.Kernel) != "vmlinux" {
		t.Fatalf("image %+v err %v", img, err)
	}
}
