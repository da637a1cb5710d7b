package main

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// TestDevIsSecureByDefault: `hpcd dev` alone creates its CA and the local
// user's credential; hpcsub uses it without a flag, a plaintext or
// credential-less client is refused, an operator adds users, hpcsub login
// renews the credential over the login socket, and the audit log shows
// the calls. No libvirt needed (--no-agent).
func TestDevIsSecureByDefault(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs hpcd; skipped with -short")
	}
	me, err := user.Current()
	if err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	hpcd, sub := goBuild(t, dir, "."), goBuild(t, dir, "../hpcsub")
	creds := filepath.Join(dir, "creds")
	addr := freePort(t)
	cmd := exec.Command(hpcd, "dev", "--no-agent", "--data-dir", filepath.Join(dir, "data"), "--addr", addr,
		"--raft-addr", freePort(t), "--http", "", "--log-level", "warn", "--credentials-out", creds)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	waitFile(t, filepath.Join(creds, "user-"+me.Username+".crt"))
	waitFile(t, filepath.Join(dir, "data", "login.sock"))

	run := func(env, bin string, args ...string) (string, error) {
		t.Helper()
		c := exec.Command(bin, append(args, "--addr", addr)...)
		c.Env = append(os.Environ(), "VHPC_CREDENTIALS="+env)
		var out bytes.Buffer
		c.Stdout, c.Stderr = &out, &out
		err := c.Run()
		return out.String(), err
	}
	must := func(env, bin string, args ...string) string {
		t.Helper()
		out, err := run(env, bin, args...)
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", filepath.Base(bin), args, err, out)
		}
		return out
	}
	if out := must(creds, sub, "whoami"); !strings.Contains(out, "user "+me.Username) || !strings.Contains(out, "departments: *, default, public") || !strings.Contains(out, "admin of: default, public") {
		t.Fatalf("whoami:\n%s", out)
	}
	job := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(job, []byte("name: hi\nresources: {cpusPerTask: 1, memory: 256MiB}\nwalltime: 1m\ncommand: [/bin/true]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	must(creds, sub, job)
	if out := must(creds, sub, "queue"); !strings.Contains(out, "hi") {
		t.Fatalf("queue:\n%s", out)
	}
	// Job files go through the dev registry with the master's tokens (the
	// upload with the user's, the master's check with its own); the
	// registry refuses anyone without one.
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte("input\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	staged := filepath.Join(dir, "staged.yaml")
	if err := os.WriteFile(staged, []byte("name: staged\nresources: {cpusPerTask: 1, memory: 256MiB}\nwalltime: 1m\nstageIn: [in.txt]\ncommand: [/bin/true]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := must(creds, sub, staged); !strings.Contains(out, "stageIn: 1 files") {
		t.Fatalf("submit with stageIn:\n%s", out)
	}
	conf, err := os.ReadFile(filepath.Join(dir, "data", "registry", "config.yml"))
	m := regexp.MustCompile(`addr: "([^"]+)"`).FindSubmatch(conf)
	if err != nil || m == nil || !strings.Contains(string(conf), "rootcertbundle") {
		t.Fatalf("dev registry config (%v):\n%s", err, conf)
	}
	resp, err := http.Get("http://" + string(m[1]) + "/v2/vhpc-data/default/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous registry request: %s, want 401", resp.Status)
	}
	// A directory with the CA but no certificate: refused, saying how to log in.
	anon := filepath.Join(dir, "anon")
	if err := os.MkdirAll(anon, 0o700); err != nil {
		t.Fatal(err)
	}
	ca, _ := os.ReadFile(filepath.Join(creds, "ca.crt"))
	if err := os.WriteFile(filepath.Join(anon, "ca.crt"), ca, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(anon, sub, "queue"); err == nil || !strings.Contains(out, "Unauthenticated") || !strings.Contains(out, "hpcsub login") {
		t.Fatalf("anonymous queue: %v\n%s", err, out)
	}
	// The operator (the user running hpcd) adds alice; the user cannot.
	if out, err := run(creds, hpcd, "user", "add", "alice", "--department", "chemistry"); err != nil || !strings.Contains(out, "alice") {
		t.Fatalf("operator adds alice: %v\n%s", err, out)
	}
	userOnly := filepath.Join(dir, "useronly")
	if err := os.MkdirAll(userOnly, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ca.crt", "user-" + me.Username + ".crt", "user-" + me.Username + ".key"} {
		b, _ := os.ReadFile(filepath.Join(creds, f))
		if err := os.WriteFile(filepath.Join(userOnly, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := run(userOnly, hpcd, "user", "add", "mallory", "--admin-of", "chemistry"); err == nil || !strings.Contains(out, "PermissionDenied") {
		t.Fatalf("a user adds a user: %v\n%s", err, out)
	}
	// hpcsub login over the dev login socket renews the credential.
	if out := must(creds, sub, "login"); !strings.Contains(out, "Logged in as user/"+me.Username) {
		t.Fatalf("login:\n%s", out)
	}
	out := must(creds, hpcd, "operator", "audit")
	for _, want := range []string{"JobService/Submit", "AuthService/PutUser", "deny", "anonymous"} {
		if !strings.Contains(out, want) {
			t.Fatalf("audit lacks %q:\n%s", want, out)
		}
	}
}

// TestTokensInClear: a member that signs registry tokens warns when they
// would cross the network in plain HTTP, and only then.
func TestTokensInClear(t *testing.T) {
	for _, tc := range []struct {
		url  string
		warn bool
	}{
		{"", false},
		{"http://127.0.0.1:5000", false},
		{"http://[::1]:5000", false},
		{"http://localhost:5000", false},
		{"https://registry.example:5000", false},
		{"http://registry.example:5000", true},
		{"http://10.0.0.5:5000", true},
	} {
		if got := tokensInClear(tc.url) != ""; got != tc.warn {
			t.Errorf("%q: warns %v, want %v", tc.url, got, tc.warn)
		}
	}
}
