package vmimages

import (
	"context"
	"fmt"
	"os/exec"
)

// BootBare boots img with plain qemu-system-x86_64 (no libvirt, no
// staging, no scheduler): the baseline the boot-overhead benchmarks compare
// the full paths against. The guest gets one vCPU, memMiB of memory and
// shareDir as its 9p job share under shareTag; accel is "tcg" or "kvm".
// It returns when QEMU exits (hpc-guest powers the guest off).
func BootBare(ctx context.Context, img Image, accel string, memMiB int, shareDir, shareTag, consoleLog string) error {
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", "-accel", accel, "-m", fmt.Sprint(memMiB), "-smp", "1",
		"-display", "none", "-no-reboot", "-nic", "none", "-serial", "file:"+consoleLog,
		"-kernel", img.Kernel, "-initrd", img.Initrd, "-append", img.Cmdline,
		"-fsdev", "local,id=fs0,path="+shareDir+",security_model=mapped-xattr",
		"-device", "virtio-9p-pci,fsdev=fs0,mount_tag="+shareTag)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("bare qemu: %w: %s", err, out)
	}
	return nil
}
