package runner

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"libvirt.org/go/libvirtxml"

	"vhpc/nodeagent/guestid"
	"vhpc/nodeagent/libvirt"
	"vhpc/scheduler/model"
)

// guestSeen is what a scripted guest found of its own identity at start.
type guestSeen struct {
	label              string
	shareUID, shareGID int
	shareMode          os.FileMode
	kernel             string
	kernelUID          int
}

// TestGuestsRunAsTheirOwnIDs: two guests running at once each carry a
// static DAC label of their own (a uid of the range, the QEMU user's
// group), their job directories are theirs alone (owner, 0700) and boot from
// private kernel copies they own; the ids come back when the guests end.
func TestGuestsRunAsTheirOwnIDs(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: guest files are handed to the guests' uids")
	}
	var mu sync.Mutex
	seen := map[string]guestSeen{}
	both := make(chan struct{})
	var started sync.WaitGroup
	started.Add(2)
	go func() { started.Wait(); close(both) }()
	r, _ := fakeRunner(t, func(f *libvirt.Fake, d *libvirtxml.Domain) {
		g := guestSeen{kernel: d.OS.Kernel}
		for _, l := range d.SecLabel {
			if l.Model == "dac" && l.Type == "static" && l.Relabel == "yes" {
				g.label = l.Label
			}
		}
		if fi, err := os.Stat(filepath.Dir(shareOf(d))); err == nil { // the job directory
			st := fi.Sys().(*syscall.Stat_t)
			g.shareUID, g.shareGID, g.shareMode = int(st.Uid), int(st.Gid), fi.Mode().Perm()
		}
		if fi, err := os.Stat(d.OS.Kernel); err == nil {
			g.kernelUID = int(fi.Sys().(*syscall.Stat_t).Uid)
		}
		mu.Lock()
		seen[d.Name] = g
		mu.Unlock()
		started.Done()
		go func() { // run until the other guest has started too
			select {
			case <-both:
			case <-time.After(30 * time.Second):
			}
			exitWith(0, "")(f, d)
		}()
	})
	if r.ids.pool == nil {
		t.Fatal("a root runner with a QEMU user gives guests no ids of their own")
	}
	var wg sync.WaitGroup
	for i := range 2 {
		tk := fakeTask("9.0." + string(rune('0'+i)))
		tk.Rank = i
		tk.Placement = model.Placement{Cores: []int{i}, MemoryMiB: 256}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if res, err := r.Run(context.Background(), tk, nil); err != nil || res.State != model.AllocCompleted {
				t.Errorf("task %d: %+v %v", i, res, err)
			}
		}()
	}
	wg.Wait()
	if len(seen) != 2 {
		t.Fatalf("guests seen: %+v", seen)
	}
	uids := map[int]bool{}
	for name, g := range seen {
		id, err := guestid.ParseLabel(g.label)
		if err != nil {
			t.Fatalf("%s: label %q: %v", name, g.label, err)
		}
		if id.UID < guestid.DefaultBase || id.UID >= guestid.DefaultBase+guestid.DefaultCount || id.GID != r.ids.gid {
			t.Errorf("%s: id %+v, want a uid of the default range and the QEMU group %d", name, id, r.ids.gid)
		}
		uids[id.UID] = true
		if g.shareUID != id.UID || g.shareGID != id.GID || g.shareMode != 0o700 {
			t.Errorf("%s: job directory %d:%d %04o, want %d:%d 0700", name, g.shareUID, g.shareGID, g.shareMode, id.UID, id.GID)
		}
		if filepath.Base(filepath.Dir(g.kernel)) != "boot" || g.kernelUID != id.UID {
			t.Errorf("%s: kernel %s owned by %d, want a private copy owned by %d", name, g.kernel, g.kernelUID, id.UID)
		}
	}
	if len(uids) != 2 {
		t.Errorf("both guests ran as the same uid: %+v", seen)
	}
	// every id is back: the pool hands out the range's first id again
	id, err := r.ids.pool.Acquire(nil)
	if err != nil || id.UID != guestid.DefaultBase {
		t.Errorf("after the guests ended: %+v %v, want the first id free again", id, err)
	}
	r.ids.pool.Release(id)
}

// TestSharedQEMUUserMode: with SharedQEMUUser the guests carry no label
// of their own (libvirt's qemu.conf user runs them).
func TestSharedQEMUUserMode(t *testing.T) {
	r, _ := fakeRunner(t, nil)
	ids, err := openGuestIDs(Config{SharedQEMUUser: true}, true, r.ids.gid)
	if err != nil || ids.pool != nil {
		t.Fatalf("shared mode opened a pool: %+v %v", ids, err)
	}
	r.ids = ids
	o, err := r.takeOwner(context.Background(), "vhpc-x")
	if err != nil || o.perGuest || o.label() != "" {
		t.Fatalf("owner %+v %v, want the shared QEMU user", o, err)
	}
}

// TestGroupCanUse: per-guest ids on KVM need /dev/kvm read-write for the
// guests' group by its mode bits.
func TestGroupCanUse(t *testing.T) {
	dir := t.TempDir()
	gid := os.Getgid()
	for _, tc := range []struct {
		mode os.FileMode
		want bool
	}{{0o666, true}, {0o660, true}, {0o600, false}, {0o640, false}} {
		p := filepath.Join(dir, tc.mode.String())
		if err := os.WriteFile(p, nil, tc.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, tc.mode); err != nil {
			t.Fatal(err)
		}
		if ok, why := groupCanUse(p, gid); ok != tc.want {
			t.Errorf("mode %04o group %d: %v (%s), want %v", tc.mode, gid, ok, why, tc.want)
		}
	}
	if ok, _ := groupCanUse(filepath.Join(dir, "none"), gid); ok {
		t.Error("a missing device is usable")
	}
}
