package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"vhpc/guestproto"
	"vhpc/jobdata"
	"vhpc/nodeagent/libvirt"
	"vhpc/nodeagent/netplane"
	"vhpc/nodeagent/staging"
	"vhpc/nodeagent/vm"
	"vhpc/scheduler/model"
	"vhpc/vmimages"
)

// Progress phases reported through the progress callback.
const (
	PhaseStaging = "staging" // job directory prepared, stage-in running
	PhaseBooting = "booting" // domain defined and started
	PhaseRunning = "running" // hpc-guest started the job (started.json)
	PhaseStopped = "stopped" // guest gone; stage-out and cleanup follow
)

// exitLinger bounds how long a guest may take to power off after it wrote
// exit.json before it is destroyed.
const exitLinger = 30 * time.Second

// cleanupTimeout bounds the libvirt calls of the final cleanup, which runs
// on a context detached from the (possibly cancelled) caller's.
const cleanupTimeout = 30 * time.Second

// runState is the host's own record in the job directory, so that Adopt
// after an agent restart knows the walltime deadline.
type runState struct {
	AllocID  string    `json:"allocId"`
	Domain   string    `json:"domain"`
	Started  time.Time `json:"started"`
	Deadline time.Time `json:"deadline,omitzero"`
}

const runStateFile = "run.json"

// Run runs t in a new guest and returns how it ended: it prepares the job
// directory, stages in, defines and starts the domain ("booting"), waits
// for the job ("running") and the guest's power-off, enforces the walltime
// (ACPI shutdown, destroy after ShutdownGrace: timeout), stages out (also
// after a failure), destroys and undefines the domain, and removes the
// scratch file and job directory. Cancelling ctx cancels the job: the
// domain is destroyed at once and the State is cancelled.
//
// Whatever happens, Run leaves no domain, no job directory and no job
// network (Task.Network) behind (the logs under LogPath/ConsolePath stay
// until RemoveLogs). An error is returned for failures of the node rather
// than of the job (bad task, libvirt, staging, network); Result.State is
// then failed with the same Reason.
// progress may be nil.
func (r *Runner) Run(ctx context.Context, t Task, progress func(phase string)) (res Result, err error) {
	if progress == nil {
		progress = func(string) {}
	}
	st, err := r.start(ctx, t, progress)
	if st.prepared {
		// From here on, the domain and the job directory are ours to remove.
		defer func() {
			cerr := r.cleanup(ctx, st.name, st.dir)
			if st.started {
				// The guest is gone: its GPUs back to a known state.
				cerr = errors.Join(cerr, r.returnGPUs(ctx, t, st.name, st.log))
			}
			if st.net {
				// After the domain: libvirt has removed its tap.
				cerr = errors.Join(cerr, r.removeNet(t))
			}
			if cerr != nil {
				st.log.Error("cleanup failed", "err", cerr)
				if err == nil {
					err = cerr
					res.State, res.Reason = model.AllocFailed, joinReason(res.Reason, cerr.Error())
				}
			}
		}()
	}
	if err != nil {
		return Result{State: model.AllocFailed, ExitCode: -1, Reason: err.Error()}, err
	}
	return r.finish(ctx, t, st.name, st.dir, st.deadline, progress, st.log)
}

// started is what start leaves for finish (and for cleanup).
type started struct {
	prepared bool // the job directory exists and is ours
	started  bool // the domain was started (its GPUs need a reset)
	net      bool // the job network may exist and is ours to remove
	name     string
	dir      staging.Dir
	deadline time.Time
	log      *slog.Logger
}

// start prepares the job directory, stages in and starts the domain.
func (r *Runner) start(ctx context.Context, t Task, progress func(string)) (started, error) {
	if progress == nil {
		progress = func(string) {}
	}
	st := started{name: vm.Name(r.ns, t.Job, t.Task, t.Rank), log: r.log}
	var tmpl vm.Template
	var img vmimages.DebianImage
	var err error
	if t.ImageDir != "" {
		tmpl, img, err = r.debianTemplate(t)
		t.Env = imageEnv(img, t.Env)
	} else {
		tmpl, err = r.template(t.Image)
	}
	if err != nil {
		return st, err
	}
	if err := checkTask(t); err != nil {
		return st, err
	}
	gp, err := r.planGPUs(t)
	if err != nil {
		return st, err
	}
	if st.dir, err = staging.Layout(r.cfg.StateDir, t.AllocID); err != nil {
		return st, err
	}
	st.log = r.log.With("alloc_id", t.AllocID, "domain", st.name)
	if ds, err := r.doms.State(ctx, st.name); err != nil {
		return st, err
	} else if ds != libvirt.StateAbsent {
		return st, fmt.Errorf("domain %s already exists (state %s): adopt it instead of running the task twice", st.name, ds)
	}
	if err := staging.Prepare(ctx, st.dir, t.Placement.Scratch); err != nil {
		return st, err
	}
	st.prepared = true
	own, err := r.takeOwner(ctx, st.name)
	if err != nil {
		return st, err
	}
	progress(PhaseStaging)
	if err := r.stageIn(ctx, t, st.dir); err != nil {
		return st, err
	}
	if err := r.prepareShare(t, st.dir, own); err != nil {
		return st, err
	}
	if tmpl, err = privateBoot(tmpl, st.dir, own); err != nil {
		return st, err
	}
	spec := vm.Spec{
		AllocID: t.AllocID, Attempt: t.Attempt, Namespace: r.ns, Job: t.Job, Task: t.Task, Rank: t.Rank,
		Cores: t.Placement.Cores, HousekeepingCores: r.cfg.HousekeepingCores,
		MemoryMiB: memoryMiB(t), ShareDir: st.dir.Share, ConsoleLog: r.ConsolePath(t.AllocID),
		DACLabel: own.label(),
	}
	if t.Placement.Scratch > 0 {
		spec.ScratchPath = st.dir.Scratch
	}
	for _, d := range t.Datasets {
		spec.Datasets = append(spec.Datasets, d.Dir)
	}
	if tmpl.BaseDisk != "" {
		if err := r.createOverlay(ctx, tmpl.BaseDisk, st.dir, own); err != nil {
			return st, err
		}
		spec.OverlayPath = st.dir.Overlay
	}
	if gp != nil {
		gp.apply(&spec)
	}
	if t.Network != nil {
		st.net = true // from the first device on, whatever Ensure left
		nic, err := r.ensureNet(t)
		if err != nil {
			return st, err
		}
		spec.NICs = []vm.NIC{nic}
	}
	def, err := vm.Build(tmpl, spec)
	if err != nil {
		return st, err
	}
	rs := runState{AllocID: t.AllocID, Domain: st.name, Started: time.Now()}
	if t.Walltime > 0 {
		rs.Deadline = rs.Started.Add(t.Walltime)
	}
	st.deadline = rs.Deadline
	if err := writeRunState(st.dir, rs); err != nil {
		return st, err
	}
	if err := r.doms.DefineAndStart(ctx, def); err != nil {
		return st, err
	}
	st.started = true
	if t.Network != nil {
		// The guest's tap exists now: close the host's stack on it too.
		if err := r.nets.Seal(netKey(t)); err != nil {
			return st, err
		}
	}
	if gp != nil {
		st.log.Info("guest started", "hypervisor", r.hv, "cores", vm.CPUSet(t.Placement.Cores), "memory_mib", spec.MemoryMiB,
			"gpus", strings.Join(t.Placement.GPUs, ","), "numa_nodes", vm.CPUSet(t.Placement.NUMA))
	} else {
		st.log.Info("guest started", "hypervisor", r.hv, "cores", vm.CPUSet(t.Placement.Cores), "memory_mib", spec.MemoryMiB)
	}
	progress(PhaseBooting)
	return st, nil
}

// Adopt waits for the guest of t that an earlier agent process started
// (found by name), exactly as Run would have, without starting it again:
// after an agent restart. If the guest already ended, its exit.json is
// collected. Stage-out and cleanup follow as in Run. If neither a domain
// nor a job directory exists, the task is reported failed (lost).
func (r *Runner) Adopt(ctx context.Context, t Task, progress func(string)) (res Result, err error) {
	if progress == nil {
		progress = func(string) {}
	}
	dir, err := staging.Layout(r.cfg.StateDir, t.AllocID)
	if err != nil {
		return Result{State: model.AllocFailed, ExitCode: -1, Reason: err.Error()}, err
	}
	name := vm.Name(r.ns, t.Job, t.Task, t.Rank)
	log := r.log.With("alloc_id", t.AllocID, "domain", name)
	st, err := r.doms.State(ctx, name)
	if err != nil {
		return Result{State: model.AllocFailed, ExitCode: -1, Reason: err.Error()}, err
	}
	if st != libvirt.StateAbsent {
		d, err := r.doms.XML(ctx, name)
		if err != nil {
			return Result{State: model.AllocFailed, ExitCode: -1, Reason: err.Error()}, err
		}
		if m, err := vm.ParseMetadata(d); err != nil || m.ID != t.AllocID {
			err = fmt.Errorf("domain %s belongs to allocation %q, not %q: not adopting it", name, m.ID, t.AllocID)
			return Result{State: model.AllocFailed, ExitCode: -1, Reason: err.Error()}, err
		}
		if err := r.adoptOwner(name, d); err != nil {
			log.Warn("adopted guest keeps an id this agent could not lock", "err", err)
		}
	}
	if _, serr := os.Stat(dir.Root); serr != nil && st == libvirt.StateAbsent {
		if err := r.removeNet(t); err != nil {
			log.Error("cleanup failed", "err", err)
		}
		return Result{State: model.AllocFailed, ExitCode: -1, Reason: "lost: no guest and no job directory on this node after the agent restart"}, nil
	}
	defer func() {
		cerr := r.cleanup(ctx, name, dir)
		if st != libvirt.StateAbsent {
			cerr = errors.Join(cerr, r.returnGPUs(ctx, t, name, log))
		}
		cerr = errors.Join(cerr, r.removeNet(t))
		if cerr != nil {
			log.Error("cleanup failed", "err", cerr)
			if err == nil {
				err = cerr
				res.State, res.Reason = model.AllocFailed, joinReason(res.Reason, cerr.Error())
			}
		}
	}()
	rs, _ := readRunState(dir) // missing: no deadline known, none enforced
	log.Info("adopting guest", "state", st, "deadline", rs.Deadline)
	return r.finish(ctx, t, name, dir, rs.Deadline, progress, log)
}

// finish waits for the guest, then collects the result and stages out.
func (r *Runner) finish(ctx context.Context, t Task, name string, dir staging.Dir, deadline time.Time, progress func(string), log *slog.Logger) (Result, error) {
	out, werr := r.wait(ctx, name, dir, deadline, progress)
	progress(PhaseStopped)
	res := r.result(t, dir, out)
	if werr != nil {
		res.State, res.Reason = model.AllocFailed, joinReason(res.Reason, werr.Error())
	}
	var serr error
	res.Outputs, serr = r.stageOut(ctx, t, dir)
	if serr != nil {
		log.Warn("stage-out failed", "err", serr)
		if res.State == model.AllocCompleted {
			res.State = model.AllocFailed
		}
		res.Reason = joinReason(res.Reason, "stage-out: "+serr.Error())
	}
	if o := res.Outputs; o != nil && len(o.Missing) > 0 {
		res.Reason = joinReason(res.Reason, "stage-out: not produced by the job: "+strings.Join(o.Missing, ", "))
	}
	log.Info("task ended", "state", res.State, "exit_code", res.ExitCode, "boot_seconds", res.BootSeconds, "run_seconds", res.RunSeconds, "reason", res.Reason)
	return res, werr
}

type outcome struct {
	cancelled bool
	timedOut  bool
	last      libvirt.State
}

// wait polls the domain until it stops, handling cancellation (destroy),
// the walltime (ACPI shutdown, destroy after the grace period) and a guest
// that lingers after writing exit.json.
func (r *Runner) wait(ctx context.Context, name string, dir staging.Dir, deadline time.Time, progress func(string)) (outcome, error) {
	var out outcome
	tick := time.NewTicker(r.cfg.PollInterval)
	defer tick.Stop()
	running := false
	var graceEnd, exitSeen time.Time
	// Libvirt calls use a context that survives the caller's cancel.
	lctx := context.WithoutCancel(ctx)
	for {
		st, err := r.doms.State(lctx, name)
		if err != nil {
			return out, err
		}
		out.last = st
		// A job shorter than one poll can start and end between two
		// polls: report it running before reporting the guest stopped.
		if !running && exists(filepath.Join(dir.Share, guestproto.StartedFile)) {
			running = true
			progress(PhaseRunning)
		}
		if st.Stopped() {
			return out, nil
		}
		now := time.Now()
		if exitSeen.IsZero() && exists(filepath.Join(dir.Share, guestproto.ExitFile)) {
			exitSeen = now
		}
		switch {
		case ctx.Err() != nil:
			out.cancelled = true
			return out, r.doms.DestroyAndUndefine(lctx, name)
		case !exitSeen.IsZero() && now.Sub(exitSeen) > exitLinger:
			// The job is done; the guest failed to power off.
			return out, r.doms.DestroyAndUndefine(lctx, name)
		case !graceEnd.IsZero() && now.After(graceEnd):
			return out, r.doms.DestroyAndUndefine(lctx, name)
		case graceEnd.IsZero() && !deadline.IsZero() && now.After(deadline) && exitSeen.IsZero():
			out.timedOut = true
			graceEnd = now.Add(r.cfg.ShutdownGrace)
			if err := r.doms.Shutdown(lctx, name); err != nil && !errors.Is(err, libvirt.ErrNotFound) {
				return out, err
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
}

// result turns the outcome and exit.json into a Result.
func (r *Runner) result(t Task, dir staging.Dir, out outcome) Result {
	e, eerr := guestproto.ReadExit(dir.Share)
	res := Result{ExitCode: e.ExitCode, BootSeconds: e.BootSeconds, RunSeconds: e.RunSeconds}
	switch {
	case out.cancelled:
		res.State, res.Reason = model.AllocCancelled, "cancelled"
		if eerr != nil {
			res.ExitCode = -1
		}
	case out.timedOut:
		res.State, res.Reason = model.AllocTimedOut, fmt.Sprintf("walltime %s exceeded", t.Walltime)
		if eerr != nil {
			res.ExitCode = -1
		}
	case eerr != nil:
		res.State, res.ExitCode = model.AllocFailed, -1
		res.Reason = fmt.Sprintf("guest stopped (%s) without an exit status; see %s", out.last, r.ConsolePath(t.AllocID))
	case e.Error != "":
		res.State, res.Reason = model.AllocFailed, e.Error
	case e.ExitCode != 0:
		res.State, res.Reason = model.AllocFailed, fmt.Sprintf("exit code %d", e.ExitCode)
		if e.Signal != "" {
			res.Reason = "killed by signal " + e.Signal
		}
	default:
		res.State = model.AllocCompleted
	}
	return res
}

// stageIn fetches the job's input file set into the work directory.
func (r *Runner) stageIn(ctx context.Context, t Task, dir staging.Dir) error {
	if t.Inputs == "" {
		return nil
	}
	if err := t.Data.FetchInputs(ctx, t.InputRepository, t.Inputs, dir.Work); err != nil {
		return fmt.Errorf("stage-in of file set %s: %w", t.Inputs, err)
	}
	return nil
}

// stageOut uploads the task's stageOut sources from the work directory.
// It runs on a context that survives a cancelled job (a cancelled or
// timed-out job's partial results are still kept).
func (r *Runner) stageOut(ctx context.Context, t Task, dir staging.Dir) (*model.Outputs, error) {
	if len(t.StageOut) == 0 {
		return nil, nil
	}
	if _, err := os.Stat(dir.Work); err != nil {
		return nil, fmt.Errorf("work directory: %w", err)
	}
	return t.Data.PushOutputs(context.WithoutCancel(ctx), t.OutputRepository, dir.Work, t.StageOut, t.MaxOutputBytes)
}

// prepareShare writes job.json, creates output.log (hard-linked to
// LogPath) and hands the share to the QEMU user.
func (r *Runner) prepareShare(t Task, dir staging.Dir, own owner) error {
	req := guestproto.Request{
		Version: guestproto.ProtocolVersion, AllocID: t.AllocID, JobID: t.Job, Task: t.Task, Rank: t.Rank,
		Attempt: t.Attempt, Argv: t.Command, Script: t.Script, Env: t.Env,
		UID: guestproto.JobUID, GID: guestproto.JobGID, NCPUs: len(t.Placement.Cores),
		MemoryMiB: memoryMiB(t), Scratch: t.Placement.Scratch > 0,
		MPI: t.MPI, TasksPerNode: t.TasksPerNode, CPUsPerTask: t.CPUsPerTask,
	}
	for i, d := range t.Datasets {
		req.Datasets = append(req.Datasets, guestproto.Dataset{Name: d.Name, Tag: guestproto.DatasetTag(i)})
	}
	if t.Network != nil {
		g := t.Network.Guest
		g.MTU = netMTU(t.Network) // the guest's interface matches the bridge
		req.Network = &g
	}
	if err := req.Validate(); err != nil {
		return err
	}
	if err := guestproto.WriteRequest(dir.Share, req); err != nil {
		return err
	}
	outLog := filepath.Join(dir.Share, guestproto.OutputFile)
	if err := os.WriteFile(outLog, nil, 0o644); err != nil {
		return fmt.Errorf("create output log: %w", err)
	}
	if err := r.RemoveLogs(t.AllocID); err != nil {
		return fmt.Errorf("remove old logs: %w", err)
	}
	if err := os.Link(outLog, r.LogPath(t.AllocID)); err != nil {
		return fmt.Errorf("link output log into %s: %w", filepath.Dir(r.LogPath(t.AllocID)), err)
	}
	if own.chown {
		if err := staging.ChownTree(dir.Share, own.uid, own.gid); err != nil {
			return fmt.Errorf("hand the job share to uid %d: %w", own.uid, err)
		}
	}
	if own.perGuest {
		// The job directory (share, overlay, scratch, boot files) is the
		// guest's alone: other guests' uids share its group. The share
		// keeps its modes, which the guest sees through 9p.
		if err := os.Chown(dir.Root, own.uid, own.gid); err != nil {
			return fmt.Errorf("job directory: %w", err)
		}
		if err := os.Chmod(dir.Root, 0o700); err != nil {
			return fmt.Errorf("job directory: %w", err)
		}
	}
	return nil
}

// cleanup destroys and undefines the domain and removes the job directory,
// on a context detached from the caller's (which may be cancelled).
func (r *Runner) cleanup(ctx context.Context, name string, dir staging.Dir) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	err := r.doms.DestroyAndUndefine(cctx, name)
	if err == nil {
		r.releaseOwner(name) // only once no guest carries it
	}
	return errors.Join(err, staging.Cleanup(dir))
}

// netKey is the key of t's job network: one per gang (job, array task).
func netKey(t Task) netplane.Key { return netplane.Key{Job: t.Job, Task: t.Task} }

// ensureNet makes this node's side of t's job network and returns the
// guest's NIC on it. The scheduler places each rank of a gang on its own
// node, so a network serves exactly one guest here and no reference count
// is kept.
func (r *Runner) ensureNet(t Task) (vm.NIC, error) {
	n := t.Network
	vni := n.VNI
	if vni == 0 {
		vni = netplane.DefaultVNI(t.Job, t.Task)
	}
	mtu := netMTU(n)
	br, err := r.nets.Ensure(netplane.JobNet{Key: netKey(t), VNI: vni, MTU: mtu, Local: n.Local, Remotes: n.Remotes})
	if err != nil {
		return vm.NIC{}, err
	}
	return vm.NIC{Bridge: br, MAC: n.Guest.MAC, MTU: mtu}, nil
}

// netMTU is the job network's MTU: TaskNetwork.MTU, else the guest's,
// else netplane.DefaultMTU (checkTask rejects the two disagreeing).
func netMTU(n *TaskNetwork) int {
	switch {
	case n.MTU != 0:
		return n.MTU
	case n.Guest.MTU != 0:
		return n.Guest.MTU
	default:
		return netplane.DefaultMTU
	}
}

// removeNet removes t's job network, if it has one (idempotent).
func (r *Runner) removeNet(t Task) error {
	if t.Network == nil {
		return nil
	}
	return r.nets.Remove(netKey(t))
}

func checkTask(t Task) error {
	if err := staging.CheckAllocID(t.AllocID); err != nil {
		return err
	}
	if n := t.Network; n != nil {
		if err := n.Guest.Validate(); err != nil {
			return fmt.Errorf("task network: %w", err)
		}
		if n.Guest.Rank != t.Rank {
			return fmt.Errorf("task network: guest rank %d, task rank %d", n.Guest.Rank, t.Rank)
		}
		if n.MTU != 0 && n.Guest.MTU != 0 && n.MTU != n.Guest.MTU {
			return fmt.Errorf("task network: MTU %d, but the guest is told %d", n.MTU, n.Guest.MTU)
		}
	}
	if len(t.Command) == 0 && t.Script == "" {
		return errors.New("task has neither a command nor a script")
	}
	for _, d := range t.Datasets {
		if !filepath.IsAbs(d.Dir) {
			return fmt.Errorf("dataset %s: directory %q is not absolute", d.Name, d.Dir)
		}
	}
	if len(t.Placement.Cores) == 0 {
		return errors.New("task placement has no cores")
	}
	if t.Placement.Scratch < 0 || t.Placement.MemoryMiB < 0 {
		return errors.New("task placement has negative memory or scratch")
	}
	if (t.Inputs != "" || len(t.StageOut) > 0) && t.Data == nil {
		return errors.New("task stages files but this node has no data store to move them through")
	}
	if t.Inputs != "" {
		if err := jobdata.CheckDigest(t.Inputs); err != nil {
			return fmt.Errorf("task inputs: %w", err)
		}
	}
	for _, s := range t.StageOut {
		err := jobdata.CheckPath(path.Clean(s.From))
		if err == nil && s.To != "" {
			err = jobdata.CheckPath(path.Clean(s.To))
		}
		if err != nil {
			return fmt.Errorf("stage %q -> %q: %w", s.From, s.To, err)
		}
	}
	return nil
}

func memoryMiB(t Task) int64 {
	if t.Placement.MemoryMiB == 0 {
		return 256
	}
	return t.Placement.MemoryMiB
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func joinReason(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func writeRunState(dir staging.Dir, rs runState) error {
	b, err := json.Marshal(rs)
	if err != nil {
		return fmt.Errorf("encode run state: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir.Root, runStateFile), b, 0o644); err != nil {
		return fmt.Errorf("write run state: %w", err)
	}
	return nil
}

func readRunState(dir staging.Dir) (runState, error) {
	var rs runState
	f, err := os.Open(filepath.Join(dir.Root, runStateFile))
	if err != nil {
		return rs, err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return rs, err
	}
	return rs, json.Unmarshal(b, &rs)
}
