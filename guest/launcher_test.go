package guest

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

type testServer struct {
	addr string
	srv  *LauncherServer
	logs *syncBuf
	dir  string
}

// startLauncher runs a launcher on 127.0.0.1 as the test's own user, with
// a job environment of its own (VHPC_RANK=1, JOBVAR=x).
func startLauncher(t *testing.T, onDone func()) *testServer {
	t.Helper()
	ln, err := Listen(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, ln, onDone)
}

func serveOn(t *testing.T, ln *Listener, onDone func()) *testServer {
	t.Helper()
	ts := &testServer{addr: ln.Addr().String(), logs: &syncBuf{}, dir: t.TempDir()}
	srv, err := NewLauncherServer(LauncherServerConfig{Key: testKey, Log: slog.New(slog.NewTextHandler(ts.logs, nil)),
		UID: os.Getuid(), GID: os.Getgid(), Env: []string{"PATH=/usr/bin:/bin", "VHPC_RANK=1", "JOBVAR=x"},
		Dir: ts.dir, OnDone: onDone, KillGrace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ts.srv = srv
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ts
}

func TestLauncherExec(t *testing.T) {
	ts := startLauncher(t, nil)
	cwd := t.TempDir()
	tests := []struct {
		name             string
		cmd              RemoteCommand
		wantOut, wantErr string
		wantCode         int
		wantCodeErr      int // a RemoteError's code
	}{
		{name: "stdout stderr exit", cmd: RemoteCommand{Argv: []string{"/bin/sh", "-c", "echo out; echo err >&2; exit 7"}},
			wantOut: "out\n", wantErr: "err\n", wantCode: 7},
		{name: "shell line as ssh", cmd: RemoteCommand{Argv: []string{"echo", "'a  b'", ";", "exit", "3"}, Shell: true},
			wantOut: "a  b\n", wantCode: 3},
		{name: "stdin relayed", cmd: RemoteCommand{Argv: []string{"/bin/sh", "-c", "cat; echo end"}, Stdin: strings.NewReader("hello\nworld\n")},
			wantOut: "hello\nworld\nend\n"},
		{name: "no stdin is /dev/null", cmd: RemoteCommand{Argv: []string{"/bin/sh", "-c", "cat; echo end"}},
			wantOut: "end\n"},
		{name: "killed by signal", cmd: RemoteCommand{Argv: []string{"/bin/sh", "-c", "kill -TERM $$"}}, wantCode: 143},
		{name: "not found", cmd: RemoteCommand{Argv: []string{"/no/such/binary"}}, wantCodeErr: 127},
		{name: "client's cwd", cmd: RemoteCommand{Argv: []string{"/bin/sh", "-c", "pwd"}, Dir: cwd}, wantOut: cwd + "\n"},
		{name: "missing cwd: the work dir", cmd: RemoteCommand{Argv: []string{"/bin/sh", "-c", "pwd"}, Dir: "/no/such/dir"}, wantOut: ts.dir + "\n"},
		{name: "env rule", cmd: RemoteCommand{Argv: []string{"/bin/sh", "-c",
			`echo "$OMPI_MCA_plm_x|$HYDRA_Y|$PMIX_Z|$PATH|$VHPC_RANK|$JOBVAR|${SECRETVAR-unset}|$HOME"`},
			Env: []string{"OMPI_MCA_plm_x=1", "HYDRA_Y=2", "PMIX_Z=3", "PATH=/custom:/bin", "VHPC_RANK=9", "SECRETVAR=no", "HOME=/elsewhere", "JOBVAR=y"}},
			wantOut: "1|2|3|/custom:/bin|1|x|unset|\n"},
	}
	lc := LauncherClient{Key: testKey}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb syncBuf
			tc.cmd.Stdout, tc.cmd.Stderr = &out, &errb
			code, err := lc.Exec(ts.addr, tc.cmd)
			if tc.wantCodeErr != 0 {
				var re *RemoteError
				if !errors.As(err, &re) || re.Code != tc.wantCodeErr {
					t.Fatalf("err %v, want a RemoteError with code %d", err, tc.wantCodeErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if code != tc.wantCode || out.String() != tc.wantOut || errb.String() != tc.wantErr {
				t.Errorf("code %d stdout %q stderr %q, want %d %q %q", code, out.String(), errb.String(), tc.wantCode, tc.wantOut, tc.wantErr)
			}
		})
	}
}

func TestLauncherRefusals(t *testing.T) {
	ts := startLauncher(t, nil)
	tests := []struct {
		name    string
		key     []byte
		op      string
		wantErr string
		wantLog string
	}{
		{"wrong secret", []byte("another secret of the wrong job."), OpPing, "authentication failed", "authentication failed"},
		{"wrong secret exec", []byte("x"), OpExec, "authentication failed", "authentication failed"},
		{"unknown op", testKey, "shutdown", `unknown op "shutdown"`, "unknown op"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A refusal is final: no retries although RetryFor allows them.
			lc := LauncherClient{Key: tc.key, RetryFor: time.Minute}
			// The server logs each refusal before it replies: one new
			// line means one attempt.
			before := strings.Count(ts.logs.String(), "launcher: refused")
			c, err := lc.connect(ts.addr, launchRequest{Op: tc.op, Argv: []string{"/bin/true"}})
			if err == nil {
				c.Close()
				t.Fatal("accepted")
			}
			if !errors.Is(err, errRefused) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err %v, want a refusal with %q", err, tc.wantErr)
			}
			if n := strings.Count(ts.logs.String(), "launcher: refused") - before; n != 1 {
				t.Errorf("%d refusals logged for one call: retried?", n)
			}
			if !strings.Contains(ts.logs.String(), tc.wantLog) {
				t.Errorf("server log %q lacks %q", ts.logs.String(), tc.wantLog)
			}
		})
	}
}

func TestForwardedEnv(t *testing.T) {
	tests := []struct {
		in, want []string
	}{
		{nil, nil},
		{[]string{"OMPI_MCA_a=1", "OPAL_PREFIX=/o", "ORTE_X=2", "PMIX_RANK=0", "PRTE_Y=3", "PMI_FD=4",
			"HYDRA_LAUNCHER=ssh", "HYDI_CONTROL_FD=5", "MPIR_CVAR=6", "MPICH_PORT=7", "MPIEXEC_TIMEOUT=8"},
			[]string{"OMPI_MCA_a=1", "OPAL_PREFIX=/o", "ORTE_X=2", "PMIX_RANK=0", "PRTE_Y=3", "PMI_FD=4",
				"HYDRA_LAUNCHER=ssh", "HYDI_CONTROL_FD=5", "MPIR_CVAR=6", "MPICH_PORT=7", "MPIEXEC_TIMEOUT=8"}},
		{[]string{"PATH=/a", "LD_LIBRARY_PATH=/l", "PATHX=1", "HOME=/h", "VHPC_RANK=3", "USER=x", "ompi_lower=1", "=x", "NOVALUE"},
			[]string{"PATH=/a", "LD_LIBRARY_PATH=/l"}},
	}
	for i, tc := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			if got := ForwardedEnv(tc.in); strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("ForwardedEnv(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseRshArgs(t *testing.T) {
	tests := []struct {
		args    string
		host    string
		cmd     string
		noStdin bool
		err     string
	}{
		{args: "node1 orted -mca x y", host: "node1", cmd: "orted -mca x y"},
		{args: "-x node1 hydra_pmi_proxy --control-port node0:1", host: "node1", cmd: "hydra_pmi_proxy --control-port node0:1"},
		{args: "-x -n -o BatchMode=yes -oStrictHostKeyChecking=no node2 true", host: "node2", cmd: "true", noStdin: true},
		{args: "-xnq -p 22 -l job user@node3 echo -n hi", host: "node3", cmd: "echo -n hi", noStdin: true},
		{args: "-T -- node1 -x", host: "node1", cmd: "-x"},
		{args: "-i/key -F /dev/null 10.77.0.2 ls", host: "10.77.0.2", cmd: "ls"},
		{args: "node1", err: "no command"},
		{args: "", err: "no host"},
		{args: "-x", err: "no host"},
		{args: "-o", err: "needs an argument"},
		{args: "-Z node1 ls", err: "unknown option -Z"},
		{args: "user@ ls", err: "empty host"},
	}
	for _, tc := range tests {
		t.Run(tc.args, func(t *testing.T) {
			got, err := parseRshArgs(strings.Fields(tc.args))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.host != tc.host || strings.Join(got.command, " ") != tc.cmd || got.noStdin != tc.noStdin {
				t.Errorf("got %+v, want host %q cmd %q noStdin %v", got, tc.host, tc.cmd, tc.noStdin)
			}
		})
	}
}

func TestLauncherRetriesUntilServerAppears(t *testing.T) {
	ln, err := Listen(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr()
	ln.Close() // nothing listens there now
	var wg sync.WaitGroup
	wg.Go(func() {
		time.Sleep(700 * time.Millisecond)
		ln, err := Listen(addr)
		if err != nil {
			t.Error(err)
			return
		}
		serveOn(t, ln, nil)
	})
	lc := LauncherClient{Key: testKey, RetryFor: 20 * time.Second}
	start := time.Now()
	if err := lc.Ping(addr.String()); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 500*time.Millisecond {
		t.Errorf("answered after %s, before the server was there", time.Since(start))
	}
	wg.Wait()

	lc.RetryFor = 300 * time.Millisecond
	ln2, _ := Listen(netip.MustParseAddrPort("127.0.0.1:0"))
	dead := ln2.Addr().String()
	ln2.Close()
	if err := lc.Ping(dead); err == nil || !strings.Contains(err.Error(), "not reachable within 300ms") {
		t.Errorf("err %v, want not reachable", err)
	}
}

func TestLauncherCloseStopsCommands(t *testing.T) {
	ts := startLauncher(t, nil)
	var out syncBuf
	res := make(chan int, 1)
	go func() {
		code, err := LauncherClient{Key: testKey}.Exec(ts.addr, RemoteCommand{Argv: []string{"/bin/sh", "-c", "echo started; exec sleep 60"}, Stdout: &out})
		if err != nil {
			t.Error(err)
		}
		res <- code
	}()
	waitFor(t, func() bool { return strings.Contains(out.String(), "started") })
	ts.srv.Close()
	select {
	case code := <-res:
		if code != 143 {
			t.Errorf("code %d, want 143 (SIGTERM)", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("command not stopped by Close")
	}
}

func TestRsh(t *testing.T) {
	ts := startLauncher(t, nil)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "launcher.json")
	ap := netip.MustParseAddrPort(ts.addr)
	if err := WriteLauncherConfig(cfg, LauncherConfig{Port: int(ap.Port()), Secret: fmt.Sprintf("%x", testKey)}, os.Getuid(), os.Getgid()); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(cfg); err != nil || st.Mode().Perm() != 0o400 {
		t.Fatalf("config %v %v, want mode 0400", st.Mode(), err)
	}
	hosts := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hosts, []byte("127.0.0.1\tlocalhost\n127.0.0.1\tnode1 # the peer\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args     []string
		stdin    string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{args: []string{"-x", "-o", "BatchMode=yes", "node1", "echo", "hi;", "exit", "5"}, wantCode: 5, wantOut: "hi\n"},
		{args: []string{"node1", "cat"}, stdin: "piped\n", wantOut: "piped\n"},
		{args: []string{"-n", "node1", "cat"}, stdin: "not read\n"},
		{args: []string{"node9", "true"}, wantCode: 255, wantErr: `resolve "node9"`},
		{args: []string{"-Q"}, wantCode: 255, wantErr: "usage"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errb syncBuf
			code := Rsh(tc.args, strings.NewReader(tc.stdin), &out, &errb, cfg, hosts)
			if code != tc.wantCode || out.String() != tc.wantOut || !strings.Contains(errb.String(), tc.wantErr) {
				t.Errorf("code %d out %q err %q, want %d %q %q", code, out.String(), errb.String(), tc.wantCode, tc.wantOut, tc.wantErr)
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
