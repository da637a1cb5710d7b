package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"time"

	"google.golang.org/grpc"

	"vhpc/api"
	"vhpc/client"
	"vhpc/jobspec"
	"vhpc/scheduler/model"
)

type submitFlags struct {
	dryRun, parsable, wait, follow bool
}

// maxJobFile bounds what hpcsub reads; jobspec refuses larger specs anyway.
const maxJobFile = 1 << 20

func readJobFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, usage("hpcsub: %v", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxJobFile+1))
	if err != nil {
		return nil, usage("hpcsub: read %s: %v", path, err)
	}
	if len(data) > maxJobFile {
		return nil, usage("%s: file is larger than %d bytes; a job spec must be smaller", path, maxJobFile)
	}
	return data, nil
}

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return fmt.Sprint(os.Getuid())
}

// submit validates locally (nothing is sent on error), then submits with a
// fresh client token that every retry reuses.
func (a *app) submit(ctx context.Context, path string, f submitFlags) error {
	data, err := readJobFile(path)
	if err != nil {
		return err
	}
	spec, err := jobspec.Load(filepath.Base(path), data)
	if err != nil {
		return exitError{code: 2, err: err}
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("job directory: %w", err)
	}
	req := &api.SubmitRequest{
		ClientToken: newToken(), Spec: data, Filename: filepath.Base(path),
		User: bodyUser(), SubmitDir: dir, DryRun: f.dryRun,
	}
	if f.dryRun {
		files, err := collectInputs(spec, dir) // refused here too, before anything is sent
		if err != nil {
			return err
		}
		files.Close()
		return a.dryRun(ctx, spec, req)
	}
	c, err := a.client()
	if err != nil {
		return usage("hpcsub: %v", err)
	}
	defer c.Close()
	if len(spec.StageIn) > 0 {
		if req.Inputs, err = a.uploadInputs(ctx, c, spec, dir); err != nil { // data.go
			return err
		}
	}
	var resp *api.SubmitResponse
	err = c.Do(ctx, func(ctx context.Context, conn *grpc.ClientConn) error {
		var err error
		resp, err = client.Jobs(conn).Submit(ctx, req)
		return err
	})
	if err != nil {
		return err
	}
	switch {
	case f.parsable:
		fmt.Fprintln(a.out, resp.GetJobId())
	case a.asJSON:
		printJSON(a.out, resp)
	default:
		fmt.Fprintf(a.out, "Submitted job %d\n", resp.GetJobId())
	}
	if !f.wait && !f.follow {
		return nil
	}
	final, err := a.waitJob(ctx, c, resp.GetJobId(), f.follow)
	if err == nil && len(spec.StageOut) > 0 && final != nil {
		// On success the results land next to the job file.
		if ferr := a.fetchOutputs(ctx, c, final, dir); ferr != nil {
			return fmt.Errorf("job %d completed, but fetching its outputs failed: %w (retry with hpcsub fetch %d)", final.GetId(), ferr, final.GetId())
		}
	}
	return err
}

// dryRun prints the canonical spec and, when a master answers, where the
// job would start.
func (a *app) dryRun(ctx context.Context, spec *jobspec.Spec, req *api.SubmitRequest) error {
	canonical, err := spec.Canonical()
	if err != nil {
		return err
	}
	estimate := ""
	if c, err := a.client(); err == nil {
		defer c.Close()
		c.Attempts = 1
		qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		err = c.Do(qctx, func(ctx context.Context, conn *grpc.ClientConn) error {
			resp, err := client.Jobs(conn).Submit(ctx, req)
			if err == nil {
				estimate = resp.GetEstimate()
			}
			return err
		})
		if err != nil {
			estimate = fmt.Sprintf("unknown (no master answered at %s: %v)", a.addr, err)
		}
	}
	if a.asJSON {
		fmt.Fprintf(a.out, "{\"spec\": %s, \"estimate\": %q}\n", mustJSON(spec), estimate)
		return nil
	}
	fmt.Fprint(a.out, string(canonical))
	fmt.Fprintf(a.out, "# estimate: %s\n", estimate)
	return nil
}

// waitJob follows a job until it ends and returns it with its exit status:
// the job's exit code when it ran, 1 when it was cancelled or failed to
// start.
func (a *app) waitJob(ctx context.Context, c *client.Client, id uint64, follow bool) (*api.Job, error) {
	var final *api.Job
	last := ""
	logDone := make(chan struct{})
	logCtx, stopLogs := context.WithCancel(ctx)
	if follow {
		go func() { defer close(logDone); _ = a.streamLogs(logCtx, c, id, true) }()
	} else {
		close(logDone)
	}
	err := c.Stream(ctx, func(ctx context.Context, conn *grpc.ClientConn) error {
		stream, err := client.Jobs(conn).Watch(ctx, &api.WatchJobRequest{Id: id})
		if err != nil {
			return err
		}
		for {
			ev, err := stream.Recv()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			final = ev.GetJob()
			if follow && ev.GetMessage() != last && !model.JobState(final.GetState()).Terminal() {
				fmt.Fprintf(a.errOut, "job %d: %s\n", id, ev.GetMessage())
				last = ev.GetMessage()
			}
		}
	})
	if follow {
		// Give the log stream a moment to deliver the tail, then stop it.
		select {
		case <-logDone:
		case <-time.After(3 * time.Second):
		}
	}
	stopLogs()
	<-logDone
	if err != nil {
		return nil, err
	}
	if final == nil {
		return nil, fmt.Errorf("job %d: watch ended without news", id)
	}
	fmt.Fprintf(a.errOut, "job %d: %s\n", id, summary(final))
	st := model.JobState(final.GetState())
	switch {
	case st == model.JobCompleted:
		return final, nil
	case final.GetExitCode() > 0:
		return final, exitError{code: int(final.GetExitCode())}
	default:
		return final, exitError{code: 1}
	}
}

// summary is the last line --wait and --follow print.
func summary(j *api.Job) string {
	s := fmt.Sprintf("%s, exit %d", j.GetState(), j.GetExitCode())
	if ar := j.GetArray(); ar != nil {
		s += fmt.Sprintf(", %d tasks: %d done, %d failed", ar.GetTasks(), ar.GetDone(), ar.GetFailed())
		if j.GetStartTime() != nil && j.GetEndTime() != nil {
			s += fmt.Sprintf(", %.1f s", j.GetEndTime().AsTime().Sub(j.GetStartTime().AsTime()).Seconds())
		}
		return s
	}
	// Wall time from placement to the end of the last node, and the
	// slowest guest boot, of the final attempt.
	var wall, boot float64
	for _, al := range j.GetAllocations() {
		if al.GetAttempt() != j.GetAttempt() || al.GetCreated() == nil || al.GetEnded() == nil {
			continue
		}
		wall = max(wall, al.GetEnded().AsTime().Sub(al.GetCreated().AsTime()).Seconds())
		boot = max(boot, al.GetBootSeconds())
	}
	if wall > 0 {
		s += fmt.Sprintf(", %.1f s", wall)
	}
	if boot > 0 {
		s += fmt.Sprintf(" (boot %.1f s)", boot)
	}
	if j.GetReason() != "" && model.JobState(j.GetState()) != model.JobCompleted {
		s += ": " + j.GetReason()
	}
	return s
}
