package guest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"vhpc/guestproto"
)

// JobOptions are the guest-local paths and knobs RunJob needs; the PID 1
// code fills them, unit tests point them at temporary directories.
type JobOptions struct {
	// WorkDir is the job's working directory.
	WorkDir string
	// ScriptDir is a private directory where a Script is written.
	ScriptDir string
	// Out receives the job's stdout and stderr.
	Out io.Writer
	// Stop is closed when the host asks the guest to stop; the job's
	// process group then gets SIGTERM and, after KillGrace, SIGKILL.
	Stop <-chan struct{}
	// KillGrace defaults to 5s.
	KillGrace time.Duration
	// Env ("NAME=value") is added to the job's environment, replacing
	// variables of the same name (a networked job's NetworkEnv); nil for
	// a job without a network.
	Env []string
}

// RunJob runs the request's command (or script) and returns its exit status.
// It never returns an error: failures to start are reported in Exit.Error
// with exit code 127 (not found) or 126 (cannot execute), as a shell would.
func RunJob(ctx context.Context, req guestproto.Request, o JobOptions) guestproto.Exit {
	if o.KillGrace <= 0 {
		o.KillGrace = 5 * time.Second
	}
	argv := req.Argv
	if len(argv) == 0 {
		p := filepath.Join(o.ScriptDir, "job.sh")
		if err := os.WriteFile(p, []byte(req.Script), 0o755); err != nil {
			return guestproto.Exit{ExitCode: 126, Error: fmt.Sprintf("write job script: %v", err)}
		}
		argv = []string{"/bin/sh", p}
	}
	env := mergeEnv(req.Environ(), o.Env)
	// A bare name is looked up in the job's PATH, not hpc-guest's (PID 1
	// starts with none), so `command: [python3, ...]` finds /usr/bin/python3.
	path := argv[0]
	if p, err := lookPathEnv(path, env); err == nil {
		path = p
	}
	cmd := exec.Command(path, argv[1:]...)
	cmd.Args[0] = argv[0]
	cmd.Env = env
	cmd.Dir = o.WorkDir
	cmd.Stdout = o.Out
	cmd.Stderr = o.Out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if req.UID != os.Getuid() || req.GID != os.Getgid() {
		cmd.SysProcAttr.Credential = &syscall.Credential{
			Uid: uint32(req.UID), Gid: uint32(req.GID), Groups: []uint32{},
		}
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		code := 126
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			code = 127
		}
		fmt.Fprintf(o.Out, "hpc-guest: cannot start %q: %v\n", argv[0], err)
		return guestproto.Exit{ExitCode: code, Error: fmt.Sprintf("start %q: %v", argv[0], err)}
	}
	done := make(chan struct{})
	var stopped atomic.Bool
	go func() {
		select {
		case <-done:
			return
		case <-o.Stop:
		case <-ctx.Done():
		}
		stopped.Store(true)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(o.KillGrace):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	}()
	err := cmd.Wait()
	run := time.Since(start).Seconds()
	close(done)
	e := guestproto.Exit{RunSeconds: run}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		ws, ok := ee.Sys().(syscall.WaitStatus)
		if ok && ws.Signaled() {
			e.ExitCode = 128 + int(ws.Signal())
			e.Signal = ws.Signal().String()
		} else {
			e.ExitCode = ee.ExitCode()
		}
	default:
		e.ExitCode = 1
		e.Error = fmt.Sprintf("wait: %v", err)
	}
	// Stopped only when the job died of our signal, not of its own.
	if e.Signal != "" && stopped.Load() {
		e.Stopped = true
	}
	return e
}
