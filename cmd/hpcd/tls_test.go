package main

import (
	"bytes"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vhpc/security/pki"
)

// runTLS runs `hpcd tls ARGS...` in-process and returns its output.
func runTLS(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := tlsCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	return out.String(), err
}

func TestTLSInitIssueRevoke(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	if _, err := runTLS(t, "init", "--out", dir, "--name", "m1", "--host", "localhost,127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := runTLS(t, "init", "--out", dir, "--name", "m1", "--host", "localhost"); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("second init: %v", err)
	}
	agentDir := filepath.Join(t.TempDir(), "node07")
	usage := func(err error) bool { var ue usageError; return errors.As(err, &ue) }
	for _, tc := range []struct {
		name    string
		args    []string
		want    pki.Identity
		outDir  string
		err     string
		isUsage bool
	}{
		{"agent into its own dir", []string{"--agent", "node07", "--out", agentDir}, pki.Identity{Role: pki.RoleAgent, Name: "node07"}, agentDir, "", false},
		{"user with ttl", []string{"--user", "alice", "--ttl", "1h"}, pki.Identity{Role: pki.RoleUser, Name: "alice"}, dir, "", false},
		{"operator", []string{"--operator", "olga"}, pki.Identity{Role: pki.RoleOperator, Name: "olga"}, dir, "", false},
		{"server", []string{"--server", "m2", "--host", "m2.example,10.0.0.2"}, pki.Identity{Role: pki.RoleServer, Name: "m2"}, dir, "", false},
		{"server without host", []string{"--server", "m3"}, pki.Identity{}, "", "needs the host names", false},
		{"two roles", []string{"--agent", "a", "--user", "b"}, pki.Identity{}, "", "give one of", true},
		{"no role", nil, pki.Identity{}, "", "give one of", true},
		{"bad name", []string{"--user", "al ice"}, pki.Identity{}, "", `name "al ice"`, true},
		{"no CA", []string{"--user", "x", "--ca", t.TempDir()}, pki.Identity{}, "", "hpcd tls init", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"issue", "--ca", dir}, tc.args...)
			out, err := runTLS(t, args...)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || usage(err) != tc.isUsage {
					t.Fatalf("err = %v (usage %v), want %q (usage %v)", err, usage(err), tc.err, tc.isUsage)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			base := filepath.Join(tc.outDir, tc.want.BaseName())
			st, err := os.Stat(base + ".key")
			if err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("key: %v, mode %v", err, st)
			}
			r, err := pki.NewReloader(pki.FilesIn(tc.outDir, tc.want.BaseName()), pki.ReloadOptions{})
			if err != nil {
				t.Fatalf("the written files do not load: %v", err)
			}
			if got := r.Identity(); got != tc.want {
				t.Fatalf("identity %v, want %v", got, tc.want)
			}
			if _, err := r.Verify([]*x509Cert{r.Certificate().Leaf}, clientAuth); err != nil {
				t.Fatalf("issued certificate does not verify against the written ca.crt: %v", err)
			}
		})
	}

	show, err := runTLS(t, "show", filepath.Join(agentDir, "agent-node07.crt"))
	if err != nil || !strings.Contains(show, "vhpc://agent/node07 serial ") {
		t.Fatalf("show: %v\n%s", err, show)
	}
	serial := strings.Fields(show)[2]
	if _, err := runTLS(t, "revoke", "--ca", dir, filepath.Join(agentDir, "agent-node07.crt"), "--reason", "node stolen"); err != nil {
		t.Fatal(err)
	}
	rev, _ := os.ReadFile(filepath.Join(dir, pki.RevokedFile))
	if !strings.Contains(string(rev), serial+" # revoked") || !strings.Contains(string(rev), "node stolen") {
		t.Fatalf("revoked.txt: %q", rev)
	}
	srv, err := pki.NewReloader(pki.FilesIn(dir, "server-m1"), pki.ReloadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	agent, _ := pki.NewReloader(pki.FilesIn(agentDir, "agent-node07"), pki.ReloadOptions{})
	if _, err := srv.Verify([]*x509Cert{agent.Certificate().Leaf}, clientAuth); !errors.Is(err, pki.ErrRevoked) || !strings.Contains(err.Error(), "hpcd tls issue --agent node07") {
		t.Fatalf("revoked agent: %v", err)
	}
	if _, err := runTLS(t, "revoke", "--ca", dir, "not-a-serial"); err == nil {
		t.Fatal("revoked a non-serial")
	}
}

type x509Cert = x509.Certificate

const clientAuth = x509.ExtKeyUsageClientAuth
