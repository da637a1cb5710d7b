// Package staging owns the per-allocation job directory on a node:
//
//	<state>/jobs/<allocID>/
//	    share/          the 9p job share (job.json, output.log, exit.json)
//	    share/work/     the job's working directory (stage-in target, stage-out source)
//	    scratch.img     sparse raw scratch disk, ext4-formatted on the host
//	    root.qcow2      overlay on a qcow2 template (department images)
//
// Files reach the work directory only as file sets fetched by digest from
// the cluster's store (package jobdata), never from a path a client named.
// The runner calls it; it knows nothing of libvirt.
package staging

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
)

// CheckAllocID reports whether id can name a job directory: a single path
// element of [A-Za-z0-9._-], not "." or "..".
func CheckAllocID(id string) error {
	if id == "" || id == "." || id == ".." || len(id) > 128 {
		return fmt.Errorf("allocation id %q cannot name a directory", id)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return fmt.Errorf("allocation id %q: character %q not allowed", id, r)
		}
	}
	return nil
}

// Dir is the layout of one allocation's job directory.
type Dir struct {
	Root    string // <state>/jobs/<allocID>
	Share   string // Root/share
	Work    string // Root/share/work
	Scratch string // Root/scratch.img
	Overlay string // Root/root.qcow2
}

// Layout returns the job directory of allocID under stateDir; it creates
// nothing.
func Layout(stateDir, allocID string) (Dir, error) {
	if err := CheckAllocID(allocID); err != nil {
		return Dir{}, err
	}
	root := filepath.Join(stateDir, "jobs", allocID)
	return Dir{
		Root:    root,
		Share:   filepath.Join(root, "share"),
		Work:    filepath.Join(root, "share", "work"),
		Scratch: filepath.Join(root, "scratch.img"),
		Overlay: filepath.Join(root, "root.qcow2"),
	}, nil
}

// Prepare creates the job directory and, when scratchMiB > 0, a sparse
// scratch file of that size formatted as ext4 (mkfs.ext4 from e2fsprogs,
// lazy init, so it takes milliseconds; without mkfs.ext4 the file stays
// blank and the guest formats it). It fails if the directory exists.
func Prepare(ctx context.Context, d Dir, scratchMiB int64) error {
	if err := os.MkdirAll(filepath.Dir(d.Root), 0o755); err != nil {
		return fmt.Errorf("create jobs dir: %w", err)
	}
	if err := os.Mkdir(d.Root, 0o755); err != nil {
		return fmt.Errorf("create job dir: %w", err)
	}
	if err := os.MkdirAll(d.Work, 0o755); err != nil {
		return fmt.Errorf("create job share: %w", err)
	}
	if scratchMiB <= 0 {
		return nil
	}
	f, err := os.OpenFile(d.Scratch, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create scratch: %w", err)
	}
	if err := f.Truncate(scratchMiB << 20); err != nil {
		f.Close()
		return fmt.Errorf("size scratch to %d MiB: %w", scratchMiB, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("create scratch: %w", err)
	}
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		return nil // the guest formats it (busybox mke2fs)
	}
	cmd := exec.CommandContext(ctx, mkfs, "-q", "-F", "-m", "0", "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard", d.Scratch)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("format scratch: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	return nil
}

// Cleanup removes the job directory with its scratch file. A missing
// directory is not an error.
func Cleanup(d Dir) error {
	if d.Root == "" {
		return errors.New("cleanup: empty job dir")
	}
	if err := os.RemoveAll(d.Root); err != nil {
		return fmt.Errorf("remove job dir: %w", err)
	}
	return nil
}

// ChownTree gives the tree at root to uid:gid without following symlinks.
// The runner uses it so that QEMU, which runs unprivileged, can serve the
// job share.
func ChownTree(root string, uid, gid int) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			return fmt.Errorf("chown %s: %w", p, err)
		}
		return nil
	})
}
