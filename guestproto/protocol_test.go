package guestproto

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func req(argv ...string) Request {
	return Request{Version: ProtocolVersion, AllocID: "1.0.0", JobID: 1, Argv: argv,
		UID: os.Getuid(), GID: os.Getgid(), NCPUs: 2, Env: map[string]string{"FOO": "bar", "VHPC_JOB_ID": "spoofed"}}
}

func TestEnviron(t *testing.T) {
	r := req("x")
	r.Scratch = true
	env := r.Environ()
	if !slices.IsSorted(env) {
		t.Error("environment not sorted")
	}
	for _, want := range []string{"FOO=bar", "VHPC_JOB_ID=1", "VHPC_NCPUS=2", "VHPC_SCRATCH=/scratch", "VHPC_WORKDIR=/jobshare/work", "VHPC_ALLOC_ID=1.0.0"} {
		if !slices.Contains(env, want) {
			t.Errorf("env lacks %s: %v", want, env)
		}
	}
	if slices.Contains(env, "VHPC_JOB_ID=spoofed") {
		t.Error("job env overrode a VHPC_ variable")
	}
}

func TestProtocolFiles(t *testing.T) {
	dir := t.TempDir()
	r := req("/bin/true")
	if err := WriteRequest(dir, r); err != nil {
		t.Fatal(err)
	}
	got, err := ReadRequest(dir)
	if err != nil || got.AllocID != r.AllocID || !slices.Equal(got.Argv, r.Argv) {
		t.Fatalf("request round trip: %+v %v", got, err)
	}
	if _, err := ReadExit(dir); err == nil {
		t.Fatal("exit.json before the job ended")
	}
	if err := WriteExit(dir, Exit{ExitCode: 2, BootSeconds: 1, RunSeconds: 2}); err != nil {
		t.Fatal(err)
	}
	e, err := ReadExit(dir)
	if err != nil || e.ExitCode != 2 || e.Version != ProtocolVersion {
		t.Fatalf("exit round trip: %+v %v", e, err)
	}
	if _, err := os.Stat(filepath.Join(dir, ExitFile+".tmp")); err == nil {
		t.Error("temporary file left")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Request)
		ok   bool
	}{
		{"ok", func(*Request) {}, true},
		{"newer version", func(r *Request) { r.Version = 2 }, false},
		{"nothing to run", func(r *Request) { r.Argv = nil }, false},
		{"negative uid", func(r *Request) { r.UID = -1 }, false},
	}
	for _, tc := range tests {
		r := req("/bin/true")
		tc.mod(&r)
		if err := r.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}
