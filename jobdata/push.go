package jobdata

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"vhpc/imagestore"
)

// Media types and annotations of a file set. They are part of the stored
// format: never change one, add new ones.
const (
	// ArtifactType marks a manifest as a vhpc file set.
	ArtifactType = "application/vnd.vhpc.files.v1"
	// ConfigMediaType is the config blob: "{}" (the manifest says it all).
	ConfigMediaType = "application/vnd.vhpc.files.config.v1+json"
	// FileMediaType is one file, stored as is.
	FileMediaType = "application/vnd.vhpc.file.v1"
	// AnnotationMode is a file's permission bits in octal ("0644").
	AnnotationMode = "vnd.vhpc.file.mode"
)

// MaxManifestBytes bounds a file set's manifest (registries refuse large
// manifests; Docker's distribution takes 4 MiB).
const MaxManifestBytes = 4 << 20

// emptyConfig is the config blob of every file set.
var emptyConfig = []byte("{}")

// Pushed is what Push stored.
type Pushed struct {
	// Digest names the set: the manifest's "sha256:<hex>".
	Digest string
	// Files and Bytes count the set's files and their total size.
	Files int
	Bytes int64
	// SentBytes is what went over the wire: files the registry already
	// held were not sent.
	SentBytes int64
}

// Push stores the collected files as one file set in the registry at
// registryURL, in the repository repoName (RepositoryName for inputs and
// datasets, OutputRepositoryName for a job's outputs), and returns its digest. Each
// file is hashed, then uploaded unless the registry holds its blob already
// (go-containerregistry asks first); the manifest goes last and is stored
// under its digest, so a set that a job can name always has every blob. A
// file that changes between hashing and upload is refused by the registry
// (the digest no longer matches) and Push fails naming it. o.Progress sees
// the bytes hashed and sent of twice the total. hpcsub (inputs) and the
// node agent (outputs) call it.
func Push(ctx context.Context, registryURL, repoName string, c *Collected, o imagestore.Options) (Pushed, error) {
	repo, err := repository(registryURL, repoName)
	if err != nil {
		return Pushed{}, err
	}
	total := c.Bytes()
	var done atomic.Int64
	step := func(n int64) {
		if o.Progress != nil {
			o.Progress(done.Add(n), 2*total)
		}
	}
	files := c.Files
	for i := range files {
		if err := c.hash(ctx, &files[i], step); err != nil {
			return Pushed{}, err
		}
	}
	ropts := o.RemoteOptions(ctx)
	if err := remote.WriteLayer(repo, &blob{data: emptyConfig, digest: mustHash(digestOf(emptyConfig)), mediaType: ConfigMediaType}, ropts...); err != nil {
		return Pushed{}, fmt.Errorf("store the file set's config: %w", err)
	}
	out := Pushed{Files: len(files), Bytes: total}
	sent := map[string]bool{}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  ArtifactType,
		Config:        v1.Descriptor{MediaType: ConfigMediaType, Size: int64(len(emptyConfig)), Digest: mustHash(digestOf(emptyConfig))},
		Layers:        make([]v1.Descriptor, 0, len(files)),
	}
	for _, f := range files {
		h := mustHash(f.Digest)
		if !sent[f.Digest] {
			sent[f.Digest] = true
			var read int64
			b := &blob{c: c, file: f, digest: h, mediaType: FileMediaType, read: &read, step: step}
			if err := remote.WriteLayer(repo, b, ropts...); err != nil {
				if errors.Is(err, errChanged) || digestInvalid(err) {
					return Pushed{}, fmt.Errorf("%s changed while it was uploaded; run again when it is complete", f.source)
				}
				return Pushed{}, fmt.Errorf("upload %s: %w", f.source, err)
			}
			if read == 0 {
				step(f.Size) // the registry had it
			}
			out.SentBytes += read
		} else {
			step(f.Size)
		}
		m.Layers = append(m.Layers, v1.Descriptor{
			MediaType: FileMediaType, Size: f.Size, Digest: h,
			Annotations: map[string]string{
				imagestore.AnnotationTitle: f.Path,
				AnnotationMode:             "0" + strconv.FormatUint(uint64(f.Mode.Perm()), 8),
			},
		})
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return Pushed{}, fmt.Errorf("file set manifest: %w", err)
	}
	if len(raw) > MaxManifestBytes {
		return Pushed{}, fmt.Errorf("the list of %d files takes %d bytes, more than the store's %d; pack them into an archive (tar) and stage that", len(files), len(raw), MaxManifestBytes)
	}
	out.Digest = digestOf(raw)
	if err := imagestore.PutManifest(ctx, repo.Digest(out.Digest), raw, o); err != nil {
		return Pushed{}, err
	}
	return out, nil
}

// hash reads f once and records its digest and size.
func (c *Collected) hash(ctx context.Context, f *File, step func(int64)) error {
	in, err := c.root.Open(f.source)
	if err != nil {
		return fmt.Errorf("%s: %w", f.source, err)
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("%s is no longer a regular file", f.source)
	}
	h := sha256.New()
	n, err := io.CopyBuffer(h, &ctxReader{ctx: ctx, r: in, step: step}, make([]byte, copyBuf))
	if err != nil {
		return fmt.Errorf("read %s: %w", f.source, err)
	}
	f.Size, f.Digest = n, "sha256:"+hex.EncodeToString(h.Sum(nil))
	return nil
}

// copyBuf is the read size of hashing, uploads and downloads.
const copyBuf = 1 << 20

// errChanged: a file was not the bytes it was hashed as.
var errChanged = errors.New("file changed since it was hashed")

// blob is a v1.Layer over one collected file (or bytes in memory) that
// remote.WriteLayer uploads; it is never decompressed on this side.
type blob struct {
	c         *Collected
	file      File
	data      []byte
	digest    v1.Hash
	mediaType string
	read      *int64
	step      func(int64)
}

var _ v1.Layer = (*blob)(nil)

func (b *blob) Digest() (v1.Hash, error) { return b.digest, nil }
func (b *blob) DiffID() (v1.Hash, error) { return b.digest, nil }
func (b *blob) Size() (int64, error) {
	if b.data != nil {
		return int64(len(b.data)), nil
	}
	return b.file.Size, nil
}
func (b *blob) MediaType() (types.MediaType, error)  { return types.MediaType(b.mediaType), nil }
func (b *blob) Uncompressed() (io.ReadCloser, error) { return b.Compressed() }

// Compressed opens the bytes to upload (a file set's blobs are stored as
// they are); a file is read through the collected root and checked for
// its hashed size, so a file that grew or shrank fails as errChanged.
func (b *blob) Compressed() (io.ReadCloser, error) {
	if b.data != nil {
		return io.NopCloser(bytesReader(b.data)), nil
	}
	f, err := b.c.root.Open(b.file.source)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.file.source, err)
	}
	return &countingFile{f: f, want: b.file.Size, read: b.read, step: b.step}, nil
}

// digestInvalid: the registry refused an upload whose bytes do not match
// the digest it was announced with (the file changed after hashing).
func digestInvalid(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	for _, d := range te.Errors {
		if d.Code == transport.DigestInvalidErrorCode {
			return true
		}
	}
	return false
}
