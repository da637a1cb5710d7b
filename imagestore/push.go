package imagestore

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Options tune Push, Pull and Inspect; the zero value works.
type Options struct {
	// Progress, when set, is called with the bytes done and the total while
	// blobs move (from one goroutine at a time).
	Progress func(done, total int64)
	// Logger gets one line per layer; nil is slog.Default().
	Logger *slog.Logger
	// Transport replaces http.DefaultTransport (tests, TLS settings).
	Transport http.RoundTripper
	// TempDir holds gzip'd layers while Push uploads them; "" is os.TempDir().
	TempDir string
	// Token answers the bearer tokens a registry with token auth asks
	// for (the cluster's registry); nil: the context's (WithTokenSource),
	// else anonymous, which such a registry refuses.
	Token TokenSource
}

func (o Options) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.Default()
}

func (o Options) remote(ctx context.Context) []remote.Option {
	opts := []remote.Option{remote.WithContext(ctx)}
	if o.Transport != nil {
		opts = append(opts, remote.WithTransport(o.Transport))
	}
	src := o.Token
	if src == nil {
		src = tokenSourceFrom(ctx)
	}
	if src != nil {
		opts = append(opts, remote.WithAuthFromKeychain(tokenKeychain{src}))
	}
	return opts
}

// PushResult is what Push stored.
type PushResult struct {
	// Digest is the manifest digest ("sha256:..."): what the catalog records
	// and agents pull.
	Digest string
	// Size is the sum of the blob sizes in the registry (config and layers).
	Size int64
	// Manifest is the stored manifest.
	Manifest v1.Manifest
}

// Push stores the image directory dir as an OCI artifact in the registry at
// registryURL under ref ("department/name:tag", tag default latest) and
// returns its manifest digest. Called by `hpc image push` and tests.
//
// It checks the directory first (config.json a JSON object of at most
// MaxConfigBytes, every other file one of LayerFileNames, exactly one
// kernel) and sends nothing when that fails. Layers whose first MiB shrinks
// by a tenth or more under gzip are stored gzip'd (deterministically: the
// same directory gives the same digest). Blobs the registry already holds
// are not sent again.
func Push(ctx context.Context, registryURL, ref, dir string, o Options) (PushResult, error) {
	repoName, tag, digest := SplitRef(ref)
	if digest != "" {
		return PushResult{}, fmt.Errorf("push %s: want a tag, not a digest", ref)
	}
	repo, err := repository(registryURL, repoName)
	if err != nil {
		return PushResult{}, fmt.Errorf("push %s: %w", ref, err)
	}
	tagRef, err := name.NewTag(repo.String()+":"+tag, name.StrictValidation)
	if err != nil {
		return PushResult{}, fmt.Errorf("push %s: tag %q: %w", ref, tag, err)
	}
	config, files, err := readImageDir(dir)
	if err != nil {
		return PushResult{}, fmt.Errorf("push %s: %w", ref, err)
	}
	tmp, err := os.MkdirTemp(o.TempDir, "vhpc-push-")
	if err != nil {
		return PushResult{}, fmt.Errorf("push %s: %w", ref, err)
	}
	defer os.RemoveAll(tmp)

	ropts := o.remote(ctx)
	cfg := newBytesBlob(config, ConfigMediaType)
	if err := remote.WriteLayer(repo, cfg, ropts...); err != nil {
		return PushResult{}, fmt.Errorf("push %s: config: %w", ref, err)
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  ArtifactType,
		Config:        v1.Descriptor{MediaType: ConfigMediaType, Size: cfg.size, Digest: cfg.digest},
	}
	total := cfg.size
	for _, f := range files {
		blob, err := prepareLayer(filepath.Join(dir, f), tmp)
		if err != nil {
			return PushResult{}, fmt.Errorf("push %s: %w", ref, err)
		}
		if err := remote.WriteLayer(repo, blob, ropts...); err != nil {
			return PushResult{}, fmt.Errorf("push %s: layer %s: %w", ref, f, err)
		}
		o.logger().Info("image layer pushed", "ref", ref, "file", f, "digest", blob.digest.String(), "bytes", blob.size, "file_bytes", blob.rawSize)
		m.Layers = append(m.Layers, v1.Descriptor{
			MediaType: types.MediaType(blob.mediaType),
			Size:      blob.size,
			Digest:    blob.digest,
			Annotations: map[string]string{
				AnnotationTitle:              f,
				AnnotationUncompressedDigest: blob.rawDigest.String(),
				AnnotationUncompressedSize:   strconv.FormatInt(blob.rawSize, 10),
			},
		})
		total += blob.size
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return PushResult{}, fmt.Errorf("push %s: %w", ref, err)
	}
	if err := PutManifest(ctx, tagRef, raw, o); err != nil {
		return PushResult{}, fmt.Errorf("push %s: %w", ref, err)
	}
	return PushResult{Digest: digestOf(raw), Size: total, Manifest: m}, nil
}

// readImageDir checks an image directory and returns config.json and the
// layer files' names, sorted.
func readImageDir(dir string) ([]byte, []string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("image directory: %w", err)
	}
	var config []byte
	var files []string
	kernels := 0
	for _, e := range entries {
		if !e.Type().IsRegular() {
			return nil, nil, fmt.Errorf("image directory %s: %s is not a regular file", dir, e.Name())
		}
		if e.Name() == ConfigFile {
			config, err = readConfig(filepath.Join(dir, ConfigFile))
			if err != nil {
				return nil, nil, err
			}
			continue
		}
		mt, err := roleOf(e.Name())
		if err != nil {
			return nil, nil, fmt.Errorf("image directory %s: %w", dir, err)
		}
		if mt == KernelMediaType {
			kernels++
		}
		files = append(files, e.Name())
	}
	if config == nil {
		return nil, nil, fmt.Errorf("image directory %s: no %s; build the image first (hpc image build)", dir, ConfigFile)
	}
	if kernels != 1 {
		return nil, nil, fmt.Errorf("image directory %s: has %d kernels; want exactly one of kernel, vmlinuz, vmlinux", dir, kernels)
	}
	sort.Strings(files)
	return config, files, nil
}

func readConfig(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > MaxConfigBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, MaxConfigBytes)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return nil, fmt.Errorf("%s: want a JSON object: %w", path, err)
	}
	return b, nil
}

// compressSample is how much of a file decides whether gzip helps.
const compressSample = 1 << 20

// prepareLayer hashes a file and, when gzip helps, writes its gzip'd copy
// into tmp, hashing the raw bytes on that same pass (each file is read
// once, plus the 1 MiB sample).
func prepareLayer(path, tmp string) (*fileBlob, error) {
	mt, err := roleOf(filepath.Base(path))
	if err != nil {
		return nil, err
	}
	helps, err := gzipHelps(path)
	if err != nil {
		return nil, err
	}
	if !helps {
		rawDigest, rawSize, err := hashFile(path)
		if err != nil {
			return nil, err
		}
		return &fileBlob{path: path, mediaType: mt, rawDigest: rawDigest, rawSize: rawSize, digest: rawDigest, size: rawSize}, nil
	}
	gz, err := os.CreateTemp(tmp, filepath.Base(path)+"-*.gz")
	if err != nil {
		return nil, err
	}
	defer gz.Close()
	in, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	h, rh := sha256.New(), sha256.New()
	cw := &countWriter{w: io.MultiWriter(gz, h)}
	zw, err := gzip.NewWriterLevel(cw, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	rawSize, err := io.Copy(zw, io.TeeReader(in, rh))
	if err != nil {
		return nil, fmt.Errorf("gzip %s: %w", path, err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("gzip %s: %w", path, err)
	}
	if err := gz.Close(); err != nil {
		return nil, fmt.Errorf("gzip %s: %w", path, err)
	}
	return &fileBlob{path: gz.Name(), mediaType: mt + GzipSuffix,
		rawDigest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(rh.Sum(nil))}, rawSize: rawSize,
		digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}, size: cw.n}, nil
}

// gzipHelps reports whether the first compressSample bytes of a file shrink
// by at least a tenth under gzip.
func gzipHelps(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	sample, err := io.ReadAll(io.LimitReader(f, compressSample))
	if err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	if len(sample) == 0 {
		return false, nil
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if _, err := zw.Write(sample); err != nil {
		return false, err
	}
	if err := zw.Close(); err != nil {
		return false, err
	}
	return buf.Len()*10 <= len(sample)*9, nil
}

// hashFile is the sha256 and size of a file (push and the cache's verify).
func hashFile(path string) (v1.Hash, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return v1.Hash{}, 0, err
	}
	defer f.Close()
	h, n, err := v1.SHA256(f)
	if err != nil {
		return v1.Hash{}, 0, fmt.Errorf("%s: %w", path, err)
	}
	return h, n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// rawManifest is a remote.Taggable with an OCI manifest media type.
type rawManifest []byte

func (r rawManifest) RawManifest() ([]byte, error)        { return r, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// fileBlob is a v1.Layer over a file already hashed: what remote.WriteLayer
// uploads (it is never decompressed on this side).
type fileBlob struct {
	path      string
	mediaType string
	digest    v1.Hash
	size      int64
	rawDigest v1.Hash
	rawSize   int64
}

var _ v1.Layer = (*fileBlob)(nil)

func (b *fileBlob) Digest() (v1.Hash, error)            { return b.digest, nil }
func (b *fileBlob) DiffID() (v1.Hash, error)            { return b.rawDigest, nil }
func (b *fileBlob) Size() (int64, error)                { return b.size, nil }
func (b *fileBlob) MediaType() (types.MediaType, error) { return types.MediaType(b.mediaType), nil }
func (b *fileBlob) Compressed() (io.ReadCloser, error)  { return os.Open(b.path) }
func (b *fileBlob) Uncompressed() (io.ReadCloser, error) {
	return nil, errors.New("imagestore: not supported")
}

// bytesBlob is a v1.Layer over bytes in memory (the config).
type bytesBlob struct {
	data      []byte
	mediaType string
	digest    v1.Hash
	size      int64
}

var _ v1.Layer = (*bytesBlob)(nil)

func newBytesBlob(data []byte, mediaType string) *bytesBlob {
	sum := sha256.Sum256(data)
	return &bytesBlob{data: data, mediaType: mediaType, digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}, size: int64(len(data))}
}

func (b *bytesBlob) Digest() (v1.Hash, error)            { return b.digest, nil }
func (b *bytesBlob) DiffID() (v1.Hash, error)            { return b.digest, nil }
func (b *bytesBlob) Size() (int64, error)                { return b.size, nil }
func (b *bytesBlob) MediaType() (types.MediaType, error) { return types.MediaType(b.mediaType), nil }
func (b *bytesBlob) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(b.data)), nil
}
func (b *bytesBlob) Uncompressed() (io.ReadCloser, error) { return b.Compressed() }
