package runner

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"

	"vhpc/nodeagent/staging"
	"vhpc/nodeagent/vm"
	"vhpc/vmimages"
)

// debianTemplate opens the Debian image directory of t (Task.ImageDir) and
// returns its template: direct kernel boot of the image's kernel and
// initrd, the image's command line (root=/dev/vda, init=hpc-guest), its
// root.qcow2 as the base of a per-job overlay, its machine and CPU model.
func (r *Runner) debianTemplate(t Task) (vm.Template, vmimages.DebianImage, error) {
	img, err := vmimages.OpenDebian(t.ImageDir)
	if err != nil {
		return vm.Template{}, img, err
	}
	c := img.Config
	return vm.Template{
		Name: c.Ref, Hypervisor: r.hv, Machine: c.Template.Machine, CPUModel: c.Template.CPUModel,
		Kernel: img.Kernel, Initrd: img.Initrd, Cmdline: c.Cmdline, BaseDisk: img.RootDisk,
	}, img, nil
}

// createOverlay makes the job's root disk: a qcow2 overlay backed by the
// image's root.qcow2 (nothing is copied; the base is never written), owned
// by the QEMU user. It is removed with the job directory.
func (r *Runner) createOverlay(ctx context.Context, base string, dir staging.Dir, own owner) error {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", dir.Overlay)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("root overlay on %s: qemu-img: %w: %s", base, err, bytes.TrimSpace(stderr.Bytes()))
	}
	if err := os.Chmod(dir.Overlay, 0o600); err != nil { // the guest's alone
		return fmt.Errorf("root overlay: %w", err)
	}
	if own.chown {
		if err := os.Chown(dir.Overlay, own.uid, own.gid); err != nil {
			return fmt.Errorf("root overlay: %w", err)
		}
	}
	return nil
}

// imageEnv is the image's environment under the job's own (the job wins).
func imageEnv(img vmimages.DebianImage, job map[string]string) map[string]string {
	if len(img.Config.Env) == 0 {
		return job
	}
	env := maps.Clone(img.Config.Env)
	maps.Copy(env, job)
	return env
}
