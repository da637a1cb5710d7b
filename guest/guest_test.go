package guest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"vhpc/guestproto"
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

// req is a job run as the test's own user (RunJob then changes no
// credentials), with one variable of its own.
func req(argv ...string) guestproto.Request {
	return guestproto.Request{Version: guestproto.ProtocolVersion, JobID: 1, Argv: argv,
		UID: os.Getuid(), GID: os.Getgid(), NCPUs: 2, Env: map[string]string{"FOO": "bar"}}
}

func TestRunJob(t *testing.T) {
	tests := []struct {
		name     string
		req      guestproto.Request
		wantCode int
		wantOut  string
		wantErr  bool
	}{
		{name: "ok with env", req: req("/bin/sh", "-c", "echo $FOO $VHPC_JOB_ID $VHPC_NCPUS; pwd"), wantOut: "bar 1 2\n"},
		{name: "exit code", req: req("/bin/sh", "-c", "echo out; echo err >&2; exit 42"), wantCode: 42, wantOut: "out\nerr\n"},
		{name: "script", req: func() guestproto.Request { r := req(); r.Script = "echo from script\nexit 3\n"; return r }(), wantCode: 3, wantOut: "from script\n"},
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
	done := make(chan guestproto.Exit, 1)
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

// TestBareCommandIsFoundInTheJobsPATH: argv[0] without a slash is looked
// up in the job's PATH (PID 1 has none of its own).
func TestBareCommandIsFoundInTheJobsPATH(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello-vhpc"), []byte("#!/bin/sh\necho found \"$0\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	req := guestproto.Request{Version: guestproto.ProtocolVersion, Argv: []string{"hello-vhpc"},
		Env: map[string]string{"PATH": dir + ":/usr/bin:/bin"}, UID: os.Getuid(), GID: os.Getgid()}
	e := RunJob(context.Background(), req, JobOptions{WorkDir: t.TempDir(), ScriptDir: t.TempDir(), Out: &out})
	if e.ExitCode != 0 || !strings.Contains(out.String(), "found") {
		t.Fatalf("exit %d (%s), output %q", e.ExitCode, e.Error, out.String())
	}
}
