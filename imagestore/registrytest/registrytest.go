// Package registrytest starts a real OCI registry (Debian's docker-registry)
// for tests: on a free loopback port, with its storage in t.TempDir(),
// killed at the test's cleanup, refusing every request without a token
// signed by the test's own registry token key (security/regtoken), as
// hpcd's registry does. Test code only.
package registrytest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"vhpc/imagestore"
	"vhpc/security/regtoken"
)

// Registry is a running test registry and the key it trusts.
type Registry struct {
	*imagestore.Registry
	// Issuer signs tokens the registry accepts (default TTL and clock).
	Issuer *regtoken.Issuer

	certPEM, keyPEM []byte
}

// Start runs docker-registry with token auth for the test and returns it;
// the test fails (naming the Debian package) when the program is missing
// or does not answer within 20 s.
func Start(t testing.TB) *Registry {
	t.Helper()
	return StartIn(t, t.TempDir())
}

// StartIn is Start with the registry's files under dir (its blobs in
// dir/storage), for tests that reach into the storage.
func StartIn(t testing.TB, dir string) *Registry {
	t.Helper()
	certPEM, keyPEM, err := regtoken.NewKeyPair(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	iss, err := regtoken.Parse(certPEM, keyPEM, regtoken.Config{})
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(dir, regtoken.CertFile)
	if err := os.WriteFile(bundle, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := imagestore.StartRegistry(context.Background(), imagestore.RegistryConfig{Dir: dir, StartTimeout: 20 * time.Second,
		TokenAuth: &imagestore.TokenAuth{Service: iss.Service(), Issuer: iss.Name(), RootCertBundle: bundle}})
	if err != nil {
		t.Fatalf("%v (scripts/install-deps.sh installs it)", err)
	}
	t.Cleanup(func() { r.Close() })
	return &Registry{Registry: r, Issuer: iss, certPEM: certPEM, keyPEM: keyPEM}
}

// IssuerWith returns an Issuer over the registry's trusted key with cfg
// (a short TTL, a clock in the past); the test fails on a bad cfg.
func (r *Registry) IssuerWith(t testing.TB, cfg regtoken.Config) *regtoken.Issuer {
	t.Helper()
	iss, err := regtoken.Parse(r.certPEM, r.keyPEM, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

// Tokens is a TokenSource for the test's own use: pull, push and delete
// on whatever repository is asked.
func (r *Registry) Tokens() imagestore.TokenSource {
	return func(_ context.Context, repo string) (string, error) {
		var access []regtoken.Access
		if repo != "" {
			access = append(access, regtoken.Repository(repo, regtoken.ActionPull, regtoken.ActionPush, regtoken.ActionDelete))
		}
		tok, err := r.Issuer.Issue("test", access...)
		return tok.Raw, err
	}
}

// Options are imagestore.Options carrying Tokens.
func (r *Registry) Options() imagestore.Options { return imagestore.Options{Token: r.Tokens()} }
