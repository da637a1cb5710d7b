// Package staging owns the per-allocation job directory on a node:
//
//	<state>/jobs/<allocID>/
//	    share/          the 9p job share (job.json, output.log, exit.json)
//	    share/work/     the job's working directory (stage-in target, stage-out source)
//	    scratch.img     sparse raw scratch disk, ext4-formatted on the host
//	    root.qcow2      overlay on a qcow2 template (department images)
//
// It copies files between a source root (the submitter's directory in dev
// mode) and the work directory. Every user path is relative and checked
// (CheckPath), and every copy goes through os.Root, so neither "..", an
// absolute path nor a symlink can reach outside either root; symlinks are
// never followed, only skipped. The runner calls it; it knows nothing of
// libvirt.
package staging

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// Stage is one copy: From and To are relative paths. For stage-in, From is
// under the source root and To under the work directory; for stage-out the
// other way round. An empty To means the same path as From.
type Stage struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// CheckPath reports whether p is a safe relative path for staging: not
// empty, not absolute, no ".." element, no NUL, no backslash tricks. It
// checks the string only; os.Root enforces confinement at copy time.
func CheckPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("path %q contains NUL", p)
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("path %q is absolute; use a path relative to the job directory", p)
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return fmt.Errorf("path %q leaves the job directory (..)", p)
		}
	}
	if !filepath.IsLocal(p) {
		return fmt.Errorf("path %q is not a local path", p)
	}
	return nil
}

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

// Copy copies each stage from srcRoot to dstRoot, both directories. A
// stage naming a directory copies its tree. Symlinks are skipped, never
// followed; special files are skipped. Stages that name a missing source
// fail. Used for stage-in (source dir -> work) and stage-out (work ->
// source dir).
func Copy(srcRoot, dstRoot string, stages []Stage) error {
	for _, s := range stages {
		if err := CheckPath(s.From); err != nil {
			return fmt.Errorf("stage from: %w", err)
		}
		if s.To != "" {
			if err := CheckPath(s.To); err != nil {
				return fmt.Errorf("stage to: %w", err)
			}
		}
	}
	if len(stages) == 0 {
		return nil
	}
	src, err := os.OpenRoot(srcRoot)
	if err != nil {
		return fmt.Errorf("open staging source: %w", err)
	}
	defer src.Close()
	dst, err := os.OpenRoot(dstRoot)
	if err != nil {
		return fmt.Errorf("open staging destination: %w", err)
	}
	defer dst.Close()
	for _, s := range stages {
		to := s.To
		if to == "" {
			to = s.From
		}
		if err := copyOne(src, dst, path.Clean(s.From), path.Clean(to)); err != nil {
			return fmt.Errorf("stage %s -> %s: %w", s.From, to, err)
		}
	}
	return nil
}

func copyOne(src, dst *os.Root, from, to string) error {
	st, err := src.Lstat(from)
	if err != nil {
		return err
	}
	switch {
	case st.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%s is a symlink; symlinks are not staged", from)
	case st.Mode().IsRegular():
		return copyFile(src, dst, from, to, st.Mode().Perm())
	case !st.IsDir():
		return fmt.Errorf("%s is not a regular file or directory", from)
	}
	return fs.WalkDir(src.FS(), from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, from), "/")
		if from == "." {
			rel = strings.TrimPrefix(p, ".")
			if p != "." {
				rel = p
			}
		}
		target := path.Join(to, rel)
		switch {
		case d.IsDir():
			return dst.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			return copyFile(src, dst, p, target, info.Mode().Perm())
		default:
			return nil // symlinks, devices, sockets: skipped, never followed
		}
	})
}

func copyFile(src, dst *os.Root, from, to string, perm fs.FileMode) error {
	in, err := src.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	// os.Root.Open follows a symlink that appeared after Lstat only
	// within the root; make sure we got a regular file.
	if st, err := in.Stat(); err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("%s is no longer a regular file", from)
	}
	if dir := path.Dir(to); dir != "." {
		if err := dst.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	// Never write through an existing symlink in the destination.
	if st, err := dst.Lstat(to); err == nil && st.Mode()&fs.ModeSymlink != 0 {
		if err := dst.Remove(to); err != nil {
			return err
		}
	}
	out, err := dst.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm|0o200)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
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
