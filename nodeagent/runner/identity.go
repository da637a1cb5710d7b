package runner

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"libvirt.org/go/libvirtxml"

	"vhpc/nodeagent/guestid"
	"vhpc/nodeagent/staging"
	"vhpc/nodeagent/vm"
)

// owner is who a guest's files belong to on the host: its own guest id
// (perGuest), or the shared QEMU user; chown false when the runner may
// not change owners (not root, or no QEMU user on this host).
type owner struct {
	uid, gid int
	chown    bool
	perGuest bool
}

// label is the owner as a vm.Spec DAC label ("" for the shared user).
func (o owner) label() string {
	if !o.perGuest {
		return ""
	}
	return guestid.ID{UID: o.uid, GID: o.gid}.Label()
}

// guestIDs holds the ids the runner's guests carry, by domain name.
type guestIDs struct {
	pool     *guestid.Pool // nil: every guest runs as the shared QEMU user
	gid      int           // the group of every id (the QEMU group)
	mu       sync.Mutex
	byDomain map[string]guestid.ID
}

// openGuestIDs opens the pool of cfg, its ids in group guestGID, when the
// runner can hand files to other users (root, with a QEMU user and group)
// and the config asks for per-guest ids.
func openGuestIDs(cfg Config, chownOK bool, guestGID int) (*guestIDs, error) {
	g := &guestIDs{byDomain: map[string]guestid.ID{}, gid: guestGID}
	if !chownOK || cfg.SharedQEMUUser {
		return g, nil
	}
	p, err := guestid.Open(cfg.GuestIDs, guestGID, cfg.GuestIDLockDir)
	if err != nil {
		return nil, fmt.Errorf("runner: %w", err)
	}
	g.pool = p
	return g, nil
}

// takeOwner gives the guest of domain name its owner: a fresh guest id
// (none that a running vhpc domain of this host carries), or the shared
// QEMU user.
func (r *Runner) takeOwner(ctx context.Context, name string) (owner, error) {
	shared := owner{uid: r.qemuUID, gid: r.qemuGID, chown: r.chownOK}
	if r.ids.pool == nil {
		return shared, nil
	}
	busy, err := r.busyGuestIDs(ctx)
	if err != nil {
		return owner{}, err
	}
	id, err := r.ids.pool.Acquire(busy)
	if err != nil {
		return owner{}, err
	}
	r.ids.mu.Lock()
	r.ids.byDomain[name] = id
	r.ids.mu.Unlock()
	return owner{uid: id.UID, gid: id.GID, chown: true, perGuest: true}, nil
}

// adoptOwner records the guest id of a domain an earlier agent process
// started, from its live definition, so that it is not handed out again
// while the guest runs.
func (r *Runner) adoptOwner(name string, d *libvirtxml.Domain) error {
	id, ok := dacID(d)
	if !ok || r.ids.pool == nil {
		return nil
	}
	if err := r.ids.pool.Adopt(id); err != nil {
		return err
	}
	r.ids.mu.Lock()
	r.ids.byDomain[name] = id
	r.ids.mu.Unlock()
	return nil
}

// releaseOwner gives the guest id of domain name back (after the domain
// is gone).
func (r *Runner) releaseOwner(name string) {
	r.ids.mu.Lock()
	id, ok := r.ids.byDomain[name]
	delete(r.ids.byDomain, name)
	r.ids.mu.Unlock()
	if ok && r.ids.pool != nil {
		r.ids.pool.Release(id)
	}
}

// busyGuestIDs are the uids the vhpc domains of this libvirtd carry (every
// agent's, whatever its namespace): never handed out, even when no agent
// holds their lock.
func (r *Runner) busyGuestIDs(ctx context.Context) (map[int]bool, error) {
	doms, err := r.doms.List(ctx, vm.NamePrefix)
	if err != nil {
		return nil, fmt.Errorf("guest ids in use: %w", err)
	}
	busy := map[int]bool{}
	for _, d := range doms {
		x, err := r.doms.XML(ctx, d.Name)
		if err != nil {
			continue // gone since List
		}
		if id, ok := dacID(x); ok {
			busy[id.UID] = true
		}
	}
	return busy, nil
}

// dacID reads a domain's static DAC label.
func dacID(d *libvirtxml.Domain) (guestid.ID, bool) {
	for _, l := range d.SecLabel {
		if l.Model == "dac" && l.Label != "" {
			id, err := guestid.ParseLabel(l.Label)
			return id, err == nil
		}
	}
	return guestid.ID{}, false
}

// privateBoot gives a guest with its own id its own copies of the
// template's kernel and initrd, owned by it: libvirt hands the boot files
// to the guest's user, and the image's own files are shared by every
// guest of the image and must stay root's.
func privateBoot(tmpl vm.Template, dir staging.Dir, o owner) (vm.Template, error) {
	if !o.perGuest || tmpl.Kernel == "" {
		return tmpl, nil
	}
	boot := filepath.Join(dir.Root, "boot")
	if err := os.Mkdir(boot, 0o700); err != nil {
		return tmpl, fmt.Errorf("private boot files: %w", err)
	}
	for _, f := range []*string{&tmpl.Kernel, &tmpl.Initrd} {
		if *f == "" {
			continue
		}
		dst := filepath.Join(boot, filepath.Base(*f))
		if err := copyOwned(*f, dst, o); err != nil {
			return tmpl, fmt.Errorf("private boot files: %w", err)
		}
		*f = dst
	}
	return tmpl, os.Chown(boot, o.uid, o.gid)
}

// copyOwned copies src to a new file dst (0600) owned by o.
func copyOwned(src, dst string, o owner) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chown(dst, o.uid, o.gid)
}

// checkKVMForGuestIDs turns per-guest ids off when guests run on KVM and
// kvmDev does not let the guests' group read and write it: a guest with a
// static DAC label gets no supplementary groups from libvirt, so only the
// device's group or its mode can let its QEMU in (Debian's /dev/kvm is
// root:kvm 0660). The guests then run as the shared QEMU user, as before
// per-guest ids, and the log says how to turn them on.
func (r *Runner) checkKVMForGuestIDs(kvmDev string) {
	if r.ids.pool == nil || r.hv != "kvm" {
		return
	}
	if ok, why := groupCanUse(kvmDev, r.ids.gid); !ok {
		r.log.Warn("guests run as the shared QEMU user, not each as its own uid: "+why,
			"fix", fmt.Sprintf("a udev rule giving %s to group %d with mode 0660 (or --guest-uids shared to silence this)", kvmDev, r.ids.gid))
		r.ids.pool = nil
	}
}

// groupCanUse reports whether a process whose only group is gid (and whose
// uid owns nothing) may open path for reading and writing by its mode
// bits; why says what is missing.
func groupCanUse(path string, gid int) (ok bool, why string) {
	fi, err := os.Stat(path)
	if err != nil {
		return false, err.Error()
	}
	st, isUnix := fi.Sys().(*syscall.Stat_t)
	mode := fi.Mode().Perm()
	switch {
	case mode&0o006 == 0o006:
		return true, ""
	case isUnix && int(st.Gid) == gid && mode&0o060 == 0o060:
		return true, ""
	}
	return false, fmt.Sprintf("%s (mode %04o) is not read-write for group %d", path, mode, gid)
}
