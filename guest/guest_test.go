package guest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func req(argv ...string) Request {
	return Request{Version: ProtocolVersion, AllocID: "1.0.0", JobID: 1, Argv: argv,
		UID: os.Getuid(), GID: os.Getgid(), NCPUs: 2, Env: map[string]string{"FOO": "bar", "VHPC_JOB_ID": "spoofed"}}
}

func TestRunJob(t *testing.T) {
	tests := []struct {
		name     string
		req      Request
		wantCode int
		wantOut  string
		wantErr  bool
	}{
		{name: "ok with env", req: req("/bin/sh", "-c", "echo $FOO $VHPC_JOB_ID $VHPC_NCPUS; pwd"), wantOut: "bar 1 2\n"},
		{name: "exit code", req: req("/bin/sh", "-c", "echo out; echo err >&2; exit 42"), wantCode: 42, wantOut: "out\nerr\n"},
		{name: "script", req: func() Request { r := req(); r.Script = "echo from script\nexit 3\n"; return r }(), wantCode: 3, wantOut: "from script\n"},
		{name: "not found", req: req("/no/such/binary"), wantCode: 127, wantErr: true},
		{name: "killed by signal", req: req("/bin/sh", "-c", "kill -KILL $$"), wantCode: 137},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			work := t.TempDir()
			var out syncBuf
			e := RunJob(context.Background(), tc.req, JobOptions{WorkDir: work, ScriptDir: t.TempDir(), Out: &out})
			if e.ExitCode != tc.wantCode || (e.Error != "") != tc.wantErr {
				t.Fatalf("exit %+v, want code %d err %v", e, tc.wantCode, tc.wantErr)
			}
			if !strings.HasPrefix(out.String(), tc.wantOut) {
				t.Errorf("output %q, want prefix %q", out.String(), tc.wantOut)
			}
		})
	}
}

func TestRunJobStop(t *testing.T) {
	stop := make(chan struct{})
	var out syncBuf
	done := make(chan Exit, 1)
	go func() {
		done <- RunJob(context.Background(), req("/bin/sh", "-c", "echo started; sleep 60"),
			JobOptions{WorkDir: t.TempDir(), Out: &out, Stop: stop, KillGrace: time.Second})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "started") {
		if time.Now().After(deadline) {
			t.Fatal("job did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	select {
	case e := <-done:
		if !e.Stopped || e.Signal == "" || e.ExitCode < 128 {
			t.Fatalf("exit %+v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("job not stopped")
	}
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
