package pki

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Files names what a Reloader reads. Cert and Key are this process's own
// credential (empty for an anonymous client); CA is the bundle of trusted
// CA certificates (several during a CA rotation); Revoked is the
// revocation list (optional: a missing file means nothing is revoked).
type Files struct {
	Cert, Key, CA, Revoked string
}

// FilesIn is the layout `hpcd tls` writes: dir/base.crt, dir/base.key,
// dir/ca.crt and dir/revoked.txt. An empty base means no own credential.
func FilesIn(dir, base string) Files {
	f := Files{CA: filepath.Join(dir, CACertFile), Revoked: filepath.Join(dir, RevokedFile)}
	if base != "" {
		f.Cert, f.Key = filepath.Join(dir, base+".crt"), filepath.Join(dir, base+".key")
	}
	return f
}

// ReloadOptions tune a Reloader; the zero value uses time.Now and
// slog.Default().
type ReloadOptions struct {
	Now    func() time.Time
	Logger *slog.Logger
}

// Reloader holds a credential, the trusted CAs and the revocation list,
// and re-reads each file when its size or modification time changes
// (checked on every use: a handful of stat calls per handshake or RPC,
// made outside the lock, so concurrent RPCs never queue behind one
// another's stat calls; only a change takes the write lock).
// A file that fails to load after a change keeps the previous value and is
// logged once per change, so a half-finished rotation never takes a
// working server down. Safe for concurrent use.
type Reloader struct {
	files Files
	now   func() time.Time
	log   *slog.Logger

	mu      sync.RWMutex
	stamps  map[string]stamp
	cert    *tls.Certificate
	pool    *x509.CertPool
	revoked map[string]bool
	// verified caches chains already verified against the current pool
	// (cleared when the CA bundle reloads): the interceptor verifies every
	// RPC, and building a chain costs a signature check each time.
	verified map[verifyKey][]*x509.Certificate
}

type verifyKey struct {
	leaf, inter [32]byte
	usage       x509.ExtKeyUsage
}

// maxVerified bounds the chain cache (cleared when full).
const maxVerified = 4096

type stamp struct {
	size int64
	mod  time.Time
	ok   bool // the file existed
}

// NewReloader loads files once and fails if anything named is missing or
// bad (except the optional revocation list), so misconfiguration shows at
// start, not at the first connection.
func NewReloader(files Files, opt ReloadOptions) (*Reloader, error) {
	if files.CA == "" {
		return nil, errors.New("tls: no CA file (ca.crt) given")
	}
	if (files.Cert == "") != (files.Key == "") {
		return nil, fmt.Errorf("tls: certificate %q and key %q go together", files.Cert, files.Key)
	}
	r := &Reloader{files: files, now: opt.Now, log: opt.Logger, stamps: map[string]stamp{}, revoked: map[string]bool{}}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	if err := r.loadCA(); err != nil {
		return nil, err
	}
	if files.Cert != "" {
		if err := r.loadPair(); err != nil {
			return nil, err
		}
	}
	if err := r.loadRevoked(); err != nil {
		return nil, err
	}
	r.stamps = r.statAll()
	return r, nil
}

func (r *Reloader) statAll() map[string]stamp {
	out := map[string]stamp{}
	for _, p := range []string{r.files.Cert, r.files.Key, r.files.CA, r.files.Revoked} {
		if p == "" {
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			out[p] = stamp{}
			continue
		}
		out[p] = stamp{size: st.Size(), mod: st.ModTime(), ok: true}
	}
	return out
}

// state returns the current credential, CA pool and revocation list,
// first reloading whatever changed on disk. The files are stat'ed without
// the lock; only a change takes the write lock (and stats again under it).
func (r *Reloader) state() (*tls.Certificate, *x509.CertPool, map[string]bool) {
	seen := r.statAll()
	r.mu.RLock()
	same := maps.Equal(seen, r.stamps)
	cert, pool, revoked := r.cert, r.pool, r.revoked
	r.mu.RUnlock()
	if same {
		return cert, pool, revoked
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refresh()
	return r.cert, r.pool, r.revoked
}

// refresh reloads what changed on disk. Called with r.mu held for writing.
func (r *Reloader) refresh() {
	now := r.statAll()
	changed := func(p string) bool { return p != "" && now[p] != r.stamps[p] }
	if changed(r.files.CA) {
		if err := r.loadCA(); err != nil {
			r.log.Warn("tls: keeping the previous CA bundle", "file", r.files.CA, "err", err)
		} else {
			r.log.Info("tls: reloaded CA bundle", "file", r.files.CA)
		}
	}
	if changed(r.files.Cert) || changed(r.files.Key) {
		if err := r.loadPair(); err != nil {
			r.log.Warn("tls: keeping the previous certificate", "cert", r.files.Cert, "key", r.files.Key, "err", err)
		} else {
			r.log.Info("tls: reloaded certificate", "cert", r.files.Cert, "not_after", r.cert.Leaf.NotAfter)
		}
	}
	if changed(r.files.Revoked) {
		if err := r.loadRevoked(); err != nil {
			r.log.Warn("tls: keeping the previous revocation list", "file", r.files.Revoked, "err", err)
		} else {
			r.log.Info("tls: reloaded revocation list", "file", r.files.Revoked, "revoked", len(r.revoked))
		}
	}
	r.stamps = now
}

func (r *Reloader) loadCA() error {
	data, err := os.ReadFile(r.files.CA)
	if err != nil {
		return fmt.Errorf("tls: CA bundle: %w", err)
	}
	certs, err := ParseCertificates(data)
	if err != nil {
		return fmt.Errorf("tls: CA bundle %s: %w", r.files.CA, err)
	}
	r.verified = nil
	pool := x509.NewCertPool()
	for _, c := range certs {
		if !c.IsCA {
			return fmt.Errorf("tls: CA bundle %s holds %q, which is not a CA certificate", r.files.CA, c.Subject.CommonName)
		}
		pool.AddCert(c)
	}
	r.pool = pool
	return nil
}

func (r *Reloader) loadPair() error {
	pair, err := tls.LoadX509KeyPair(r.files.Cert, r.files.Key)
	if err != nil {
		return fmt.Errorf("tls: certificate %s with key %s: %w", r.files.Cert, r.files.Key, err)
	}
	if _, err := IdentityOf(pair.Leaf); err != nil {
		return fmt.Errorf("tls: certificate %s: %w", r.files.Cert, err)
	}
	r.cert = &pair
	return nil
}

func (r *Reloader) loadRevoked() error {
	if r.files.Revoked == "" {
		return nil
	}
	data, err := os.ReadFile(r.files.Revoked)
	if errors.Is(err, fs.ErrNotExist) {
		r.revoked = map[string]bool{}
		return nil
	}
	if err != nil {
		return fmt.Errorf("tls: revocation list: %w", err)
	}
	rev, err := ParseRevoked(data)
	if err != nil {
		return fmt.Errorf("tls: revocation list %s: %w", r.files.Revoked, err)
	}
	r.revoked = rev
	return nil
}

// Certificate returns the current own credential (after reloading a
// changed one), or nil for an anonymous client.
func (r *Reloader) Certificate() *tls.Certificate {
	cert, _, _ := r.state()
	return cert
}

// Identity is the identity of the own credential (zero if none).
func (r *Reloader) Identity() Identity {
	c := r.Certificate()
	if c == nil {
		return Identity{}
	}
	id, _ := IdentityOf(c.Leaf) // checked at load
	return id
}

// Verify checks a peer's chain (leaf first) against the current CA bundle
// and revocation list, for the given usage (ClientAuth when a server checks
// a client, ServerAuth the other way), and returns the leaf's identity.
// Errors are *CredentialError wrapping ErrNoCertificate, ErrIdentity,
// ErrUntrusted, ErrExpired or ErrRevoked, and say how to renew.
//
// The chain is checked at a time inside the leaf's validity, then the
// validity itself, so an expired certificate of this cluster is reported
// as expired (renew it), not as untrusted.
func (r *Reloader) Verify(chain []*x509.Certificate, usage x509.ExtKeyUsage) (Identity, error) {
	if len(chain) == 0 {
		return Identity{}, &CredentialError{Err: ErrNoCertificate}
	}
	_, pool, revoked := r.state()

	leaf := chain[0]
	id, err := IdentityOf(leaf)
	if err != nil {
		return Identity{}, &CredentialError{Err: err}
	}
	now := r.now()
	at := now
	if at.Before(leaf.NotBefore) {
		at = leaf.NotBefore
	}
	if at.After(leaf.NotAfter) {
		at = leaf.NotAfter
	}
	chain0, err := r.chain(pool, chain, at, usage)
	if err != nil {
		return id, &CredentialError{Identity: id, Err: ErrUntrusted, Detail: err.Error()}
	}
	for _, c := range chain0 {
		if now.After(c.NotAfter) {
			what := "it"
			if c != leaf {
				what = "its CA " + c.Subject.CommonName
			}
			return id, &CredentialError{Identity: id, Err: ErrExpired, Detail: fmt.Sprintf("%s expired at %s", what, c.NotAfter.UTC().Format(time.RFC3339))}
		}
		if now.Before(c.NotBefore) {
			return id, &CredentialError{Identity: id, Err: ErrExpired, Detail: fmt.Sprintf("not valid before %s: check the clocks", c.NotBefore.UTC().Format(time.RFC3339))}
		}
	}
	if revoked[Serial(leaf)] {
		return id, &CredentialError{Identity: id, Err: ErrRevoked, Detail: "serial " + Serial(leaf)}
	}
	return id, nil
}

// chain verifies leaf (chain[0]) with the intermediates chain[1:] against
// pool at time at, from the cache when this pool verified it before (the
// time only moves a chain in or out of validity, which Verify checks on
// the result every time).
func (r *Reloader) chain(pool *x509.CertPool, chain []*x509.Certificate, at time.Time, usage x509.ExtKeyUsage) ([]*x509.Certificate, error) {
	k := verifyKey{leaf: sha256.Sum256(chain[0].Raw), usage: usage}
	h := sha256.New()
	for _, c := range chain[1:] {
		h.Write(c.Raw)
	}
	copy(k.inter[:], h.Sum(nil))
	r.mu.RLock()
	cached, ok := r.verified[k]
	same := r.pool == pool
	r.mu.RUnlock()
	if ok && same {
		return cached, nil
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	chains, err := chain[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{usage}})
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if r.pool == pool {
		if r.verified == nil || len(r.verified) >= maxVerified {
			r.verified = map[verifyKey][]*x509.Certificate{}
		}
		r.verified[k] = chains[0]
	}
	r.mu.Unlock()
	return chains[0], nil
}
