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

	dir string
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
	iss, err := regtoken.Generate(regtoken.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, regtoken.CertFile), iss.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &Registry{Issuer: iss, dir: dir}
	r.start(t, "")
	return r
}

func (r *Registry) start(t testing.TB, addr string) {
	t.Helper()
	reg, err := imagestore.StartRegistry(context.Background(), imagestore.RegistryConfig{Dir: r.dir, Addr: addr, StartTimeout: 20 * time.Second,
		TokenAuth: &imagestore.TokenAuth{Service: r.Issuer.Service(), Issuer: r.Issuer.Name(), RootCertBundle: filepath.Join(r.dir, regtoken.CertFile)}})
	if err != nil {
		t.Fatalf("%v (scripts/install-deps.sh installs it)", err)
	}
	t.Cleanup(func() { reg.Close() })
	r.Registry = reg
}

// Restart starts the registry again, after Close, on the same address,
// storage and key.
func (r *Registry) Restart(t testing.TB) {
	t.Helper()
	r.start(t, r.Addr)
}

// IssuerWith returns an Issuer over the registry's trusted key with cfg
// (a short TTL, a clock in the past); the test fails on a bad cfg.
func (r *Registry) IssuerWith(t testing.TB, cfg regtoken.Config) *regtoken.Issuer {
	t.Helper()
	iss, err := r.Issuer.With(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

// KeyDir writes the registry's trusted key and certificate into a new
// directory as regtoken.Load reads them (for `hpcd server
// --registry-token-dir`) and returns it.
func (r *Registry) KeyDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := r.Issuer.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	return dir
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
