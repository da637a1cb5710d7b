package regtoken_test

import (
	"crypto/x509"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vhpc/security/regtoken"
)

func newIssuer(t *testing.T, cfg regtoken.Config) (*regtoken.Issuer, *x509.CertPool) {
	t.Helper()
	iss, err := regtoken.Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(iss.Certificate())
	return iss, pool
}

func TestIssueVerify(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	iss, pool := newIssuer(t, regtoken.Config{TTL: 10 * time.Minute, Now: func() time.Time { return now }})
	foreign, _ := newIssuer(t, regtoken.Config{Now: func() time.Time { return now }})
	job := []regtoken.Access{
		regtoken.Repository("physics/sim", regtoken.ActionPull),
		regtoken.Repository("vhpc-data/physics", regtoken.ActionPull, regtoken.ActionPush),
	}
	good, err := iss.Issue("agent/n1 alloc a1", job...)
	if err != nil {
		t.Fatal(err)
	}
	if !good.Expires.Equal(now.Add(10 * time.Minute)) {
		t.Fatalf("expires %s", good.Expires)
	}
	bad, err := foreign.Issue("agent/n1 alloc a1", job...)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		raw     string
		service string
		at      time.Time
		wantErr string
	}{
		{"valid", good.Raw, regtoken.DefaultService, now.Add(time.Minute), ""},
		{"expired", good.Raw, regtoken.DefaultService, now.Add(11 * time.Minute), "expired"},
		{"not yet valid", good.Raw, regtoken.DefaultService, now.Add(-time.Minute), "not valid yet"},
		{"foreign key", bad.Raw, regtoken.DefaultService, now, "x5c"},
		{"other service", good.Raw, "other-registry", now, "audience"},
		{"tampered claims", tamper(t, good.Raw), regtoken.DefaultService, now, "signature"},
		{"not a token", "abc.def", regtoken.DefaultService, now, "malformed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := regtoken.Verify(tc.raw, pool, regtoken.DefaultIssuer, tc.service, tc.at)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.Subject != "agent/n1 alloc a1" || c.Audience != regtoken.DefaultService || c.ID == "" ||
					!c.Allows("physics/sim", "pull") || c.Allows("physics/sim", "push") ||
					!c.Allows("vhpc-data/physics", "push") || c.Allows("vhpc-data/chemistry", "pull") {
					t.Fatalf("claims %+v", c)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// tamper points the access claim of a signed token at another
// department, keeping its signature.
func tamper(t *testing.T, raw string) string {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("token of %d parts", len(parts))
	}
	claims, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	forged := strings.ReplaceAll(string(claims), "physics", "chemistry")
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(forged)) + "." + parts[2]
}

func TestIssueRefusesBadAccess(t *testing.T) {
	iss, _ := newIssuer(t, regtoken.Config{})
	cases := []regtoken.Access{
		{Type: "registry", Name: "catalog", Actions: []string{"*"}},
		regtoken.Repository("", regtoken.ActionPull),
		regtoken.Repository("physics/sim"),
		regtoken.Repository("physics/sim", "*"),
	}
	for _, a := range cases {
		if _, err := iss.Issue("x", a); err == nil {
			t.Errorf("%+v: issued", a)
		}
	}
}

func TestConfigBounds(t *testing.T) {
	certPEM, keyPEM, err := regtoken.NewKeyPair(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, ttl := range []time.Duration{-time.Second, regtoken.MaxTTL + time.Second} {
		if _, err := regtoken.Parse(certPEM, keyPEM, regtoken.Config{TTL: ttl}); err == nil {
			t.Errorf("TTL %s accepted", ttl)
		}
	}
	other, otherKey, _ := regtoken.NewKeyPair(time.Now())
	if _, err := regtoken.Parse(other, keyPEM, regtoken.Config{}); err == nil {
		t.Error("a key that does not match its certificate was accepted")
	}
	if _, err := regtoken.Parse(certPEM, otherKey, regtoken.Config{}); err == nil {
		t.Error("a certificate that does not match its key was accepted")
	}
}

func TestCreateLoadEnsure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	a, err := regtoken.Ensure(dir, regtoken.Config{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, regtoken.KeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file %v %v", st, err)
	}
	b, err := regtoken.Ensure(dir, regtoken.Config{})
	if err != nil || !a.Certificate().Equal(b.Certificate()) {
		t.Fatalf("second Ensure made a new key (%v)", err)
	}
	if err := regtoken.Create(dir); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("Create over an existing key: %v", err)
	}
	if a.Certificate().IsCA {
		t.Fatal("the token certificate is a CA")
	}
	if err := os.Chmod(filepath.Join(dir, regtoken.KeyFile), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := regtoken.Load(dir, regtoken.Config{}); err == nil || !strings.Contains(err.Error(), "private") {
		t.Fatalf("Load of a group-readable key: %v", err)
	}
	if err := os.Remove(filepath.Join(dir, regtoken.KeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := regtoken.Ensure(dir, regtoken.Config{}); err == nil {
		t.Fatal("Ensure replaced a lone certificate's missing key")
	}
}
