package client

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"vhpc/security/pki"
)

// CredentialsEnv names the credentials directory (VHPC_CREDENTIALS=DIR);
// the value "none" dials plaintext (for masters run with --insecure).
const CredentialsEnv = "VHPC_CREDENTIALS"

// Credentials are what a client dials with: the cluster CA bundle and
// (unless anonymous) one certificate, read through a pki.Reloader so a
// renewed credential (`hpcsub login`) is used from the next connection.
// A nil TLS means plaintext (a master run with --insecure).
type Credentials struct {
	Dir      string
	Identity pki.Identity // zero: anonymous or plaintext
	TLS      *pki.Reloader
}

// Insecure returns plaintext credentials, for masters run with --insecure.
func Insecure() *Credentials { return &Credentials{} }

// FromReloader uses an already loaded credential (servers' tests, hpcd dev).
func FromReloader(r *pki.Reloader) *Credentials {
	return &Credentials{TLS: r, Identity: r.Identity()}
}

// Transport is the gRPC transport credential.
func (c *Credentials) Transport() credentials.TransportCredentials {
	if c == nil || c.TLS == nil {
		return insecure.NewCredentials()
	}
	return c.TLS.ClientCredentials()
}

// Secure reports whether the client dials TLS.
func (c *Credentials) Secure() bool { return c != nil && c.TLS != nil }

// String says what the client authenticates as, for messages.
func (c *Credentials) String() string {
	switch {
	case !c.Secure():
		return "plaintext, no credential"
	case c.Identity.IsZero():
		return "TLS without a credential (" + c.Dir + ")"
	}
	return c.Identity.String() + " (" + c.Dir + ")"
}

// DefaultCredentialsDir is $VHPC_CREDENTIALS, else ~/.config/vhpc.
func DefaultCredentialsDir() string {
	if d := os.Getenv(CredentialsEnv); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".config", "vhpc")
}

// DefaultCredentials loads the credentials directory of the environment
// (DefaultCredentialsDir), choosing a certificate by the roles in prefer
// order (none given: user, operator, agent). VHPC_CREDENTIALS=none, and a
// default directory without a ca.crt, give plaintext. Test binaries ignore
// the home directory (only VHPC_CREDENTIALS counts), so a developer's own
// credential never leaks into tests against plaintext masters.
func DefaultCredentials(prefer ...pki.Role) (*Credentials, error) {
	env := os.Getenv(CredentialsEnv)
	switch {
	case env == "none":
		return Insecure(), nil
	case env != "":
		return LoadCredentials(env, prefer...)
	case testing.Testing():
		return Insecure(), nil
	}
	dir := DefaultCredentialsDir()
	if dir == "" {
		return Insecure(), nil
	}
	if _, err := os.Stat(filepath.Join(dir, pki.CACertFile)); errors.Is(err, fs.ErrNotExist) {
		return &Credentials{Dir: dir}, nil
	}
	return LoadCredentials(dir, prefer...)
}

// LoadCredentials reads dir as `hpcd tls issue --out DIR`, `hpcsub login`
// and `hpcd dev` write it: ca.crt and ROLE-NAME.crt/.key pairs. With
// several pairs it takes the first role of prefer (default user, operator,
// agent) and, within a role, the first name. A directory with a CA and no
// pair dials anonymously (masters refuse every call saying how to log in).
func LoadCredentials(dir string, prefer ...pki.Role) (*Credentials, error) {
	if len(prefer) == 0 {
		prefer = []pki.Role{pki.RoleUser, pki.RoleOperator, pki.RoleAgent}
	}
	if _, err := os.Stat(filepath.Join(dir, pki.CACertFile)); err != nil {
		return nil, fmt.Errorf("credentials %s: %w (run `hpcsub login`, or set %s to the directory `hpcd tls issue` wrote)", dir, err, CredentialsEnv)
	}
	base, err := pickCredential(dir, prefer)
	if err != nil {
		return nil, err
	}
	r, err := pki.NewReloader(pki.FilesIn(dir, base), pki.ReloadOptions{})
	if err != nil {
		return nil, fmt.Errorf("credentials %s: %w", dir, err)
	}
	return &Credentials{Dir: dir, Identity: r.Identity(), TLS: r}, nil
}

// pickCredential returns the file stem of the pair to use, "" for none.
func pickCredential(dir string, prefer []pki.Role) (string, error) {
	matches, err := filepath.Glob(filepath.Join(dir, "*.crt"))
	if err != nil {
		return "", err
	}
	sort.Strings(matches)
	byRole := map[pki.Role][]string{}
	for _, m := range matches {
		base := strings.TrimSuffix(filepath.Base(m), ".crt")
		if filepath.Base(m) == pki.CACertFile {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, base+".key")); err != nil {
			continue
		}
		role, _, ok := strings.Cut(base, "-")
		if !ok {
			continue
		}
		byRole[pki.Role(role)] = append(byRole[pki.Role(role)], base)
	}
	for _, r := range prefer {
		if len(byRole[r]) > 0 {
			return byRole[r][0], nil
		}
	}
	if len(byRole) > 0 {
		var have []string
		for _, bs := range byRole {
			have = append(have, bs...)
		}
		slices.Sort(have)
		return "", fmt.Errorf("credentials %s hold %s, none of role %v", dir, strings.Join(have, ", "), prefer)
	}
	return "", nil
}
