package jobdata

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
)

// Stage is one staged file or folder: From is relative to the root that
// Collect reads, To relative to the job's work directory for stage-in (or
// to the fetch directory for stage-out). An empty To means From.
type Stage struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// File is one file of a set.
type File struct {
	// Path is where the file goes: relative, checked by CheckPath.
	Path string `json:"path"`
	// Size in bytes.
	Size int64 `json:"size"`
	// Mode holds the permission bits only.
	Mode fs.FileMode `json:"mode"`
	// Digest is the content's "sha256:<hex>" (Push fills it in).
	Digest string `json:"digest,omitempty"`
	// source is the file's path under the collected root.
	source string
}

// MaxFiles bounds the files of one set (the manifest must stay small; a
// folder of more files should travel as an archive).
const MaxFiles = 10000

// Collected is the files Collect found under a root, still open for Push.
type Collected struct {
	root *os.Root
	// Files are sorted by Path.
	Files []File
	// Missing lists the From of each stage whose source does not exist
	// (only with AllowMissing).
	Missing []string
	// Skipped lists the symlinks and special files found inside staged
	// folders; they are never followed nor sent.
	Skipped []string
}

// Bytes is the total size of the files.
func (c *Collected) Bytes() int64 {
	var n int64
	for _, f := range c.Files {
		n += f.Size
	}
	return n
}

// Close releases the root.
func (c *Collected) Close() error {
	if c == nil || c.root == nil {
		return nil
	}
	return c.root.Close()
}

// CollectOptions tune Collect.
type CollectOptions struct {
	// AllowMissing records stages whose source does not exist in Missing
	// instead of failing (stage-out: the job's result says which).
	AllowMissing bool
}

// Collect lists the regular files the stages name under dir, through
// os.Root: a stage naming a symlink, "..", an absolute path or a special
// file is refused with its path; symlinks and special files inside a staged
// folder are skipped (listed in Skipped), never followed. Two stages that
// put different files at one path are refused. Nothing is read but
// metadata; Push reads the contents. hpcsub calls it on the submit
// directory (stageIn), the agent on the work directory (stageOut).
func Collect(dir string, stages []Stage, o CollectOptions) (*Collected, error) {
	for _, s := range stages {
		if err := CheckPath(path.Clean(s.From)); err != nil {
			return nil, fmt.Errorf("stage %q: %w", s.From, err)
		}
		if s.To != "" {
			if err := CheckPath(path.Clean(s.To)); err != nil {
				return nil, fmt.Errorf("stage %q to %q: %w", s.From, s.To, err)
			}
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	c := &Collected{root: root}
	byPath := map[string]string{} // destination -> source
	add := func(src, dst string, info fs.FileInfo) error {
		if prev, ok := byPath[dst]; ok {
			if prev == src {
				return nil
			}
			return fmt.Errorf("%s and %s would both be staged as %s", prev, src, dst)
		}
		if len(c.Files) >= MaxFiles {
			return fmt.Errorf("more than %d files to stage; pack them into an archive (tar) and stage that", MaxFiles)
		}
		byPath[dst] = src
		c.Files = append(c.Files, File{Path: dst, Size: info.Size(), Mode: info.Mode().Perm(), source: src})
		return nil
	}
	for _, s := range stages {
		from := path.Clean(s.From)
		to := from
		if s.To != "" {
			to = path.Clean(s.To)
		}
		if err := c.collectOne(from, to, o, add); err != nil {
			root.Close()
			return nil, err
		}
	}
	if err := checkTree(c.Files); err != nil {
		root.Close()
		return nil, err
	}
	return c, nil
}

func (c *Collected) collectOne(from, to string, o CollectOptions, add func(src, dst string, info fs.FileInfo) error) error {
	st, err := c.root.Lstat(from)
	switch {
	case errors.Is(err, fs.ErrNotExist) && o.AllowMissing:
		c.Missing = append(c.Missing, from)
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: no such file or folder in %s", from, c.root.Name())
	case err != nil:
		return fmt.Errorf("%s: %w", from, err)
	case st.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%s is a symlink; symlinks are not staged (stage the file it points to)", from)
	case st.Mode().IsRegular():
		return add(from, to, st)
	case !st.IsDir():
		return fmt.Errorf("%s is not a regular file or folder", from)
	}
	return fs.WalkDir(c.root.FS(), from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		switch {
		case d.IsDir():
			return nil
		case !d.Type().IsRegular():
			c.Skipped = append(c.Skipped, p)
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		rel := strings.TrimPrefix(p, from+"/")
		if from == "." {
			rel = p
		}
		return add(p, path.Join(to, rel), info)
	})
}

// checkTree refuses a set in which one path is both a file and the folder
// of another ("a" and "a/b"), or holds one path twice: it could not be
// laid out. The items are
// sorted by their path on return.
func checkTree(items []File) error {
	slices.SortFunc(items, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	files := make(map[string]bool, len(items))
	for _, it := range items {
		if files[it.Path] {
			return fmt.Errorf("two files at %s", it.Path)
		}
		files[it.Path] = true
	}
	for _, it := range items {
		p := it.Path
		for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
			if files[dir] {
				return fmt.Errorf("%s is a file, so %s cannot be under it", dir, p)
			}
		}
	}
	return nil
}

// Limit keeps the files, in path order, while their total stays within
// maxBytes, and returns the ones it dropped (nil when all fit). The agent
// calls it on stage-out: an output over the limit is uploaded in part, and
// the job's result names what was left out.
func (c *Collected) Limit(maxBytes int64) (dropped []File) {
	var n int64
	for i, f := range c.Files {
		if n+f.Size > maxBytes {
			dropped = slices.Clone(c.Files[i:])
			c.Files = c.Files[:i]
			return dropped
		}
		n += f.Size
	}
	return nil
}
