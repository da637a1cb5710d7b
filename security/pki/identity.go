// Package pki is the cluster's certificate authority and the TLS plumbing
// around it: a CA kept in a directory (0600 keys), certificates whose role
// and identity travel in one URI SAN (vhpc://agent/node07), a revocation
// list of serial numbers, and tls.Configs that reload certificate, CA and
// revocation files when they change on disk, so rotation needs no restart.
//
// Certificates carry role and identity only. A user's departments (and the
// departments they administer) live in the replicated state and are looked
// up by user name, so changing them needs no new certificate.
package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Role is what a certificate's holder is to the cluster. The ACL table
// (package security/authz) grants RPCs per role.
type Role string

// The four roles. A server is a cluster member (hpcd): it serves the API
// and, with the same certificate, dials other members (forwarding, Raft).
const (
	RoleServer   Role = "server"
	RoleAgent    Role = "agent"
	RoleUser     Role = "user"
	RoleOperator Role = "operator"
)

// Roles lists every role in a fixed order (tables, help texts, tests).
func Roles() []Role { return []Role{RoleServer, RoleOperator, RoleUser, RoleAgent} }

// Valid reports whether r is one of the four roles.
func (r Role) Valid() bool {
	switch r {
	case RoleServer, RoleAgent, RoleUser, RoleOperator:
		return true
	}
	return false
}

// URIScheme is the scheme of identity URI SANs: vhpc://ROLE/NAME.
const URIScheme = "vhpc"

// Identity is who a verified certificate speaks for: a role and a name
// (node name for agents, user name for users and operators, member id for
// servers). The zero Identity is "anonymous".
type Identity struct {
	Role Role
	Name string
}

// namePattern bounds names to what is safe in file names, log lines and
// URIs: letters, digits, '.', '_' and '-', starting with a letter or digit.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Validate says what is wrong with an identity (unknown role, bad name),
// or returns nil. Issue and ParseIdentityURI call it; so can flag parsing.
func (id Identity) Validate() error {
	if !id.Role.Valid() {
		return fmt.Errorf("%w: unknown role %q (want server, agent, user or operator)", ErrIdentity, id.Role)
	}
	if !namePattern.MatchString(id.Name) {
		return fmt.Errorf("%w: name %q of role %s: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", ErrIdentity, id.Name, id.Role)
	}
	return nil
}

// IsZero reports whether id is anonymous (no certificate).
func (id Identity) IsZero() bool { return id == Identity{} }

// String is "role/name", or "anonymous".
func (id Identity) String() string {
	if id.IsZero() {
		return "anonymous"
	}
	return string(id.Role) + "/" + id.Name
}

// URI is the identity as the URI SAN a certificate carries.
func (id Identity) URI() *url.URL {
	return &url.URL{Scheme: URIScheme, Host: string(id.Role), Path: "/" + id.Name}
}

// ParseIdentityURI reads vhpc://ROLE/NAME (as in a certificate's URI SAN
// or forwarded metadata) and validates it.
func ParseIdentityURI(s string) (Identity, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %q is not a URI: %w", ErrIdentity, s, err)
	}
	return identityFromURL(u)
}

func identityFromURL(u *url.URL) (Identity, error) {
	if u.Scheme != URIScheme {
		return Identity{}, fmt.Errorf("%w: %q: scheme must be %s://", ErrIdentity, u.String(), URIScheme)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Port() != "" {
		return Identity{}, fmt.Errorf("%w: %q: want exactly vhpc://ROLE/NAME", ErrIdentity, u.String())
	}
	name := strings.TrimPrefix(u.Path, "/")
	id := Identity{Role: Role(u.Host), Name: name}
	if err := id.Validate(); err != nil {
		return Identity{}, fmt.Errorf("URI %q: %w", u.String(), err)
	}
	return id, nil
}

// IdentityOf reads the identity from a certificate's URI SANs. Exactly one
// vhpc:// URI must be present (other schemes are ignored): none means the
// certificate was not issued by this cluster's tooling, two are refused as
// ambiguous. It does not verify the certificate (Reloader.Verify does).
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	if cert == nil {
		return Identity{}, fmt.Errorf("%w: no certificate", ErrIdentity)
	}
	var found []*url.URL
	for _, u := range cert.URIs {
		if u.Scheme == URIScheme {
			found = append(found, u)
		}
	}
	switch len(found) {
	case 0:
		return Identity{}, fmt.Errorf("%w: certificate %q has no vhpc://ROLE/NAME URI SAN (issue one with `hpcd tls issue`)", ErrIdentity, cert.Subject.CommonName)
	case 1:
		return identityFromURL(found[0])
	default:
		return Identity{}, fmt.Errorf("%w: certificate %q has %d vhpc:// URI SANs (%s, %s); exactly one is allowed", ErrIdentity, cert.Subject.CommonName, len(found), found[0], found[1])
	}
}

// Sentinel errors; every error of this package wraps one of them so
// callers (authz, the CLI) can choose a status code with errors.Is.
var (
	// ErrIdentity: a malformed identity (bad URI SAN, unknown role, two SANs).
	ErrIdentity = errors.New("bad identity")
	// ErrNoCertificate: the peer presented no certificate.
	ErrNoCertificate = errors.New("no certificate")
	// ErrUntrusted: the certificate does not chain to the cluster CA.
	ErrUntrusted = errors.New("certificate not issued by this cluster's CA")
	// ErrExpired: the certificate (or its CA) is past its NotAfter, or not yet valid.
	ErrExpired = errors.New("certificate expired")
	// ErrRevoked: the certificate's serial is on the revocation list.
	ErrRevoked = errors.New("certificate revoked")
)

// CredentialError is a refused credential: what is wrong (Err, one of the
// sentinels), whose it is, and how to get a new one. Its message is meant
// for the holder of the credential.
type CredentialError struct {
	Identity Identity // zero when unknown
	Err      error
	Detail   string
}

// Error names the identity, the problem and the renewal command.
func (e *CredentialError) Error() string {
	who := "certificate"
	if !e.Identity.IsZero() {
		who = "certificate of " + e.Identity.String()
	}
	msg := who + ": " + e.Err.Error()
	if e.Detail != "" {
		msg += " (" + e.Detail + ")"
	}
	return msg + "; " + RenewHint(e.Identity)
}

// Unwrap returns the sentinel.
func (e *CredentialError) Unwrap() error { return e.Err }

// RenewHint says how the holder of id gets a fresh credential. Error
// messages of pki and authz end with it.
func RenewHint(id Identity) string {
	switch id.Role {
	case RoleUser:
		return "run `hpcsub login` for a new credential"
	case RoleAgent:
		return fmt.Sprintf("an operator runs `hpcd tls issue --agent %s` and installs the files on the node", id.Name)
	case RoleOperator:
		return fmt.Sprintf("renew with `hpcd tls issue --operator %s` on the CA host", id.Name)
	case RoleServer:
		return fmt.Sprintf("renew with `hpcd tls issue --server %s --host NAME` on the CA host", id.Name)
	}
	return "users run `hpcsub login`; agents need `hpcd tls issue --agent NAME`, operators `hpcd tls issue --operator NAME` (from an operator)"
}
