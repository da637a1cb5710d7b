package imagestore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// The registry plumbing below is shared with package jobdata, which keeps
// job inputs and outputs in the same registry as the images: one place
// parses registry URLs, checks blob digests and stores manifests.

// Repository turns a registry URL (http://127.0.0.1:5000,
// https://reg.example) and a repository path (vhpc-data/chemistry) into a
// go-containerregistry repository; an http URL allows plain HTTP. jobdata
// calls it.
func Repository(registryURL, repo string) (name.Repository, error) {
	return repository(registryURL, repo)
}

// RemoteOptions are the go-containerregistry options of o for one call
// (its context and transport). jobdata passes them to remote.WriteLayer.
func (o Options) RemoteOptions(ctx context.Context) []remote.Option { return o.remote(ctx) }

// FetchBlob streams the blob d of repo into w. Its sha256 and length are
// checked while it streams; a mismatch is an error wrapping
// ErrDigestMismatch (w has then seen bytes that must be thrown away).
// o.Progress sees the bytes done of d.Size. jobdata calls it.
func FetchBlob(ctx context.Context, repo name.Repository, d v1.Descriptor, w io.Writer, o Options) error {
	return fetchBlob(ctx, repo, d, w, &progress{fn: o.Progress, total: d.Size}, o)
}

// PutManifest stores raw, an OCI image manifest, under ref (a tag, or the
// manifest's own digest). The registry refuses a manifest naming a blob it
// does not hold, so a stored manifest means every blob is there. jobdata
// calls it.
func PutManifest(ctx context.Context, ref name.Reference, raw []byte, o Options) error {
	if err := remote.Put(ref, rawManifest(raw), o.remote(ctx)...); err != nil {
		return fmt.Errorf("store manifest %s: %w", ref, err)
	}
	return nil
}

// GetManifest fetches the manifest ref names; a ref by digest is checked
// against the bytes. jobdata calls it.
func GetManifest(ctx context.Context, ref name.Reference, o Options) ([]byte, error) {
	desc, err := remote.Get(ref, o.remote(ctx)...)
	if err != nil {
		return nil, err
	}
	if d, ok := ref.(name.Digest); ok {
		if got := digestOf(desc.Manifest); got != d.DigestStr() {
			return nil, fmt.Errorf("manifest: %w: got %s, want %s", ErrDigestMismatch, got, d.DigestStr())
		}
	}
	return desc.Manifest, nil
}

// digestOf is the OCI digest ("sha256:<hex>") of b.
func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
