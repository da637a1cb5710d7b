package runner

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"libvirt.org/go/libvirtxml"

	"vhpc/guestproto"
	"vhpc/nodeagent/libvirt"
	"vhpc/scheduler/model"
	"vhpc/vmimages"
)

// fakeDebianImage writes an image directory like vmimages.BuildDebian's,
// with a real (tiny, empty) qcow2 root.
func fakeDebianImage(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{vmimages.KernelFile, vmimages.InitrdFile} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", filepath.Join(dir, vmimages.RootDiskFile), "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v: %s", err, out)
	}
	c := vmimages.DebianConfig{Ref: "public/python:1", Cmdline: "root=/dev/vda init=/usr/sbin/hpc-guest",
		Env: map[string]string{"FROM_IMAGE": "image", "BOTH": "image"}}
	c.Template.Machine, c.Template.CPUModel = "q35", "max"
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, vmimages.ConfigFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestRunFromDebianImage: a task with ImageDir boots the image's kernel
// with a qcow2 overlay (backed by the image's root, nothing copied) as
// its first disk, the image's machine and CPU model, and the image's env
// under the job's; the overlay is gone with the job directory.
func TestRunFromDebianImage(t *testing.T) {
	img := fakeDebianImage(t)
	var seen *libvirtxml.Domain
	var overlayInfo []byte
	var req guestproto.Request
	r, _ := fakeRunner(t, func(f *libvirt.Fake, d *libvirtxml.Domain) {
		seen = d
		overlay := d.Devices.Disks[0].Source.File.File
		overlayInfo, _ = exec.Command("qemu-img", "info", "--output=json", overlay).Output()
		req, _ = guestproto.ReadRequest(shareOf(d))
		exitWith(0, "")(f, d)
	})
	tk := fakeTask("5.0.0")
	tk.ImageDir = img
	tk.Env = map[string]string{"BOTH": "job"}
	tk.Placement = model.Placement{Cores: []int{1}, MemoryMiB: 512, Scratch: 16}
	res, err := r.Run(context.Background(), tk, nil)
	if err != nil || res.State != model.AllocCompleted {
		t.Fatalf("res %+v err %v", res, err)
	}
	bootDir := img // a guest with its own id boots private copies (privateBoot)
	if r.ids.pool != nil {
		bootDir = filepath.Join(r.cfg.StateDir, "jobs", "5.0.0", "boot")
	}
	if seen.OS.Kernel != filepath.Join(bootDir, vmimages.KernelFile) || seen.OS.Initrd != filepath.Join(bootDir, vmimages.InitrdFile) ||
		seen.OS.Cmdline != "root=/dev/vda init=/usr/sbin/hpc-guest" || seen.OS.Type.Machine != "q35" {
		t.Errorf("os %+v", seen.OS)
	}
	if seen.CPU == nil || seen.CPU.Model == nil || seen.CPU.Model.Value != "max" {
		t.Errorf("cpu %+v", seen.CPU)
	}
	disks := seen.Devices.Disks
	if len(disks) != 2 || disks[0].Target.Dev != "vda" || disks[0].BackingStore.Source.File.File != filepath.Join(img, vmimages.RootDiskFile) {
		t.Fatalf("disks %+v", disks)
	}
	var info struct {
		Format          string `json:"format"`
		BackingFilename string `json:"backing-filename"`
	}
	if err := json.Unmarshal(overlayInfo, &info); err != nil {
		t.Fatalf("overlay info %s: %v", overlayInfo, err)
	}
	if info.Format != "qcow2" || info.BackingFilename != filepath.Join(img, vmimages.RootDiskFile) {
		t.Errorf("overlay %+v", info)
	}
	if req.Env["FROM_IMAGE"] != "image" || req.Env["BOTH"] != "job" {
		t.Errorf("env %v: want the image's under the job's", req.Env)
	}
}

func TestRunFromBrokenImage(t *testing.T) {
	r, f := fakeRunner(t, nil)
	tk := fakeTask("6.0.0")
	tk.ImageDir = t.TempDir()
	res, err := r.Run(context.Background(), tk, nil)
	if err == nil || res.State != model.AllocFailed {
		t.Fatalf("res %+v err %v", res, err)
	}
	if n := f.Starts(r.DomainName(tk)); n != 0 {
		t.Errorf("domain started %d times for a broken image", n)
	}
}
