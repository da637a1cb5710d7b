package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "usage"},
		{[]string{"image", "list"}, "usage"},
		{[]string{"image", "build", "centos.yaml"}, "no such file"},
		{[]string{"image", "build"}, "usage"},
		{[]string{"image", "build", "tiny", "-bogus"}, "flag provided but not defined"},
	}
	for _, tc := range tests {
		var out, errb bytes.Buffer
		err := run(context.Background(), tc.args, &out, &errb)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v, want %q", tc.args, err, tc.want)
		}
	}
}

// TestBuildSpecErrors: a bad spec fails before anything is built, with
// line:col from imagespec.
func TestBuildSpecErrors(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(spec, []byte("name: public/python:1\npackage: [python3]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"image", "build", spec, "--out", filepath.Join(dir, "store")}, &out, &errb)
	want := spec + `:2:1: package: unknown field; did you mean "packages"?`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err %v, want %q", err, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "store")); !os.IsNotExist(err) {
		t.Errorf("store created for a bad spec: %v", err)
	}
}
