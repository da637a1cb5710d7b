package jobdata

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"vhpc/imagestore"
)

// Set is a stored file set as Inspect read it: every path checked.
type Set struct {
	// Digest names the set ("sha256:<hex>").
	Digest string
	// Files are sorted by Path.
	Files  []File
	layers []v1.Descriptor
}

// Bytes is the total size of the files.
func (s *Set) Bytes() int64 {
	var n int64
	for _, f := range s.Files {
		n += f.Size
	}
	return n
}

// CheckDigest reports whether d is a well-formed "sha256:<64 hex>" digest.
func CheckDigest(d string) error {
	h, err := v1.NewHash(d)
	if err != nil || h.Algorithm != "sha256" {
		return fmt.Errorf("file set %q: want sha256:<64 hex digits>", d)
	}
	return nil
}

// Inspect fetches the manifest of the file set digest from the repository
// repoName (RepositoryName or OutputRepositoryName) and checks it: the bytes match the digest, it is a vhpc file
// set, at most MaxFiles files, every path passes CheckPath, no path twice
// or both a file and a folder, every mode only permission bits. Nothing is
// written. The master calls it at submit; Pull calls it first.
func Inspect(ctx context.Context, registryURL, repoName, digest string, o imagestore.Options) (*Set, error) {
	if err := CheckDigest(digest); err != nil {
		return nil, err
	}
	repo, err := repository(registryURL, repoName)
	if err != nil {
		return nil, err
	}
	raw, err := imagestore.GetManifest(ctx, repo.Digest(digest), o)
	if err != nil {
		return nil, fmt.Errorf("file set %s: %w", digest, err)
	}
	if len(raw) > MaxManifestBytes {
		return nil, fmt.Errorf("file set %s: manifest of %d bytes; at most %d", digest, len(raw), MaxManifestBytes)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("file set %s: manifest: %w", digest, err)
	}
	if m.ArtifactType != ArtifactType || m.Config.MediaType != ConfigMediaType {
		return nil, fmt.Errorf("file set %s: not a vhpc file set (artifact type %q)", digest, m.ArtifactType)
	}
	if len(m.Layers) > MaxFiles {
		return nil, fmt.Errorf("file set %s: %d files; at most %d", digest, len(m.Layers), MaxFiles)
	}
	s := &Set{Digest: digest}
	byPath := make(map[string]v1.Descriptor, len(m.Layers))
	for _, l := range m.Layers {
		f, err := fileOf(l)
		if err != nil {
			return nil, fmt.Errorf("file set %s: %w", digest, err)
		}
		s.Files = append(s.Files, f)
		byPath[f.Path] = l
	}
	if err := checkTree(s.Files); err != nil {
		return nil, fmt.Errorf("file set %s: %w", digest, err)
	}
	for _, f := range s.Files {
		s.layers = append(s.layers, byPath[f.Path])
	}
	return s, nil
}

// fileOf checks one layer of a file set.
func fileOf(l v1.Descriptor) (File, error) {
	p := l.Annotations[imagestore.AnnotationTitle]
	if err := CheckPath(p); err != nil {
		return File{}, fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	if l.MediaType != FileMediaType {
		return File{}, fmt.Errorf("%s: media type %q; want %q", p, l.MediaType, FileMediaType)
	}
	if l.Size < 0 || l.Digest.Algorithm != "sha256" {
		return File{}, fmt.Errorf("%s: bad size %d or digest %s", p, l.Size, l.Digest)
	}
	mode, err := strconv.ParseUint(l.Annotations[AnnotationMode], 8, 32)
	if err != nil || mode&^0o777 != 0 {
		return File{}, fmt.Errorf("%s: mode %q; want octal permission bits like 0644", p, l.Annotations[AnnotationMode])
	}
	return File{Path: p, Size: l.Size, Mode: fs.FileMode(mode), Digest: l.Digest.String()}, nil
}

// Pull lays out the file set digest under dir, which must exist: each file
// is streamed into a temporary file (its sha256 checked on the way, a
// mismatch wrapping imagestore.ErrDigestMismatch) and renamed into place,
// replacing a file of that name; folders are created as needed. All of it
// goes through os.Root, so no path, symlink or registry answer writes
// outside dir. On error the files already in place stay (a second Pull
// replaces them) and no temporary file is left. o.Progress sees the bytes
// done of the set's total. The agent (inputs) and hpcsub fetch (outputs)
// call it.
func Pull(ctx context.Context, registryURL, repoName, digest, dir string, o imagestore.Options) (*Set, error) {
	s, err := Inspect(ctx, registryURL, repoName, digest, o)
	if err != nil {
		return nil, err
	}
	repo, err := repository(registryURL, repoName)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	defer root.Close()
	total, done := s.Bytes(), int64(0)
	for i, f := range s.Files {
		fo := o
		if o.Progress != nil {
			base := done
			fo.Progress = func(n, _ int64) { o.Progress(base+n, total) }
		}
		if err := pullFile(ctx, root, repo, s.layers[i], f, fo); err != nil {
			return nil, fmt.Errorf("%s: %w", f.Path, err)
		}
		done += f.Size
	}
	return s, nil
}

func pullFile(ctx context.Context, root *os.Root, repo name.Repository, l v1.Descriptor, f File, o imagestore.Options) error {
	return placeFile(root, f, func(out *os.File) error { return imagestore.FetchBlob(ctx, repo, l, out, o) })
}

// placeFile writes f.Path under root: folders made as needed, the content
// (from fetch) into a temporary file that is renamed into place, replacing
// a regular file of that name only. Every step goes through root, so no
// path or symlink places anything outside it; on error no temporary file
// is left. pullFile calls it with the registry fetch; FuzzPlaceFile with
// fixed content.
func placeFile(root *os.Root, f File, fetch func(*os.File) error) (err error) {
	if dir := path.Dir(f.Path); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	if st, err := root.Lstat(f.Path); err == nil && !st.Mode().IsRegular() {
		return fmt.Errorf("%s exists and is not a regular file; not replacing it", f.Path)
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	part := f.Path + ".vhpc-part-" + hex.EncodeToString(rnd[:])
	out, err := root.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			out.Close()
			_ = root.Remove(part)
		}
	}()
	if err := fetch(out); err != nil {
		return err
	}
	if err := out.Chmod(f.Mode); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return root.Rename(part, f.Path) // on error the deferred cleanup removes part
}

// Delete removes the file set digest from the repository repoName (its
// manifest; the registry's garbage collection frees blobs no manifest
// names any more). A set that is already gone is not an error. The
// master's retention loop calls it.
func Delete(ctx context.Context, registryURL, repoName, digest string, o imagestore.Options) error {
	if err := CheckDigest(digest); err != nil {
		return err
	}
	repo, err := repository(registryURL, repoName)
	if err != nil {
		return err
	}
	if err := remote.Delete(repo.Digest(digest), o.RemoteOptions(ctx)...); err != nil {
		var te *transport.Error
		// Only the manifest's own 404 means gone: a token realm that
		// answers 404 (a client without a token) is a refusal.
		if errors.As(err, &te) && te.StatusCode == http.StatusNotFound && te.Request != nil && strings.Contains(te.Request.URL.Path, "/manifests/") {
			return nil
		}
		return fmt.Errorf("delete file set %s: %w", digest, err)
	}
	return nil
}
