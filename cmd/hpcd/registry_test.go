package main

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

func TestDevRegistryStartsAndStopsWithHpcd(t *testing.T) {
	reg, err := startDevRegistry(t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(reg.URL + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(reg.URL, "http://127.0.0.1:") {
		t.Fatalf("GET %s/v2/: %s", reg.URL, resp.Status)
	}
	reg.Close()
	select {
	case <-reg.Exited():
	default:
		t.Fatal("the registry still runs after Close")
	}
}

func TestDevRegistryMissingNamesThePackage(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := startDevRegistry(t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
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
