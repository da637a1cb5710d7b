// Package guestid gives every guest on a host its own host user id, so
// that one guest's QEMU cannot open another guest's disks or job share
// even where the host has no SELinux or AppArmor (libvirt's DAC driver
// with a static label per domain; libvirt's sVirt adds the MAC label where
// the host has one). The runner (nodeagent/runner) is its only caller: it
// takes an ID before it defines a domain and gives it back after the
// domain is gone.
//
// IDs come from a configured range. An ID is held by an exclusive flock on
// a lock file in a host-wide directory (every agent on the host uses the
// same one, so two agents never hand out one ID), and an ID that a running
// domain still carries in its label is never handed out even when nobody
// holds its lock (an agent that died and has not yet re-adopted its
// guests).
package guestid

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// DefaultBase and DefaultCount are the range of host user ids guests get
// when the agent is not told otherwise: 1000 ids from 600000, above the
// ids Debian gives people (1000-59999) and system users, and below the
// ranges systemd-nspawn and user namespaces take by default (524288 is
// systemd's container base with 65536 ids each; 600000 sits in the second
// block: agents on hosts that run containers pick their own range).
const (
	DefaultBase  = 600000
	DefaultCount = 1000
)

// DefaultLockDir is where the locks of the IDs in use live: host-wide,
// gone after a reboot (as the guests are).
const DefaultLockDir = "/run/vhpc/guest-ids"

// ID is a guest's host identity: its own user id and the QEMU user's
// group (the group lets QEMU into libvirt's per-domain directories and
// /dev/kvm; the files of one guest are 0600 or 0700, so the shared group
// reads none of them).
type ID struct {
	UID, GID int
}

// Label is the libvirt DAC label of the ID, "+UID:+GID" (numeric: the
// IDs have no passwd entries).
func (id ID) Label() string { return fmt.Sprintf("+%d:+%d", id.UID, id.GID) }

// ParseLabel reads a DAC label "+UID:+GID" (or "UID:GID") as an ID.
func ParseLabel(label string) (ID, error) {
	u, g, ok := strings.Cut(label, ":")
	uid, err1 := strconv.Atoi(strings.TrimPrefix(u, "+"))
	gid, err2 := strconv.Atoi(strings.TrimPrefix(g, "+"))
	if !ok || err1 != nil || err2 != nil || uid < 0 || gid < 0 {
		return ID{}, fmt.Errorf("DAC label %q: want +UID:+GID", label)
	}
	return ID{UID: uid, GID: gid}, nil
}

// Range is the configured block of user ids.
type Range struct {
	Base, Count int
}

// ParseRange reads "BASE-LAST" (inclusive) as given to hpc-agent
// --guest-uids.
func ParseRange(s string) (Range, error) {
	a, b, ok := strings.Cut(s, "-")
	base, err1 := strconv.Atoi(strings.TrimSpace(a))
	last, err2 := strconv.Atoi(strings.TrimSpace(b))
	r := Range{Base: base, Count: last - base + 1}
	if !ok || err1 != nil || err2 != nil {
		return Range{}, fmt.Errorf("guest uid range %q: want FIRST-LAST, like %d-%d", s, DefaultBase, DefaultBase+DefaultCount-1)
	}
	return r, r.Validate()
}

// Validate refuses ranges that would hand a guest root's or a person's
// identity: ids must lie within 100000..4294967293 (above login ids,
// below the invalid -1 and nobody's 65534 is excluded by the floor).
func (r Range) Validate() error {
	const floor, ceiling = 100000, 1<<32 - 2
	if r.Count < 1 || r.Base < floor || r.Base+r.Count-1 > ceiling {
		return fmt.Errorf("guest uid range %d-%d: want FIRST <= LAST within %d-%d (ids of no user of this host)", r.Base, r.Base+r.Count-1, floor, ceiling)
	}
	return nil
}

// ErrExhausted is wrapped when every ID of the range is in use.
var ErrExhausted = errors.New("every guest uid of the range is in use")

// Pool hands out the IDs of a Range. Its methods are safe for concurrent
// use.
type Pool struct {
	r   Range
	gid int
	dir string

	mu   sync.Mutex
	held map[int]*os.File // uid -> its locked file
}

// Open makes a pool over r whose IDs carry gid, with its locks in dir
// (created 0700).
func Open(r Range, gid int, dir string) (*Pool, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("guest id locks: %w", err)
	}
	return &Pool{r: r, gid: gid, dir: dir, held: map[int]*os.File{}}, nil
}

// Acquire returns a free ID: within the range, not in busy (the uids
// running domains carry, as the runner reads them from libvirt), and
// locked for this process. It fails wrapping ErrExhausted when none is
// left.
func (p *Pool) Acquire(busy map[int]bool) (ID, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for uid := p.r.Base; uid < p.r.Base+p.r.Count; uid++ {
		if busy[uid] || p.held[uid] != nil {
			continue
		}
		ok, err := p.lock(uid)
		if err != nil {
			return ID{}, err
		}
		if ok {
			return ID{UID: uid, GID: p.gid}, nil
		}
	}
	return ID{}, fmt.Errorf("%w (%d-%d): raise --guest-uids or run fewer guests", ErrExhausted, p.r.Base, p.r.Base+p.r.Count-1)
}

// Adopt locks the ID of a guest an earlier agent process started (read
// from its domain's label) so that it is not handed out while the guest
// runs. An ID outside the range or held by another process is an error.
func (p *Pool) Adopt(id ID) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if id.UID < p.r.Base || id.UID >= p.r.Base+p.r.Count {
		return fmt.Errorf("guest uid %d is outside this agent's range %d-%d", id.UID, p.r.Base, p.r.Base+p.r.Count-1)
	}
	if p.held[id.UID] != nil {
		return nil
	}
	ok, err := p.lock(id.UID)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("guest uid %d is held by another agent on this host", id.UID)
	}
	return nil
}

// Release gives an ID back; releasing one not held is a no-op.
func (p *Pool) Release(id ID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f := p.held[id.UID]; f != nil {
		_ = f.Close() // closing drops the flock
		delete(p.held, id.UID)
	}
}

// lock tries the flock of uid without waiting; false if another process
// holds it. Callers hold p.mu.
func (p *Pool) lock(uid int) (bool, error) {
	f, err := os.OpenFile(filepath.Join(p.dir, strconv.Itoa(uid)), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return false, fmt.Errorf("guest id lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return false, nil
		}
		return false, fmt.Errorf("guest id lock %d: %w", uid, err)
	}
	p.held[uid] = f
	return true, nil
}
