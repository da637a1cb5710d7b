package imagestore

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// ErrDigestMismatch is wrapped by every error about bytes whose sha256 is
// not the one the manifest names (a corrupt blob, a lying registry, a
// changed cache file). Callers test it with errors.Is.
var ErrDigestMismatch = errors.New("digest mismatch")

// Image is an image's manifest and config, and where Pull put it.
type Image struct {
	// Ref is the reference asked for; Digest the manifest digest.
	Ref, Digest string
	// Manifest is the OCI manifest; Config the config blob (config.json).
	Manifest v1.Manifest
	Config   []byte
	// RawManifest is the manifest as the registry served it (its sha256 is
	// Digest); the cache stores these bytes.
	RawManifest []byte
	// Dir is the image directory (Pull, Cache); "" for Inspect.
	Dir string
}

// FileSize is the bytes the image directory takes: config.json plus every
// layer file uncompressed.
func (im *Image) FileSize() int64 {
	n := int64(len(im.Config))
	for _, l := range im.Manifest.Layers {
		n += uncompressedSize(l)
	}
	return n
}

// BlobSize is the bytes the registry holds and a pull moves.
func (im *Image) BlobSize() int64 {
	n := im.Manifest.Config.Size
	for _, l := range im.Manifest.Layers {
		n += l.Size
	}
	return n
}

func uncompressedSize(l v1.Descriptor) int64 {
	if n, err := strconv.ParseInt(l.Annotations[AnnotationUncompressedSize], 10, 64); err == nil && n >= 0 {
		return n
	}
	return l.Size
}

// Inspect reads an image's manifest and config from the registry (ref by tag
// or digest) without its layers. `hpc image inspect` calls it; the digest
// of a ref by digest is checked.
func Inspect(ctx context.Context, registryURL, ref string, o Options) (*Image, error) {
	repoName, tag, digest := SplitRef(ref)
	repo, err := repository(registryURL, repoName)
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", ref, err)
	}
	var r name.Reference
	if digest != "" {
		r, err = name.NewDigest(repo.String()+"@"+digest, name.StrictValidation)
	} else {
		r, err = name.NewTag(repo.String()+":"+tag, name.StrictValidation)
	}
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", ref, err)
	}
	im, err := fetchManifest(ctx, r, o)
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", ref, err)
	}
	im.Ref = ref
	if err := fetchConfig(ctx, repo, im, o); err != nil {
		return nil, fmt.Errorf("inspect %s: %w", ref, err)
	}
	return im, nil
}

// fetchManifest gets and checks a vhpc image manifest.
func fetchManifest(ctx context.Context, r name.Reference, o Options) (*Image, error) {
	raw, err := GetManifest(ctx, r, o)
	if err != nil {
		return nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if m.Config.MediaType != ConfigMediaType {
		return nil, fmt.Errorf("not a vhpc image: config media type %q; want %q (push it with hpc image push)", m.Config.MediaType, ConfigMediaType)
	}
	if m.Config.Size > MaxConfigBytes || m.Config.Size < 0 {
		return nil, fmt.Errorf("manifest: config of %d bytes; want at most %d", m.Config.Size, MaxConfigBytes)
	}
	seen := map[string]bool{}
	for _, l := range m.Layers {
		title := l.Annotations[AnnotationTitle]
		mt, err := roleOf(title)
		if err != nil {
			return nil, fmt.Errorf("manifest: layer %s: %w", l.Digest, err)
		}
		if seen[title] {
			return nil, fmt.Errorf("manifest: two layers named %q", title)
		}
		seen[title] = true
		if base, _ := baseMediaType(string(l.MediaType)); base != mt {
			return nil, fmt.Errorf("manifest: layer %q has media type %q; want %q", title, l.MediaType, mt)
		}
		if l.Size < 0 {
			return nil, fmt.Errorf("manifest: layer %q has size %d", title, l.Size)
		}
	}
	return &Image{Digest: digestOf(raw), Manifest: *m, RawManifest: raw}, nil
}

func fetchConfig(ctx context.Context, repo name.Repository, im *Image, o Options) error {
	var buf bytes.Buffer
	if err := fetchBlob(ctx, repo, im.Manifest.Config, &buf, nil, o); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	im.Config = buf.Bytes()
	return nil
}

// Pull downloads the image ref ("repo@sha256:...", by digest only) from the
// registry into the directory dir, which must not exist, and returns it.
// The node agent's Cache calls it; tests and benchmarks too.
//
// Every blob's sha256 (and a gzip'd layer's uncompressed sha256) is checked
// while it streams; a mismatch is an error wrapping ErrDigestMismatch. Files
// are written into a temporary directory next to dir, each as a temporary
// file renamed when complete, and the directory is renamed to dir at the
// end: on any error (a mismatch, a full disk, a cancelled ctx) nothing is
// left behind. o.Progress sees the blob bytes done of the total.
func Pull(ctx context.Context, registryURL, ref, dir string, o Options) (*Image, error) {
	repoName, _, digest := SplitRef(ref)
	if digest == "" {
		return nil, fmt.Errorf("pull %s: want a reference by digest (repo@sha256:...); resolve the tag through the catalog first", ref)
	}
	repo, err := repository(registryURL, repoName)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	d, err := name.NewDigest(repo.String()+"@"+digest, name.StrictValidation)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	im, err := fetchManifest(ctx, d, o)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	im.Ref = ref
	if err := pullInto(ctx, repo, im, dir, o); err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	return im, nil
}

// pullInto writes im's config and layers into dir through a temporary
// directory renamed at the end.
func pullInto(ctx context.Context, repo name.Repository, im *Image, dir string, o Options) (err error) {
	if _, err := os.Lstat(dir); err == nil {
		return fmt.Errorf("%s already exists", dir)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".partial-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	// QEMU runs as its own user and opens the kernel, initrd and base disk
	// in place: the image directory must be traversable (MkdirTemp is 0700).
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	prog := &progress{fn: o.Progress, total: im.BlobSize()}
	prog.report()
	if err := fetchConfig(ctx, repo, im, o); err != nil {
		return err
	}
	prog.add(int64(len(im.Config)))
	if err := writeFile(filepath.Join(tmp, ConfigFile), bytes.NewReader(im.Config), nil); err != nil {
		return err
	}
	for _, l := range im.Manifest.Layers {
		title := l.Annotations[AnnotationTitle]
		err := writeFile(filepath.Join(tmp, title), nil, func(w io.Writer) error {
			return fetchLayer(ctx, repo, l, w, prog, o)
		})
		if err != nil {
			return fmt.Errorf("layer %s: %w", title, err)
		}
		o.logger().Debug("image layer pulled", "ref", im.Ref, "file", title, "digest", l.Digest.String(), "bytes", l.Size)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	im.Dir = dir
	return nil
}

// writeFile writes path through path+".part", renamed when complete and
// synced; the part file is removed on error.
func writeFile(path string, r io.Reader, fill func(io.Writer) error) (err error) {
	part := path + ".part"
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(part)
		}
	}()
	if fill != nil {
		err = fill(f)
	} else {
		_, err = io.Copy(f, r)
	}
	if err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(part, path)
}

// fetchLayer streams one layer blob into w, gunzipping a gzip'd one, and
// checks both digests.
func fetchLayer(ctx context.Context, repo name.Repository, l v1.Descriptor, w io.Writer, prog *progress, o Options) error {
	_, gzipped := baseMediaType(string(l.MediaType))
	if !gzipped {
		raw := l.Annotations[AnnotationUncompressedDigest]
		if raw != "" && raw != l.Digest.String() {
			return fmt.Errorf("%w: uncompressed digest %s differs from the blob digest %s of an uncompressed layer", ErrDigestMismatch, raw, l.Digest)
		}
		return fetchBlob(ctx, repo, l, w, prog, o)
	}
	want, err := v1.NewHash(l.Annotations[AnnotationUncompressedDigest])
	if err != nil {
		return fmt.Errorf("annotation %s: %w", AnnotationUncompressedDigest, err)
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	h := sha256.New()
	go func() {
		zr, err := gzip.NewReader(pr)
		if err == nil {
			zr.Multistream(false)
			_, err = io.Copy(io.MultiWriter(w, h), zr)
		}
		pr.CloseWithError(err)
		done <- err
	}()
	ferr := fetchBlob(ctx, repo, l, pw, prog, o)
	pw.CloseWithError(ferr)
	zerr := <-done
	if ferr != nil {
		return ferr
	}
	if zerr != nil {
		return fmt.Errorf("gunzip: %w", zerr)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want.Hex {
		return fmt.Errorf("%w: uncompressed sha256:%s, want %s", ErrDigestMismatch, got, want)
	}
	return nil
}

// fetchBlob streams a blob into w. go-containerregistry hashes the stream
// as it reads and fails the read at the end when the sha256 (or the
// length) is not the descriptor's; that failure becomes ErrDigestMismatch.
// (One hash per byte: a second one here cost a fifth of the pull rate.)
func fetchBlob(ctx context.Context, repo name.Repository, d v1.Descriptor, w io.Writer, prog *progress, o Options) error {
	layer, err := remote.Layer(repo.Digest(d.Digest.String()), o.remote(ctx)...)
	if err != nil {
		return err
	}
	rc, err := layer.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	n, err := copyProgress(ctx, w, rc, prog)
	if err != nil && isVerifyError(err) {
		return fmt.Errorf("%w: blob %s: %v", ErrDigestMismatch, d.Digest, err)
	}
	if err == nil && n != d.Size {
		return fmt.Errorf("%w: blob %s has %d bytes, want %d", ErrDigestMismatch, d.Digest, n, d.Size)
	}
	return err
}

// isVerifyError reports whether err is go-containerregistry's failed
// digest or size check (its type lives in an internal package, so it is
// recognised by its package path and message).
func isVerifyError(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		t := reflect.TypeOf(e)
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if strings.HasSuffix(t.PkgPath(), "go-containerregistry/internal/verify") || strings.HasPrefix(e.Error(), "error verifying") {
			return true
		}
	}
	return false
}

// copyBuf is the read size of a pull.
const copyBuf = 1 << 20

func copyProgress(ctx context.Context, w io.Writer, r io.Reader, prog *progress) (int64, error) {
	buf := make([]byte, copyBuf)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		nr, rerr := r.Read(buf)
		if nr > 0 {
			if _, err := w.Write(buf[:nr]); err != nil {
				return n, err
			}
			n += int64(nr)
			prog.add(int64(nr))
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// progress calls Options.Progress with running totals.
type progress struct {
	fn          func(done, total int64)
	done, total int64
}

func (p *progress) add(n int64) {
	if p == nil {
		return
	}
	p.done += n
	p.report()
}

func (p *progress) report() {
	if p != nil && p.fn != nil {
		p.fn(p.done, p.total)
	}
}
