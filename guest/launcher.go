package guest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The remote-start service ("launcher") replaces ssh between the guests of
// a networked job: README.md ("Remote starts") describes the protocol.

// LauncherVersion is the launcher protocol's version, sent in the hello.
const LauncherVersion = 1

// Launcher operations (launchRequest.Op).
const (
	// OpPing only authenticates: rank 0's "every guest ready" barrier.
	OpPing = "ping"
	// OpDone tells a follower that rank 0's command has ended.
	OpDone = "done"
	// OpExec runs a command and relays its stdio and exit status.
	OpExec = "exec"
)

// Frame types. Every frame is one type byte, a big-endian uint32 length
// and that many bytes of payload.
const (
	frameHeader = 'H' // JSON: hello, request, reply
	frameStdin  = 'i' // client -> server; an empty one is EOF
	frameStdout = 'o' // server -> client
	frameStderr = 'e' // server -> client
	frameExit   = 'x' // server -> client, JSON exitStatus; the last frame
	maxFrame    = 1 << 20
	nonceBytes  = 32
)

// handshakeTimeout bounds the hello/request/reply exchange on both ends.
const handshakeTimeout = 30 * time.Second

type launcherHello struct {
	Version int    `json:"version"`
	Nonce   string `json:"nonce"` // hex
}

type launchRequest struct {
	// MAC is hex(HMAC-SHA256(secret, nonce)), secret and nonce as bytes.
	MAC string `json:"mac"`
	Op  string `json:"op"`
	// Argv is the command; with Shell it is joined with spaces and run by
	// /bin/sh -c, as sshd runs an ssh command line.
	Argv  []string `json:"argv,omitempty"`
	Shell bool     `json:"shell,omitempty"`
	// Env is the client's environment; the server keeps only
	// ForwardedEnv's names of it.
	Env []string `json:"env,omitempty"`
	// Dir is the client's working directory; the server uses it when it
	// exists there, else the job's work directory.
	Dir string `json:"dir,omitempty"`
	// Stdin says whether the client relays stdin frames; without it the
	// command's stdin is /dev/null.
	Stdin bool `json:"stdin,omitempty"`
}

type launchReply struct {
	Error string `json:"error,omitempty"`
	// Code is the exit code the client should end with when Error is set.
	Code int `json:"code,omitempty"`
}

type exitStatus struct {
	Code   int    `json:"code"`
	Signal string `json:"signal,omitempty"`
}

// errRefused is wrapped by client errors the server answered with a
// refusal (bad secret, unknown op): retrying does not help.
var errRefused = errors.New("refused by the launcher")

func writeFrame(w io.Writer, typ byte, p []byte) error {
	if len(p) > maxFrame {
		return fmt.Errorf("launcher frame of %d bytes exceeds %d", len(p), maxFrame)
	}
	b := make([]byte, 5+len(p))
	b[0] = typ
	binary.BigEndian.PutUint32(b[1:], uint32(len(p)))
	copy(b[5:], p)
	_, err := w.Write(b)
	return err
}

func readFrame(r io.Reader) (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("launcher frame of %d bytes exceeds %d", n, maxFrame)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	return h[0], p, nil
}

func writeJSONFrame(w io.Writer, typ byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode launcher frame: %w", err)
	}
	return writeFrame(w, typ, b)
}

func readHeader(r io.Reader, v any) error {
	typ, p, err := readFrame(r)
	if err != nil {
		return err
	}
	if typ != frameHeader {
		return fmt.Errorf("launcher: got frame %q, want a header", typ)
	}
	if err := json.Unmarshal(p, v); err != nil {
		return fmt.Errorf("decode launcher header: %w", err)
	}
	return nil
}

// SecretKey decodes a job secret (guestproto.Network.Secret, hex) into
// the HMAC key of the launcher protocol.
func SecretKey(secret string) ([]byte, error) {
	k, err := hex.DecodeString(secret)
	if err != nil || len(k) == 0 {
		return nil, errors.New("launcher secret: want hex digits")
	}
	return k, nil
}

func launcherMAC(key, nonce []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(nonce)
	return hex.EncodeToString(m.Sum(nil))
}

// ForwardedEnv returns the entries of env ("NAME=value") that a remote
// start carries from the client to the remote command: the MPI
// launchers' own variables (names starting OMPI_, OPAL_, ORTE_, PMIX_,
// PRTE_, PMI_, HYDRA_, HYDI_, MPIR_, MPICH_, MPIEXEC_) and PATH and
// LD_LIBRARY_PATH. Everything else (VHPC_*, HOME, the job's own
// variables) comes from the remote guest's own job environment. The
// client (Rsh) and the server both apply it.
func ForwardedEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		name, _, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			continue
		}
		keep := name == "PATH" || name == "LD_LIBRARY_PATH"
		for _, p := range [...]string{"OMPI_", "OPAL_", "ORTE_", "PMIX_", "PRTE_", "PMI_", "HYDRA_", "HYDI_", "MPIR_", "MPICH_", "MPIEXEC_"} {
			keep = keep || strings.HasPrefix(name, p)
		}
		if keep {
			out = append(out, kv)
		}
	}
	return out
}

// mergeEnv returns base with the entries of over replacing or adding to
// base's, keeping base's order and appending new names in over's order.
func mergeEnv(base, over []string) []string {
	if len(over) == 0 {
		return base
	}
	idx := map[string]int{}
	out := make([]string, 0, len(base)+len(over))
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		idx[name] = len(out)
		out = append(out, kv)
	}
	for _, kv := range over {
		name, _, _ := strings.Cut(kv, "=")
		if i, ok := idx[name]; ok {
			out[i] = kv
			continue
		}
		idx[name] = len(out)
		out = append(out, kv)
	}
	return out
}

// LauncherServer is the remote-start service of one guest. hpc-guest
// starts one per guest of a networked job (startNetworkJob); tests run
// it on 127.0.0.1. Only clients that prove the job's secret are served.
type LauncherServer struct {
	key       []byte
	log       *slog.Logger
	uid, gid  int
	env       []string
	dir       string
	onDone    func()
	killGrace time.Duration

	mu     sync.Mutex
	ln     *Listener
	procs  map[*exec.Cmd]struct{}
	conns  map[*tcpConn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// LauncherServerConfig configures a LauncherServer.
type LauncherServerConfig struct {
	// Key is the HMAC key (SecretKey of the job secret).
	Key []byte
	// Log receives one line per connection refused and per command run.
	Log *slog.Logger
	// UID and GID are the job's identity; commands run as them.
	UID, GID int
	// Env is the remote commands' base environment (the job's, with the
	// network/MPI variables); ForwardedEnv of the client's is merged over it.
	Env []string
	// Dir is the working directory used when the client's does not exist.
	Dir string
	// OnDone is called (once per "done" request) when rank 0 says done.
	OnDone func()
	// KillGrace is the time between SIGTERM and SIGKILL when a command's
	// client goes away or the server closes; default 5s.
	KillGrace time.Duration
}

// NewLauncherServer returns a server; Serve starts it.
func NewLauncherServer(c LauncherServerConfig) (*LauncherServer, error) {
	if len(c.Key) == 0 {
		return nil, errors.New("launcher server: no key")
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.KillGrace <= 0 {
		c.KillGrace = 5 * time.Second
	}
	if c.OnDone == nil {
		c.OnDone = func() {}
	}
	return &LauncherServer{key: c.Key, log: c.Log, uid: c.UID, gid: c.GID, env: c.Env, dir: c.Dir,
		onDone: c.OnDone, killGrace: c.KillGrace, procs: map[*exec.Cmd]struct{}{}, conns: map[*tcpConn]struct{}{}}, nil
}

// Serve accepts connections on ln until Close; it returns nil after Close.
func (s *LauncherServer) Serve(ln *Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.ln = ln
	s.mu.Unlock()
	for {
		c, err := ln.Accept()
		s.mu.Lock()
		closed := s.closed
		if err == nil && !closed {
			s.conns[c] = struct{}{}
			s.wg.Add(1)
		}
		s.mu.Unlock()
		switch {
		case closed:
			if c != nil {
				c.Close()
			}
			return nil
		case err != nil:
			// ECONNABORTED, EMFILE: transient; a closed listener is
			// caught by closed above.
			s.log.Warn("launcher: accept", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		go func() {
			defer s.wg.Done()
			s.handle(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// Close stops accepting, sends SIGTERM (SIGKILL after the grace) to the
// process groups of the commands still running, and waits for every
// connection's handler to end.
func (s *LauncherServer) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if s.ln != nil {
		s.ln.Close()
	}
	for cmd := range s.procs {
		go s.kill(cmd, nil)
	}
	for c := range s.conns {
		// Handlers blocked in the handshake end now; exec handlers end
		// when their command does.
		_ = c.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// kill sends SIGTERM to cmd's process group and SIGKILL after the grace
// unless exited is closed first.
func (s *LauncherServer) kill(cmd *exec.Cmd, exited <-chan struct{}) {
	pid := cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(s.killGrace):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}

func (s *LauncherServer) handle(c *tcpConn) {
	defer c.Close()
	remote := c.RemoteAddr()
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	nonce := make([]byte, nonceBytes)
	if _, err := rand.Read(nonce); err != nil {
		s.log.Error("launcher: random nonce", "err", err)
		return
	}
	if err := writeJSONFrame(c, frameHeader, launcherHello{Version: LauncherVersion, Nonce: hex.EncodeToString(nonce)}); err != nil {
		return
	}
	var req launchRequest
	if err := readHeader(c, &req); err != nil {
		s.log.Warn("launcher: bad request", "remote", remote, "err", err)
		return
	}
	if !hmac.Equal([]byte(req.MAC), []byte(launcherMAC(s.key, nonce))) {
		s.log.Warn("launcher: refused: authentication failed (wrong secret)", "remote", remote, "op", req.Op)
		_ = writeJSONFrame(c, frameHeader, launchReply{Error: "authentication failed", Code: 255})
		return
	}
	switch req.Op {
	case OpPing:
		_ = writeJSONFrame(c, frameHeader, launchReply{})
	case OpDone:
		s.log.Info("launcher: rank 0 says done", "remote", remote)
		_ = writeJSONFrame(c, frameHeader, launchReply{})
		s.onDone()
	case OpExec:
		_ = c.SetDeadline(time.Time{})
		s.exec(c, remote, req)
	default:
		s.log.Warn("launcher: refused: unknown op", "remote", remote, "op", req.Op)
		_ = writeJSONFrame(c, frameHeader, launchReply{Error: fmt.Sprintf("unknown op %q", req.Op), Code: 255})
	}
}

// frameWriter writes each Write as one frame of typ, under a lock shared
// by all writers of one connection.
type frameWriter struct {
	mu  *sync.Mutex
	w   io.Writer
	typ byte
}

func (f frameWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for off := 0; off < len(p); off += maxFrame {
		end := min(off+maxFrame, len(p))
		if err := writeFrame(f.w, f.typ, p[off:end]); err != nil {
			return off, err
		}
	}
	return len(p), nil
}

func (s *LauncherServer) exec(c *tcpConn, remote string, req launchRequest) {
	argv := req.Argv
	if req.Shell {
		argv = []string{"/bin/sh", "-c", strings.Join(req.Argv, " ")}
	}
	if len(argv) == 0 {
		_ = writeJSONFrame(c, frameHeader, launchReply{Error: "no command", Code: 255})
		return
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = mergeEnv(s.env, ForwardedEnv(req.Env))
	cmd.Dir = s.dir
	if st, err := os.Stat(req.Dir); req.Dir != "" && err == nil && st.IsDir() {
		cmd.Dir = req.Dir
	}
	var wmu sync.Mutex
	cmd.Stdout = frameWriter{mu: &wmu, w: c, typ: frameStdout}
	cmd.Stderr = frameWriter{mu: &wmu, w: c, typ: frameStderr}
	cmd.WaitDelay = 5 * time.Second // a background child keeping stdout open
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if s.uid != os.Getuid() || s.gid != os.Getgid() {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(s.uid), Gid: uint32(s.gid), Groups: []uint32{}}
	}
	var stdin io.WriteCloser
	if req.Stdin {
		p, err := cmd.StdinPipe()
		if err != nil {
			_ = writeJSONFrame(c, frameHeader, launchReply{Error: err.Error(), Code: 255})
			return
		}
		stdin = p
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = writeJSONFrame(c, frameHeader, launchReply{Error: "the guest is shutting down", Code: 255})
		return
	}
	// The reply must be the first frame: output waits for wmu.
	wmu.Lock()
	if err := cmd.Start(); err != nil {
		wmu.Unlock()
		s.mu.Unlock()
		code := 126
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			code = 127
		}
		s.log.Warn("launcher: cannot start", "remote", remote, "argv", argv, "err", err)
		_ = writeJSONFrame(c, frameHeader, launchReply{Error: err.Error(), Code: code})
		return
	}
	s.procs[cmd] = struct{}{}
	s.mu.Unlock()
	_ = writeJSONFrame(c, frameHeader, launchReply{})
	wmu.Unlock()
	s.log.Info("launcher: started", "remote", remote, "pid", cmd.Process.Pid, "argv", argv)

	exited, readerDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(readerDone)
		// Stdin frames until EOF; a connection that breaks before the
		// command ended means the client is gone: end the command.
		for {
			typ, p, err := readFrame(c)
			if err != nil {
				if stdin != nil {
					stdin.Close()
				}
				select {
				case <-exited:
				default:
					s.log.Info("launcher: client gone, stopping the command", "remote", remote, "pid", cmd.Process.Pid)
					s.kill(cmd, exited)
				}
				return
			}
			if typ != frameStdin || stdin == nil {
				continue
			}
			if len(p) == 0 {
				stdin.Close()
				continue
			}
			_, _ = stdin.Write(p)
		}
	}()
	err := cmd.Wait()
	close(exited)
	s.mu.Lock()
	delete(s.procs, cmd)
	s.mu.Unlock()
	st := exitStatus{}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			st.Code, st.Signal = 128+int(ws.Signal()), ws.Signal().String()
		} else {
			st.Code = ee.ExitCode()
		}
	case errors.Is(err, exec.ErrWaitDelay):
	default:
		st.Code = 255
	}
	s.log.Info("launcher: ended", "remote", remote, "pid", cmd.Process.Pid, "exit_code", st.Code, "signal", st.Signal)
	wmu.Lock()
	_ = writeJSONFrame(c, frameExit, st)
	wmu.Unlock()
	// Half-close and wait for the client to close its end: closing with
	// unread stdin frames would reset the connection and could lose the
	// last frames on the client's side.
	_ = c.CloseWrite()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	<-readerDone
}

// LauncherClient dials the launchers of a job's guests.
type LauncherClient struct {
	// Key is the HMAC key (SecretKey of the job secret).
	Key []byte
	// RetryFor is how long a call keeps trying to reach a launcher that
	// does not answer yet (a peer still booting); 0 means one try.
	RetryFor time.Duration
	// DialTimeout bounds one connection attempt; default 5s.
	DialTimeout time.Duration
}

// connect dials addr until it answers with a hello (retrying with backoff
// for up to RetryFor), authenticates and sends req, and returns the
// connection after a successful reply.
func (lc LauncherClient) connect(addr string, req launchRequest) (*tcpConn, error) {
	dt := lc.DialTimeout
	if dt <= 0 {
		dt = 5 * time.Second
	}
	deadline := time.Now().Add(lc.RetryFor)
	backoff := 100 * time.Millisecond
	for {
		c, err := lc.handshake(addr, dt, req)
		if err == nil || errors.Is(err, errRefused) {
			return c, err
		}
		if time.Now().Add(backoff).After(deadline) {
			if lc.RetryFor > 0 {
				return nil, fmt.Errorf("launcher at %s not reachable within %s: %w", addr, lc.RetryFor, err)
			}
			return nil, fmt.Errorf("launcher at %s: %w", addr, err)
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (lc LauncherClient) handshake(addr string, dt time.Duration, req launchRequest) (*tcpConn, error) {
	ap, err := parseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errRefused, err)
	}
	c, err := dialTCP(ap, dt)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	var h launcherHello
	if err := readHeader(c, &h); err != nil {
		c.Close()
		return nil, fmt.Errorf("read hello: %w", err)
	}
	nonce, err := hex.DecodeString(h.Nonce)
	if err != nil || len(nonce) < 16 {
		c.Close()
		return nil, fmt.Errorf("%w: bad nonce in hello", errRefused)
	}
	req.MAC = launcherMAC(lc.Key, nonce)
	if err := writeJSONFrame(c, frameHeader, req); err != nil {
		c.Close()
		return nil, fmt.Errorf("send request: %w", err)
	}
	var rep launchReply
	if err := readHeader(c, &rep); err != nil {
		c.Close()
		return nil, fmt.Errorf("read reply: %w", err)
	}
	if rep.Error != "" {
		c.Close()
		return nil, &RemoteError{Addr: addr, Msg: rep.Error, Code: rep.Code}
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// RemoteError is a launcher's refusal (authentication, unknown op) or
// failure to start a command; Code is the exit code a client ends with.
type RemoteError struct {
	Addr string
	Msg  string
	Code int
}

func (e *RemoteError) Error() string { return fmt.Sprintf("launcher at %s: %s", e.Addr, e.Msg) }

// Unwrap makes a RemoteError a refusal: retrying does not help.
func (e *RemoteError) Unwrap() error { return errRefused }

// Ping checks that the launcher at addr answers and accepts the secret.
func (lc LauncherClient) Ping(addr string) error {
	c, err := lc.connect(addr, launchRequest{Op: OpPing})
	if err != nil {
		return err
	}
	return c.Close()
}

// Done tells the follower at addr that rank 0's command has ended.
func (lc LauncherClient) Done(addr string) error {
	c, err := lc.connect(addr, launchRequest{Op: OpDone})
	if err != nil {
		return err
	}
	return c.Close()
}

// RemoteCommand is a command for Exec.
type RemoteCommand struct {
	Argv []string
	// Shell runs Argv joined with spaces by /bin/sh -c (ssh's semantics).
	Shell bool
	// Env is filtered with ForwardedEnv by the server.
	Env []string
	Dir string
	// Stdin is relayed when not nil; else the command reads /dev/null.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Exec runs rc on the guest at addr and relays its stdio; it returns the
// command's exit code (128+n for signal n). An error means the command
// did not run to its end (unreachable, refused, connection lost); a
// RemoteError carries the code to exit with.
func (lc LauncherClient) Exec(addr string, rc RemoteCommand) (int, error) {
	c, err := lc.connect(addr, launchRequest{Op: OpExec, Argv: rc.Argv, Shell: rc.Shell, Env: rc.Env, Dir: rc.Dir, Stdin: rc.Stdin != nil})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if rc.Stdin != nil {
		go func() {
			w := frameWriter{mu: &sync.Mutex{}, w: c, typ: frameStdin}
			buf := make([]byte, 32*1024)
			for {
				n, err := rc.Stdin.Read(buf)
				if n > 0 {
					if _, werr := w.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					_ = writeFrame(c, frameStdin, nil)
					return
				}
			}
		}()
	}
	for {
		typ, p, err := readFrame(c)
		if err != nil {
			return 0, fmt.Errorf("launcher at %s: connection lost before the command ended: %w", addr, err)
		}
		switch typ {
		case frameStdout:
			if rc.Stdout != nil {
				_, _ = rc.Stdout.Write(p)
			}
		case frameStderr:
			if rc.Stderr != nil {
				_, _ = rc.Stderr.Write(p)
			}
		case frameExit:
			var st exitStatus
			if err := json.Unmarshal(p, &st); err != nil {
				return 0, fmt.Errorf("launcher at %s: decode exit status: %w", addr, err)
			}
			return st.Code, nil
		}
	}
}
