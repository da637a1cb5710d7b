package pki_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vhpc/security/pki"
	"vhpc/security/pki/pkitest"
)

func TestParseIdentityURI(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     pki.Identity
		err      string
	}{
		{"agent", "vhpc://agent/node07", pki.Identity{Role: pki.RoleAgent, Name: "node07"}, ""},
		{"user", "vhpc://user/alice", pki.Identity{Role: pki.RoleUser, Name: "alice"}, ""},
		{"unknown role", "vhpc://admin/alice", pki.Identity{}, `unknown role "admin"`},
		{"empty name", "vhpc://user/", pki.Identity{}, `name ""`},
		{"nested name", "vhpc://user/a/b", pki.Identity{}, `name "a/b"`},
		{"other scheme", "spiffe://user/alice", pki.Identity{}, "scheme must be vhpc://"},
		{"query", "vhpc://user/alice?x=1", pki.Identity{}, "want exactly"},
		{"port", "vhpc://user:1/alice", pki.Identity{}, "want exactly"},
		{"not a URI", "vhpc://%zz", pki.Identity{}, "not a URI"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pki.ParseIdentityURI(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, pki.ErrIdentity) {
					t.Fatalf("err = %v, want one containing %q wrapping ErrIdentity", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
			if back, _ := pki.ParseIdentityURI(got.URI().String()); back != got {
				t.Fatalf("URI round trip: %v -> %s -> %v", got, got.URI(), back)
			}
		})
	}
}

// selfSigned makes a certificate with the given URI SANs, not from the CA.
func selfSigned(t *testing.T, uris ...string) *x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "odd"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func TestIdentityOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		uris []string
		err  string
	}{
		{"one", []string{"vhpc://agent/node07"}, ""},
		{"other schemes ignored", []string{"spiffe://x/y", "vhpc://user/alice"}, ""},
		{"none", nil, "has no vhpc://ROLE/NAME URI SAN"},
		{"two", []string{"vhpc://user/alice", "vhpc://operator/alice"}, "has 2 vhpc:// URI SANs"},
		{"unknown role", []string{"vhpc://root/alice"}, `unknown role "root"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pki.IdentityOf(selfSigned(t, tc.uris...))
			if (err != nil) != (tc.err != "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
		})
	}
}

func TestCAInitLoad(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.InitCA(dir, "c", pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(filepath.Join(dir, pki.CAKeyFile))
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key mode %04o", st.Mode().Perm())
	}
	if _, err := pki.InitCA(dir, "c", pki.Options{}); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("second init: %v", err)
	}
	again, err := pki.LoadCA(dir, pki.Options{})
	if err != nil || !again.Cert.Equal(ca.Cert) {
		t.Fatalf("load: %v", err)
	}
	if err := os.Chmod(filepath.Join(dir, pki.CAKeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := pki.LoadCA(dir, pki.Options{}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("load with 0644 key: %v", err)
	}
	if _, err := pki.LoadCA(t.TempDir(), pki.Options{}); err == nil || !strings.Contains(err.Error(), "hpcd tls init") {
		t.Fatalf("load from empty dir: %v", err)
	}
}

func TestIssue(t *testing.T) {
	ca := pkitest.New(t)
	id := func(r pki.Role, n string) pki.Identity { return pki.Identity{Role: r, Name: n} }
	for _, tc := range []struct {
		name string
		req  pki.Request
		life time.Duration
		err  string
	}{
		{"user default 12h", pki.Request{Identity: id(pki.RoleUser, "alice")}, 12 * time.Hour, ""},
		{"agent default 90d", pki.Request{Identity: id(pki.RoleAgent, "node07")}, 90 * 24 * time.Hour, ""},
		{"custom ttl", pki.Request{Identity: id(pki.RoleOperator, "olga"), TTL: time.Hour}, time.Hour, ""},
		{"capped at the CA", pki.Request{Identity: id(pki.RoleAgent, "n"), TTL: 100 * 365 * 24 * time.Hour}, 0, ""},
		{"server needs a host", pki.Request{Identity: id(pki.RoleServer, "m2")}, 0, "needs the host names"},
		{"only servers have hosts", pki.Request{Identity: id(pki.RoleUser, "a"), DNSNames: []string{"x"}}, 0, "only server"},
		{"bad role", pki.Request{Identity: id("boss", "a")}, 0, "unknown role"},
		{"negative ttl", pki.Request{Identity: id(pki.RoleUser, "a"), TTL: -time.Hour}, 0, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is, err := ca.Issue(tc.req)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := pki.IdentityOf(is.Cert)
			if err != nil || got != tc.req.Identity {
				t.Fatalf("identity %v, %v", got, err)
			}
			if tc.life == 0 {
				if !is.Cert.NotAfter.Equal(ca.Cert.NotAfter) {
					t.Fatalf("not capped: %v vs CA %v", is.Cert.NotAfter, ca.Cert.NotAfter)
				}
				return
			}
			if d := is.Cert.NotAfter.Sub(time.Now()); d > tc.life || d < tc.life-time.Minute {
				t.Fatalf("lifetime %v, want %v", d, tc.life)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	ca := pkitest.New(t)
	alice := pki.Identity{Role: pki.RoleUser, Name: "alice"}
	good := ca.Write(pki.Request{Identity: alice})
	expired := ca.Write(pki.Request{Identity: pki.Identity{Role: pki.RoleAgent, Name: "node07"}, TTL: time.Hour}, -2*time.Hour)
	revoked := ca.Write(pki.Request{Identity: pki.Identity{Role: pki.RoleUser, Name: "bob"}})
	if err := pki.Revoke(filepath.Join(ca.Dir(), pki.RevokedFile), pki.Serial(revoked.Cert), "laptop lost", time.Now()); err != nil {
		t.Fatal(err)
	}
	other := pkitest.New(t).Write(pki.Request{Identity: alice})
	r := ca.Reloader("")
	for _, tc := range []struct {
		name  string
		chain []*x509.Certificate
		usage x509.ExtKeyUsage
		want  error
		msg   string
	}{
		{"good", []*x509.Certificate{good.Cert}, x509.ExtKeyUsageClientAuth, nil, ""},
		{"none", nil, x509.ExtKeyUsageClientAuth, pki.ErrNoCertificate, "hpcsub login"},
		{"expired agent", []*x509.Certificate{expired.Cert}, x509.ExtKeyUsageClientAuth, pki.ErrExpired, "hpcd tls issue --agent node07"},
		{"revoked user", []*x509.Certificate{revoked.Cert}, x509.ExtKeyUsageClientAuth, pki.ErrRevoked, "run `hpcsub login`"},
		{"other CA", []*x509.Certificate{other.Cert}, x509.ExtKeyUsageClientAuth, pki.ErrUntrusted, ""},
		{"user cert as a server", []*x509.Certificate{good.Cert}, x509.ExtKeyUsageServerAuth, pki.ErrUntrusted, ""},
		{"self-signed", []*x509.Certificate{selfSigned(t, "vhpc://operator/eve")}, x509.ExtKeyUsageClientAuth, pki.ErrUntrusted, ""},
		{"no identity", []*x509.Certificate{selfSigned(t)}, x509.ExtKeyUsageClientAuth, pki.ErrIdentity, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.Verify(tc.chain, tc.usage)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err != nil && !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want it to say %q", err, tc.msg)
			}
		})
	}
}

func TestRevokedFile(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
		err      string
	}{
		{"formats", "# list\n0A:1b\n\nff # lost\n", []string{"a1b", "ff"}, ""},
		{"bad line", "ff\nnot-hex\n", nil, "line 2"},
		{"zero", "00\n", nil, "line 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pki.ParseRevoked([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil || len(got) != len(tc.want) {
				t.Fatalf("got %v, %v", got, err)
			}
			for _, s := range tc.want {
				if !got[s] {
					t.Fatalf("%s missing from %v", s, got)
				}
			}
		})
	}
	path := filepath.Join(t.TempDir(), "revoked.txt")
	for range 2 {
		if err := pki.Revoke(path, "AB:CD", "test", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(path)
	if strings.Count(string(data), "abcd") != 1 {
		t.Fatalf("revoking twice: %q", data)
	}
	if err := pki.Revoke(path, "xyz", "", time.Now()); err == nil {
		t.Fatal("revoked a non-hex serial")
	}
}

// handshake runs one TLS handshake between a server and a client config
// over loopback and returns the server certificate the client saw and the
// client's and server's errors.
func handshake(t *testing.T, server, client *tls.Config) (*x509.Certificate, error, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer c.Close()
		tc := tls.Server(c, server)
		err = tc.Handshake()
		if err == nil {
			_, err = tc.Write([]byte("x")) // lets a TLS 1.3 client see a refusal
		}
		srvErr <- err
	}()
	cfg := client.Clone()
	cfg.ServerName = "localhost"
	c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
	if err != nil {
		return nil, err, <-srvErr
	}
	defer c.Close()
	_, rerr := c.Read(make([]byte, 1))
	var leaf *x509.Certificate
	if pc := c.ConnectionState().PeerCertificates; len(pc) > 0 {
		leaf = pc[0]
	}
	return leaf, rerr, <-srvErr
}

func TestHandshakeModes(t *testing.T) {
	ca := pkitest.New(t)
	ca.Write(pki.Request{Identity: pki.Identity{Role: pki.RoleAgent, Name: "node07"}})
	ca.Write(pki.Request{Identity: pki.Identity{Role: pki.RoleUser, Name: "old"}, TTL: time.Hour}, -3*time.Hour)
	foreign := pkitest.New(t)
	foreign.Write(pki.Request{Identity: pki.Identity{Role: pki.RoleAgent, Name: "node07"}})
	// A client of the foreign cluster that trusts our CA: it presents a
	// certificate our CA never signed.
	forged, err := pki.NewReloader(pki.Files{Cert: filepath.Join(foreign.Dir(), "agent-node07.crt"),
		Key: filepath.Join(foreign.Dir(), "agent-node07.key"), CA: filepath.Join(ca.Dir(), pki.CACertFile)}, pki.ReloadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv := ca.Reloader("server-m1")
	for _, tc := range []struct {
		name    string
		mode    pki.HandshakeMode
		client  *pki.Reloader
		refused bool
	}{
		{"agent, trust mode", pki.TrustAtHandshake, ca.Reloader("agent-node07"), false},
		{"anonymous, trust mode", pki.TrustAtHandshake, ca.Reloader(""), false},
		{"expired, trust mode (refused per RPC)", pki.TrustAtHandshake, ca.Reloader("user-old"), false},
		{"forged, trust mode", pki.TrustAtHandshake, forged, true},
		{"agent, strict", pki.StrictHandshake, ca.Reloader("agent-node07"), false},
		{"anonymous, strict", pki.StrictHandshake, ca.Reloader(""), true},
		{"expired, strict", pki.StrictHandshake, ca.Reloader("user-old"), true},
		{"member, member mode", pki.MemberHandshake, ca.Server("m2"), false},
		{"agent, member mode (not a member)", pki.MemberHandshake, ca.Reloader("agent-node07"), true},
		{"operator, member mode (not a member)", pki.MemberHandshake, ca.Credentials(pki.Identity{Role: pki.RoleOperator, Name: "olga"}), true},
		{"anonymous, member mode", pki.MemberHandshake, ca.Reloader(""), true},
		{"forged, member mode", pki.MemberHandshake, forged, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := srv.ServerTLS(tc.mode)
			if err != nil {
				t.Fatal(err)
			}
			_, cerr, serr := handshake(t, cfg, tc.client.ClientTLS())
			if (serr != nil) != tc.refused {
				t.Fatalf("server err = %v, client err = %v; refused want %v", serr, cerr, tc.refused)
			}
		})
	}
	// A client refuses a server of another cluster.
	fcfg, _ := foreign.Reloader("server-m1").ServerTLS(pki.TrustAtHandshake)
	if _, cerr, _ := handshake(t, fcfg, ca.Reloader("").ClientTLS()); !errors.Is(cerr, pki.ErrUntrusted) {
		t.Fatalf("client accepted a foreign server: %v", cerr)
	}
	// ... and an agent certificate offered as a server's.
	if _, err := ca.Reloader("agent-node07").ServerTLS(pki.TrustAtHandshake); err == nil || !strings.Contains(err.Error(), "needs role server") {
		t.Fatalf("served with an agent certificate: %v", err)
	}
}

// TestRotationWithoutRestart replaces the server's certificate, the CA
// bundle and the revocation list on disk under one live tls.Config.
func TestRotationWithoutRestart(t *testing.T) {
	ca := pkitest.New(t)
	srv := ca.Reloader("server-m1")
	cfg, err := srv.ServerTLS(pki.TrustAtHandshake)
	if err != nil {
		t.Fatal(err)
	}
	client := ca.Reloader("")
	first, cerr, _ := handshake(t, cfg, client.ClientTLS())
	if cerr != nil {
		t.Fatal(cerr)
	}
	next := ca.Write(pki.Request{Identity: pki.Identity{Role: pki.RoleServer, Name: "m1"}, DNSNames: []string{"localhost"}})
	second, cerr, _ := handshake(t, cfg, client.ClientTLS())
	if cerr != nil || pki.Serial(second) != pki.Serial(next.Cert) || pki.Serial(second) == pki.Serial(first) {
		t.Fatalf("after rotation the server presents %v (err %v), want the new %s", second.SerialNumber, cerr, pki.Serial(next.Cert))
	}

	// A half-written rotation (a certificate whose key is not there yet)
	// keeps the working pair.
	stray := pkitest.New(t).Write(pki.Request{Identity: pki.Identity{Role: pki.RoleServer, Name: "m1"}, DNSNames: []string{"localhost"}})
	if err := pki.WriteFileAtomic(filepath.Join(ca.Dir(), "server-m1.crt"), stray.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	third, cerr, _ := handshake(t, cfg, client.ClientTLS())
	if cerr != nil || pki.Serial(third) != pki.Serial(next.Cert) {
		t.Fatalf("mismatched pair: served %v, err %v", third, cerr)
	}

	// Revoking the agent's certificate takes effect on the next check.
	agent := ca.Write(pki.Request{Identity: pki.Identity{Role: pki.RoleAgent, Name: "node07"}})
	if _, err := srv.Verify([]*x509.Certificate{agent.Cert}, x509.ExtKeyUsageClientAuth); err != nil {
		t.Fatal(err)
	}
	if err := pki.Revoke(filepath.Join(ca.Dir(), pki.RevokedFile), pki.Serial(agent.Cert), "", time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Verify([]*x509.Certificate{agent.Cert}, x509.ExtKeyUsageClientAuth); !errors.Is(err, pki.ErrRevoked) {
		t.Fatalf("after revocation: %v", err)
	}

	// A new CA appended to the bundle is trusted without a restart.
	other := pkitest.New(t)
	oa := other.Write(pki.Request{Identity: pki.Identity{Role: pki.RoleAgent, Name: "node09"}})
	bundle := append(append([]byte{}, ca.CertPEM...), other.CertPEM...)
	if err := pki.WriteFileAtomic(filepath.Join(ca.Dir(), pki.CACertFile), bundle, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Verify([]*x509.Certificate{oa.Cert}, x509.ExtKeyUsageClientAuth); err != nil {
		t.Fatalf("after adding a CA to the bundle: %v", err)
	}
}
