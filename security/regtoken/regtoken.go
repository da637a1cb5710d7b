// Package regtoken issues the short-lived bearer tokens that open the
// cluster's registry (images, job file sets, datasets) to one holder for
// one purpose. It implements the Docker registry token authentication
// scheme that docker-registry (distribution 2.8) checks natively: a JWT
// signed ES256, the signing certificate in the header's x5c, the claims
// iss, sub, aud (the registry's service name), exp, nbf, iat, jti and
// access [{type: repository, name, actions}].
//
// The master owns it: members sign with the token key of their PKI
// directory (registry-token.key), the registry trusts the matching
// certificate (registry-token.crt, its auth.token.rootcertbundle).
// Nothing else signs tokens; Verify is the registry's check, for tests.
package regtoken

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"vhpc/security/pki"
)

// Files of the token key in a PKI directory.
const (
	CertFile = "registry-token.crt"
	KeyFile  = "registry-token.key"
)

// Defaults of Config.
const (
	DefaultIssuer  = "vhpc"
	DefaultService = "vhpc-registry"
	DefaultTTL     = 15 * time.Minute
	// MaxTTL bounds Config.TTL: a token cannot be revoked, only outlived.
	MaxTTL = 24 * time.Hour
	// certLifetime is the token certificate's validity. The registry reads
	// the certificate at start; a new key means a new certificate in its
	// rootcertbundle (old and new side by side while tokens of the old
	// one live) and a restart.
	certLifetime = 10 * 365 * 24 * time.Hour
)

// Actions on a repository the registry knows.
const (
	ActionPull   = "pull"
	ActionPush   = "push"
	ActionDelete = "delete"
)

// Access is one entry of a token's access claim: the actions allowed on
// one repository (type "repository", the only type vhpc issues).
type Access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// Repository grants actions on the repository name (a department image
// "chemistry/lammps", a department's file sets "vhpc-data/chemistry").
// The registry needs pull alongside push for an upload; callers name both.
func Repository(name string, actions ...string) Access {
	return Access{Type: "repository", Name: name, Actions: actions}
}

// AllocationAccess is what the agent running one allocation may do: pull
// the job's image repository (none when imageRepo is ""), pull the
// department's file sets (inputs, datasets; dataRepo), and pull and push
// the job's own outputs repository (outputRepo), nothing else: it can
// neither change a file set another job reads nor read another job's
// outputs. scheduler/server's NodeService.RegistryToken signs it; the
// registry test checks it against a real registry.
func AllocationAccess(imageRepo, dataRepo, outputRepo string) []Access {
	access := []Access{
		Repository(dataRepo, ActionPull),
		Repository(outputRepo, ActionPull, ActionPush),
	}
	if imageRepo != "" {
		access = append(access, Repository(imageRepo, ActionPull))
	}
	return access
}

// Claims is a token's payload. aud is one string: docker-registry 2.8
// refuses a list (jwt.RegisteredClaims would write one).
type Claims struct {
	Issuer    string           `json:"iss"`
	Subject   string           `json:"sub"`
	Audience  string           `json:"aud"`
	ExpiresAt *jwt.NumericDate `json:"exp"`
	NotBefore *jwt.NumericDate `json:"nbf"`
	IssuedAt  *jwt.NumericDate `json:"iat"`
	ID        string           `json:"jti"`
	Access    []Access         `json:"access"`
}

// GetExpirationTime implements jwt.Claims.
func (c *Claims) GetExpirationTime() (*jwt.NumericDate, error) { return c.ExpiresAt, nil }

// GetNotBefore implements jwt.Claims.
func (c *Claims) GetNotBefore() (*jwt.NumericDate, error) { return c.NotBefore, nil }

// GetIssuedAt implements jwt.Claims.
func (c *Claims) GetIssuedAt() (*jwt.NumericDate, error) { return c.IssuedAt, nil }

// GetIssuer implements jwt.Claims.
func (c *Claims) GetIssuer() (string, error) { return c.Issuer, nil }

// GetSubject implements jwt.Claims.
func (c *Claims) GetSubject() (string, error) { return c.Subject, nil }

// GetAudience implements jwt.Claims.
func (c *Claims) GetAudience() (jwt.ClaimStrings, error) { return jwt.ClaimStrings{c.Audience}, nil }

// Allows reports whether the claims grant action on repository name, as
// the registry decides it (exact name, the action or "*").
func (c *Claims) Allows(name, action string) bool {
	for _, a := range c.Access {
		if a.Type == "repository" && a.Name == name && (slices.Contains(a.Actions, action) || slices.Contains(a.Actions, "*")) {
			return true
		}
	}
	return false
}

// Config tunes an Issuer; the zero value takes the defaults.
type Config struct {
	// Issuer is the iss claim the registry's auth.token.issuer names.
	Issuer string
	// Service is the aud claim, the registry's auth.token.service.
	Service string
	// TTL is a token's lifetime (DefaultTTL; at most MaxTTL). Holders ask
	// again before it ends.
	TTL time.Duration
	// Now is the clock (time.Now); tests move it.
	Now func() time.Time
}

func (c Config) withDefaults() (Config, error) {
	if c.Issuer == "" {
		c.Issuer = DefaultIssuer
	}
	if c.Service == "" {
		c.Service = DefaultService
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.TTL < 0 || c.TTL > MaxTTL {
		return c, fmt.Errorf("registry token lifetime %s: want more than 0 and at most %s", c.TTL, MaxTTL)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// Issuer signs registry tokens. The master holds one (scheduler/server
// Config.RegistryTokens); it is safe for concurrent use.
type Issuer struct {
	cfg  Config
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
	x5c  []any
}

// New returns an Issuer signing with key, whose certificate cert the
// registry trusts. It fails when the key is not ECDSA P-256 or does not
// match the certificate, or the configuration is out of range.
func New(cert *x509.Certificate, key *ecdsa.PrivateKey, cfg Config) (*Issuer, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if key == nil || key.Curve != elliptic.P256() {
		return nil, errors.New("registry token key: want ECDSA P-256")
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("registry token key does not match its certificate")
	}
	return &Issuer{cfg: cfg, key: key, cert: cert, x5c: []any{base64.StdEncoding.EncodeToString(cert.Raw)}}, nil
}

// Service is the aud claim of this Issuer's tokens (the registry's
// auth.token.service).
func (i *Issuer) Service() string { return i.cfg.Service }

// Name is the iss claim of this Issuer's tokens (the registry's
// auth.token.issuer).
func (i *Issuer) Name() string { return i.cfg.Issuer }

// Certificate is the certificate the registry must trust.
func (i *Issuer) Certificate() *x509.Certificate { return i.cert }

// Token is a signed token and when it ends.
type Token struct {
	Raw     string
	Expires time.Time
}

// Issue signs a token for subject (who holds it: "agent/node07 alloc
// 12.0.1", "user/alice") granting exactly access, valid from now for the
// Issuer's TTL. An empty access list gives a token that only passes the
// registry's /v2/ check. Names must be non-empty; actions one of pull,
// push, delete.
func (i *Issuer) Issue(subject string, access ...Access) (Token, error) {
	for _, a := range access {
		if a.Type != "repository" || a.Name == "" || len(a.Actions) == 0 {
			return Token{}, fmt.Errorf("registry token for %s: bad access %+v", subject, a)
		}
		for _, act := range a.Actions {
			if act != ActionPull && act != ActionPush && act != ActionDelete {
				return Token{}, fmt.Errorf("registry token for %s: unknown action %q on %s", subject, act, a.Name)
			}
		}
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return Token{}, fmt.Errorf("registry token id: %w", err)
	}
	now := i.cfg.Now().Truncate(time.Second)
	exp := now.Add(i.cfg.TTL)
	if access == nil {
		access = []Access{}
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, &Claims{
		Issuer: i.cfg.Issuer, Subject: subject, Audience: i.cfg.Service,
		ExpiresAt: jwt.NewNumericDate(exp), NotBefore: jwt.NewNumericDate(now), IssuedAt: jwt.NewNumericDate(now),
		ID: hex.EncodeToString(id[:]), Access: access,
	})
	t.Header["x5c"] = i.x5c
	raw, err := t.SignedString(i.key)
	if err != nil {
		return Token{}, fmt.Errorf("sign registry token for %s: %w", subject, err)
	}
	return Token{Raw: raw, Expires: exp}, nil
}

// Verify checks raw the way the registry does: ES256 only, the x5c leaf
// (not a CA) chains to roots at now, iss is issuer, aud holds service,
// now lies within nbf..exp (no leeway; the registry allows 60 s). It
// returns the claims. Tests call it; production trusts the registry.
func Verify(raw string, roots *x509.CertPool, issuer, service string, now time.Time) (*Claims, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		return signingKey(t, roots, now)
	}, jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg()}), jwt.WithIssuer(issuer), jwt.WithAudience(service),
		jwt.WithExpirationRequired(), jwt.WithTimeFunc(func() time.Time { return now }))
	if err != nil {
		return nil, fmt.Errorf("registry token: %w", err)
	}
	return &c, nil
}

func signingKey(t *jwt.Token, roots *x509.CertPool, now time.Time) (any, error) {
	chain, ok := t.Header["x5c"].([]any)
	if !ok || len(chain) == 0 {
		return nil, errors.New("no x5c certificate chain")
	}
	var certs []*x509.Certificate
	for _, e := range chain {
		s, ok := e.(string)
		if !ok {
			return nil, errors.New("x5c entry is not a string")
		}
		der, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("x5c: %w", err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("x5c: %w", err)
		}
		certs = append(certs, c)
	}
	if certs[0].IsCA {
		return nil, errors.New("x5c leaf is a CA")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("x5c: %w", err)
	}
	return certs[0].PublicKey, nil
}

// Create makes a new token key and its self-signed certificate (ECDSA
// P-256, not a CA, digital signature only) in dir: KeyFile 0600, CertFile
// 0644. It refuses to overwrite either. `hpcd tls init` and `hpcd dev`
// call it (through Ensure).
//
// Why not a certificate of the cluster CA: the registry accepts any x5c
// leaf that chains to its rootcertbundle and checks no usage or name, so
// trusting the cluster CA would let every user and agent certificate
// (their keys are on their machines) sign tokens for anything. The
// registry trusts this one certificate instead.
func Create(dir string) error {
	for _, f := range []string{CertFile, KeyFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return fmt.Errorf("%s already exists: refusing to replace the registry token key", filepath.Join(dir, f))
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("registry token key: %w", err)
		}
	}
	iss, err := Generate(Config{})
	if err != nil {
		return err
	}
	return iss.WriteFiles(dir)
}

// Generate returns an Issuer over a new key and certificate held in
// memory (Create writes one; tests use one directly).
func Generate(cfg Config) (*Issuer, error) {
	certPEM, keyPEM, err := NewKeyPair(time.Now())
	if err != nil {
		return nil, err
	}
	return Parse(certPEM, keyPEM, cfg)
}

// With returns an Issuer over the same key with another configuration
// (tests: a short TTL, a clock in the past).
func (i *Issuer) With(cfg Config) (*Issuer, error) { return New(i.cert, i.key, cfg) }

// CertPEM is the certificate the registry must trust, PEM encoded (its
// rootcertbundle).
func (i *Issuer) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: i.cert.Raw})
}

// WriteFiles stores the key (KeyFile, 0600, first) and the certificate
// (CertFile) in dir, creating it 0700, each replaced atomically.
func (i *Issuer) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("registry token key: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(i.key)
	if err != nil {
		return fmt.Errorf("registry token key: %w", err)
	}
	if err := pki.WriteFileAtomic(filepath.Join(dir, KeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return err
	}
	return pki.WriteFileAtomic(filepath.Join(dir, CertFile), i.CertPEM(), 0o644)
}

// NewKeyPair returns a fresh token certificate and key, PEM encoded,
// valid from now (Generate parses them).
func NewKeyPair(now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("registry token key: %w", err)
	}
	var serial [16]byte
	if _, err := rand.Read(serial[:]); err != nil {
		return nil, nil, fmt.Errorf("registry token key: %w", err)
	}
	serial[0] |= 0x40 // positive and never zero
	tmpl := &x509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(serial[:]),
		Subject:               pkix.Name{CommonName: "vhpc registry token signer", Organization: []string{"vhpc"}},
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.Add(certLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("registry token certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("registry token key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// Parse builds an Issuer from PEM files' contents (the certificate first
// in certPEM).
func Parse(certPEM, keyPEM []byte, cfg Config) (*Issuer, error) {
	certs, err := pki.ParseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("registry token certificate: %w", err)
	}
	k, err := pki.ParseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("registry token key: %w", err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("registry token key: %T, want ECDSA P-256", k)
	}
	return New(certs[0], ek, cfg)
}

// Load reads the token key and certificate from dir (Create's files).
// The key must not be readable by group or others. A missing key wraps
// fs.ErrNotExist: that member issues no tokens. hpcd server and hpcd dev
// call it.
func Load(dir string, cfg Config) (*Issuer, error) {
	keyPEM, err := pki.ReadPrivateFile(filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, fmt.Errorf("registry token key: %w", err)
	}
	certPEM, err := os.ReadFile(filepath.Join(dir, CertFile))
	if err != nil {
		return nil, fmt.Errorf("registry token certificate: %w", err)
	}
	return Parse(certPEM, keyPEM, cfg)
}

// Ensure loads the token key of dir, creating it first when neither file
// exists (`hpcd dev` on a data directory made before tokens existed).
func Ensure(dir string, cfg Config) (*Issuer, error) {
	_, errK := os.Stat(filepath.Join(dir, KeyFile))
	_, errC := os.Stat(filepath.Join(dir, CertFile))
	if errors.Is(errK, fs.ErrNotExist) && errors.Is(errC, fs.ErrNotExist) {
		if err := Create(dir); err != nil {
			return nil, err
		}
	}
	return Load(dir, cfg)
}
