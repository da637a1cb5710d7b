package main

import (
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vhpc/imagestore"
	"vhpc/security/regtoken"
)

// TestDevRegistryStartsAndStopsWithHpcd: the dev registry answers on
// loopback (anonymously when open; with token auth only to a token the
// master's key signed) and stops with Close.
func TestDevRegistryStartsAndStopsWithHpcd(t *testing.T) {
	iss, err := regtoken.Generate(regtoken.Config{})
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), regtoken.CertFile)
	if err := os.WriteFile(bundle, iss.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := iss.Issue("test")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name              string
		tokens            *imagestore.TokenAuth
		anonymous, bearer int // GET /v2/ without and with the token
	}{
		{"open", nil, http.StatusOK, http.StatusOK},
		{"token auth", &imagestore.TokenAuth{Service: iss.Service(), Issuer: iss.Name(), RootCertBundle: bundle}, http.StatusUnauthorized, http.StatusOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reg, err := startDevRegistry(t.TempDir(), tc.tokens, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				auth string
				want int
			}{{"", tc.anonymous}, {"Bearer " + tok.Raw, tc.bearer}} {
				req, _ := http.NewRequest(http.MethodGet, reg.URL+"/v2/", nil)
				if c.auth != "" {
					req.Header.Set("Authorization", c.auth)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != c.want || !strings.HasPrefix(reg.URL, "http://127.0.0.1:") {
					t.Fatalf("GET %s/v2/ (auth %.10q): %s, want %d", reg.URL, c.auth, resp.Status, c.want)
				}
			}
			reg.Close()
			select {
			case <-reg.Exited():
			default:
				t.Fatal("the registry still runs after Close")
			}
		})
	}
}

func TestDevRegistryMissingNamesThePackage(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := startDevRegistry(t.TempDir(), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "install the Debian package docker-registry") || !strings.Contains(err.Error(), "--registry URL") {
		t.Fatalf("err %v", err)
	}
}

func TestRegistryFlagReachesTheMaster(t *testing.T) {
	cases := []struct{ flag, want string }{
		{"", ""},
		{"http://registry.example:5000", "http://registry.example:5000"},
	}
	for _, tc := range cases {
		c := common{dataDir: t.TempDir(), logLevel: "info", registry: tc.flag}
		cfg, err := c.config("s1", nil)
		if err != nil || cfg.ImageRegistry != tc.want {
			t.Fatalf("--registry %q: ImageRegistry %q, %v", tc.flag, cfg.ImageRegistry, err)
		}
	}
}
