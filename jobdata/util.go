package jobdata

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// digestOf is the OCI digest ("sha256:<hex>") of b.
func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// mustHash parses a digest this package made.
func mustHash(d string) v1.Hash {
	h, err := v1.NewHash(d)
	if err != nil {
		panic("jobdata: bad digest " + d + ": " + err.Error())
	}
	return h
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// ctxReader stops a long read when ctx ends and reports progress.
type ctxReader struct {
	ctx  context.Context
	r    io.Reader
	step func(int64)
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	if n > 0 && c.step != nil {
		c.step(int64(n))
	}
	return n, err
}

// countingFile is an upload's source: it counts what was read into *read,
// reports progress, and turns a file whose length is not the hashed one
// into errChanged (the registry refuses changed bytes of the same length
// by their digest).
type countingFile struct {
	f    *os.File
	want int64
	n    int64
	read *int64
	step func(int64)
}

func (c *countingFile) Read(p []byte) (int, error) {
	n, err := c.f.Read(p)
	c.n += int64(n)
	*c.read += int64(n)
	if n > 0 && c.step != nil {
		c.step(int64(n))
	}
	if c.n > c.want || (err == io.EOF && c.n != c.want) {
		return n, errChanged
	}
	return n, err
}

func (c *countingFile) Close() error { return c.f.Close() }
