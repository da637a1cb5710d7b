// Package pkitest makes a throw-away cluster CA and credentials for tests
// of other packages (security/authz, security/audit, cmd/hpcd, later
// scheduler/server). Never used outside tests.
package pkitest

import (
	"net"
	"testing"
	"time"

	"vhpc/security/pki"
)

// CA is a CA in a test's temporary directory.
type CA struct {
	*pki.CA
	t testing.TB
}

// New creates a CA in a fresh temporary directory (dated a day back, so
// Write can backdate certificates by up to a day) and a server certificate
// "server-m1" for localhost, 127.0.0.1 and ::1.
func New(t testing.TB) *CA {
	t.Helper()
	ca, err := pki.InitCA(t.TempDir(), "test CA", pki.Options{Now: func() time.Time { return time.Now().Add(-24 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	if ca, err = pki.LoadCA(ca.Dir(), pki.Options{}); err != nil {
		t.Fatal(err)
	}
	c := &CA{CA: ca, t: t}
	c.Server("m1")
	return c
}

// Server writes the certificate of member id for loopback (localhost,
// 127.0.0.1, ::1) as server-ID.crt/.key and returns its Reloader.
func (c *CA) Server(id string) *pki.Reloader {
	c.t.Helper()
	c.Write(pki.Request{Identity: pki.Identity{Role: pki.RoleServer, Name: id}, DNSNames: []string{"localhost"},
		IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}})
	return c.Reloader("server-" + id)
}

// Credentials writes a certificate for id and returns the Reloader of
// that credential (what a client dials with).
func (c *CA) Credentials(id pki.Identity) *pki.Reloader {
	c.t.Helper()
	c.Write(pki.Request{Identity: id})
	return c.Reloader(id.BaseName())
}

// Write issues req (at the CA's clock shifted by shift, so a negative
// shift with a short TTL gives an expired certificate) and writes it into
// the CA directory as role-name.crt/.key. It returns the issued material.
func (c *CA) Write(req pki.Request, shift ...time.Duration) *pki.Issued {
	c.t.Helper()
	ca := c.CA
	if len(shift) > 0 {
		var err error
		ca, err = pki.LoadCA(c.Dir(), pki.Options{Now: func() time.Time { return time.Now().Add(shift[0]) }})
		if err != nil {
			c.t.Fatal(err)
		}
	}
	is, err := ca.Issue(req)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, _, err := is.Write(c.Dir(), req.Identity.BaseName()); err != nil {
		c.t.Fatal(err)
	}
	return is
}

// Reloader loads the credential base (e.g. "agent-node07"; "" for an
// anonymous client) with the CA's ca.crt and revoked.txt.
func (c *CA) Reloader(base string) *pki.Reloader {
	c.t.Helper()
	r, err := pki.NewReloader(pki.FilesIn(c.Dir(), base), pki.ReloadOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return r
}
