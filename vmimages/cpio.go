package vmimages

import (
	"fmt"
	"io"
	"path"
	"strings"
)

// cpioWriter writes a "newc" (SVR4, no CRC) cpio archive, the format the
// Linux kernel unpacks as an initramfs. It writes only what an initramfs
// needs: directories, regular files, symlinks and device nodes, all owned
// by root with mtime 0 so that the archive is reproducible.
type cpioWriter struct {
	w   io.Writer
	ino uint32
	err error
}

// Mode bits of the newc format (same values as in stat(2)).
const (
	cpioDir     = 0o040000
	cpioFile    = 0o100000
	cpioSymlink = 0o120000
	cpioCharDev = 0o020000
)

type cpioEntry struct {
	name     string // without leading "/"
	mode     uint32 // type | permissions
	data     []byte // file content or symlink target
	rdevMaj  uint32
	rdevMin  uint32
	fileSize int64 // when writing from a reader
}

func (c *cpioWriter) header(e cpioEntry, size int64) {
	if c.err != nil {
		return
	}
	c.ino++
	nlink := uint32(1)
	if e.mode&0o170000 == cpioDir {
		nlink = 2
	}
	name := e.name + "\x00"
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, e.mode, 0, 0, nlink, 0, uint32(size), 0, 0, e.rdevMaj, e.rdevMin, len(name), 0)
	c.write([]byte(hdr))
	c.write([]byte(name))
	c.pad(int64(len(hdr) + len(name)))
}

func (c *cpioWriter) write(b []byte) {
	if c.err != nil {
		return
	}
	_, c.err = c.w.Write(b)
}

func (c *cpioWriter) pad(n int64) {
	if r := n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

// add writes one entry with in-memory data.
func (c *cpioWriter) add(e cpioEntry) error {
	e.name = cleanName(e.name)
	c.header(e, int64(len(e.data)))
	c.write(e.data)
	c.pad(int64(len(e.data)))
	return c.err
}

// addReader writes one regular file of the given size from r.
func (c *cpioWriter) addReader(name string, perm uint32, size int64, r io.Reader) error {
	e := cpioEntry{name: cleanName(name), mode: cpioFile | perm}
	c.header(e, size)
	if c.err != nil {
		return c.err
	}
	n, err := io.Copy(c.w, io.LimitReader(r, size))
	if err != nil {
		c.err = err
		return err
	}
	if n != size {
		c.err = fmt.Errorf("cpio: %s: short read (%d of %d bytes)", name, n, size)
		return c.err
	}
	c.pad(size)
	return c.err
}

// close writes the trailer.
func (c *cpioWriter) close() error {
	return c.add(cpioEntry{name: "TRAILER!!!"})
}

func cleanName(n string) string {
	if n == "TRAILER!!!" {
		return n
	}
	return strings.TrimPrefix(path.Clean("/"+n), "/")
}
