package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// Files of a CA directory.
const (
	CACertFile  = "ca.crt"
	CAKeyFile   = "ca.key"
	RevokedFile = "revoked.txt"
)

// Lifetimes are the default validity of issued certificates per role.
// Users and operators get short ones (a lost laptop's key soon stops
// working); servers and agents long ones, rotated by an operator.
type Lifetimes struct {
	User, Operator, Agent, Server, CA time.Duration
}

// DefaultLifetimes: 12 h for users and operators, 90 days for agents and
// servers, 10 years for the CA.
func DefaultLifetimes() Lifetimes {
	return Lifetimes{User: 12 * time.Hour, Operator: 12 * time.Hour, Agent: 90 * 24 * time.Hour,
		Server: 90 * 24 * time.Hour, CA: 10 * 365 * 24 * time.Hour}
}

func (l Lifetimes) of(r Role) time.Duration {
	switch r {
	case RoleUser:
		return l.User
	case RoleOperator:
		return l.Operator
	case RoleAgent:
		return l.Agent
	default:
		return l.Server
	}
}

// Options tune a CA. The zero value means DefaultLifetimes and time.Now.
type Options struct {
	Lifetimes Lifetimes
	Now       func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Lifetimes == (Lifetimes{}) {
		o.Lifetimes = DefaultLifetimes()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// clockSkew backdates NotBefore so a peer whose clock is a little behind
// accepts a fresh certificate.
const clockSkew = 5 * time.Minute

// CA is a cluster certificate authority loaded from (or created in) a
// directory holding ca.crt, ca.key (mode 0600) and revoked.txt. `hpcd tls`
// uses it; servers only need ca.crt and revoked.txt.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	key     crypto.Signer
	dir     string
	opt     Options
}

// InitCA creates a new CA (ECDSA P-256, self-signed, named name) in dir,
// creating dir with mode 0700 if needed. It refuses to overwrite an
// existing ca.crt or ca.key: replacing a CA silently would lock out every
// issued certificate.
func InitCA(dir, name string, opt Options) (*CA, error) {
	opt = opt.withDefaults()
	for _, f := range []string{CACertFile, CAKeyFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return nil, fmt.Errorf("%s already exists: refusing to overwrite a CA (every certificate it issued would stop working); choose another --out or remove it by hand", filepath.Join(dir, f))
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("check for an existing CA: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create CA directory: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := opt.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"vhpc"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(opt.Lifetimes.CA),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          keyID(&key.PublicKey),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := WriteFileAtomic(filepath.Join(dir, CAKeyFile), keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := WriteFileAtomic(filepath.Join(dir, CACertFile), certPEM, 0o644); err != nil {
		return nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	return &CA{Cert: cert, CertPEM: certPEM, key: key, dir: dir, opt: opt}, nil
}

// LoadCA reads a CA from dir. The key must not be readable by group or
// others (mode 0600), and must match the certificate.
func LoadCA(dir string, opt Options) (*CA, error) {
	opt = opt.withDefaults()
	keyPath := filepath.Join(dir, CAKeyFile)
	if _, err := os.Stat(keyPath); err != nil {
		return nil, fmt.Errorf("load CA: %w (create one with `hpcd tls init --out %s`)", err, dir)
	}
	keyPEM, err := ReadPrivateFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	certPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, fmt.Errorf("load CA certificate: %w", err)
	}
	certs, err := ParseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA certificate %s: %w", filepath.Join(dir, CACertFile), err)
	}
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA key %s: %w", keyPath, err)
	}
	// ca.crt may hold several CAs (old and new, during a CA rotation); the
	// one matching ca.key signs.
	for _, c := range certs {
		if c.IsCA && publicKeysEqual(c.PublicKey, key.Public()) {
			return &CA{Cert: c, CertPEM: certPEM, key: key, dir: dir, opt: opt}, nil
		}
	}
	return nil, fmt.Errorf("load CA: no CA certificate in %s matches %s", filepath.Join(dir, CACertFile), keyPath)
}

// ReadPrivateFile reads a private key file, refusing one that group or
// others may read (it must be mode 0600). LoadCA and regtoken.Load call it.
func ReadPrivateFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s has mode %04o: the key must be private (chmod 600 %s)", path, st.Mode().Perm(), path)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", path, err)
	}
	return b, nil
}

// Dir is the directory the CA lives in.
func (ca *CA) Dir() string { return ca.dir }

// Request is one certificate to issue. TTL 0 takes the role's default
// lifetime. Server certificates need at least one DNS name or IP (the
// addresses clients dial); other roles may not have any.
type Request struct {
	Identity Identity
	TTL      time.Duration
	DNSNames []string
	IPs      []net.IP
}

// Issued is a certificate with its private key, PEM encoded.
type Issued struct {
	Identity Identity
	Cert     *x509.Certificate
	CertPEM  []byte
	KeyPEM   []byte
}

// Issue signs a new key pair for req. The certificate carries the identity
// as its only vhpc:// URI SAN, client auth usage (servers: server and
// client auth), and never outlives the CA.
func (ca *CA) Issue(req Request) (*Issued, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	cert, certPEM, err := ca.Sign(req, &key.PublicKey)
	if err != nil {
		return nil, err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	return &Issued{Identity: req.Identity, Cert: cert, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// Sign issues a certificate for req over a public key the requester
// generated (`hpcsub login`: the private key never leaves the user's
// machine). Same rules as Issue.
func (ca *CA) Sign(req Request, pub *ecdsa.PublicKey) (*x509.Certificate, []byte, error) {
	if err := req.Identity.Validate(); err != nil {
		return nil, nil, fmt.Errorf("issue: %w", err)
	}
	if req.TTL < 0 {
		return nil, nil, fmt.Errorf("issue %s: negative lifetime %s", req.Identity, req.TTL)
	}
	if pub == nil || pub.Curve != elliptic.P256() {
		return nil, nil, fmt.Errorf("issue %s: want an ECDSA P-256 public key", req.Identity)
	}
	isServer := req.Identity.Role == RoleServer
	if isServer && len(req.DNSNames)+len(req.IPs) == 0 {
		return nil, nil, fmt.Errorf("issue %s: a server certificate needs the host names or IPs clients dial (--host)", req.Identity)
	}
	if !isServer && len(req.DNSNames)+len(req.IPs) > 0 {
		return nil, nil, fmt.Errorf("issue %s: only server certificates carry host names", req.Identity)
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = ca.opt.Lifetimes.of(req.Identity.Role)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	now := ca.opt.Now()
	notAfter := now.Add(ttl)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	usage := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if isServer {
		usage = append(usage, x509.ExtKeyUsageServerAuth)
	}
	tmpl := &x509.Certificate{
		SerialNumber:   serial,
		Subject:        pkix.Name{CommonName: req.Identity.String(), Organization: []string{"vhpc"}},
		NotBefore:      now.Add(-clockSkew),
		NotAfter:       notAfter,
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    usage,
		URIs:           []*url.URL{req.Identity.URI()},
		DNSNames:       req.DNSNames,
		IPAddresses:    req.IPs,
		SubjectKeyId:   keyID(pub),
		AuthorityKeyId: ca.Cert.SubjectKeyId,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("sign certificate for %s: %w", req.Identity, err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// BaseName is the file name stem `hpcd tls issue` uses: role-name
// (agent-node07.crt, agent-node07.key).
func (id Identity) BaseName() string { return string(id.Role) + "-" + id.Name }

// Write stores the certificate as dir/base.crt (0644) and the key as
// dir/base.key (0600), each replaced atomically (a reloading peer never
// reads half a file). The key is written first, so a reader that sees the
// new certificate also finds its key.
func (is *Issued) Write(dir, base string) (certPath, keyPath string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("create %s: %w", dir, err)
	}
	certPath, keyPath = filepath.Join(dir, base+".crt"), filepath.Join(dir, base+".key")
	if err := WriteFileAtomic(keyPath, is.KeyPEM, 0o600); err != nil {
		return "", "", err
	}
	if err := WriteFileAtomic(certPath, is.CertPEM, 0o644); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}

// WriteFileAtomic writes data to a temporary file next to path, fsyncs it
// and renames it over path, so readers see the old or the new content.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ParseCertificates decodes every CERTIFICATE block of a PEM file; it
// fails on none, on other block types and on undecodable certificates.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := bytes.TrimSpace(data)
	for len(rest) > 0 {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, fmt.Errorf("not PEM after %d certificate(s)", len(out))
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %q where a CERTIFICATE was expected", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(out)+1, err)
		}
		out = append(out, c)
		rest = bytes.TrimSpace(rest)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return out, nil
}

// ParseKey decodes a PEM private key (PKCS#8, or SEC 1 "EC PRIVATE KEY").
func ParseKey(data []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("no PEM private key")
	}
	var k any
	var err error
	switch b.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", k)
	}
	return s, nil
}

func encodeKey(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}

func keyID(pub *ecdsa.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	sum := sha1.Sum(der) // RFC 5280 4.2.1.2 method 1; an identifier, not a security property
	return sum[:]
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}

// Serial formats a certificate serial the way revoked.txt and `hpcd tls`
// print it: lower-case hex without separators.
func Serial(c *x509.Certificate) string { return c.SerialNumber.Text(16) }
