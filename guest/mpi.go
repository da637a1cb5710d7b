package guest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"vhpc/guestproto"
)

// MPI flavours of guestproto.Request.MPI.
const (
	MPIOpenMPI = "openmpi"
	MPIMPICH   = "mpich"
)

// DefaultBarrierTimeout is how long rank 0 waits for every peer's
// launcher before it fails the job.
const DefaultBarrierTimeout = 10 * time.Minute

// tasksPerNode and cpusPerTask: a request's shape, at least 1 each.
func tasksPerNode(r guestproto.Request) int { return max(r.TasksPerNode, 1) }
func cpusPerTask(r guestproto.Request) int  { return max(r.CPUsPerTask, 1) }

// Hostfile returns the hostfile of a networked job: OpenMPI's syntax
// ("node0 slots=N") for openmpi, Hydra's ("node0:N") for mpich, and one
// hostname per line without an MPI.
func Hostfile(r guestproto.Request) string {
	var b strings.Builder
	n := tasksPerNode(r)
	for _, p := range r.Network.Peers {
		switch r.MPI {
		case MPIOpenMPI:
			fmt.Fprintf(&b, "%s slots=%d\n", p.Hostname, n)
		case MPIMPICH:
			fmt.Fprintf(&b, "%s:%d\n", p.Hostname, n)
		default:
			fmt.Fprintf(&b, "%s\n", p.Hostname)
		}
	}
	return b.String()
}

// NetworkEnv returns the variables a networked job gets on top of
// Request.Environ, on every guest: VHPC_HOSTFILE, VHPC_NNODES,
// VHPC_NTASKS, VHPC_HOSTNAME, and the chosen MPI's launcher settings
// (its remote-start agent is rsh, the hostfile is hostfile).
func NetworkEnv(r guestproto.Request, hostfile, rsh string) []string {
	nodes := len(r.Network.Peers)
	env := []string{
		"VHPC_HOSTFILE=" + hostfile,
		"VHPC_HOSTNAME=" + r.Network.Hostname,
		"VHPC_NNODES=" + strconv.Itoa(nodes),
		"VHPC_NTASKS=" + strconv.Itoa(nodes*tasksPerNode(r)),
	}
	if r.MPI != "" {
		path := "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
		for _, kv := range r.Environ() {
			if v, ok := strings.CutPrefix(kv, "PATH="); ok {
				path = v
			}
		}
		env = append(env, "PATH="+MPIBinDir+":"+path)
	}
	switch r.MPI {
	case MPIOpenMPI:
		env = append(env,
			"OMPI_MCA_orte_default_hostfile="+hostfile,
			"OMPI_MCA_plm_rsh_agent="+rsh,
			"OMPI_MCA_plm_rsh_no_tree_spawn=1",
		)
		if r.UID == 0 {
			env = append(env, "OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
		}
	case MPIMPICH:
		env = append(env,
			"HYDRA_HOST_FILE="+hostfile,
			"HYDRA_LAUNCHER=ssh",
			"HYDRA_LAUNCHER_EXEC="+rsh,
		)
	}
	return env
}

// mpiTools are the MPI commands Debian ships per flavour as NAME.openmpi
// and NAME.mpich.
func mpiTools() []string {
	return []string{"mpirun", "mpiexec", "mpicc", "mpicxx", "mpic++", "mpiCC", "mpif77", "mpif90", "mpifort"}
}

// WriteMPIShims makes dir hold, for each MPI command that usrBin has in
// the flavour's own name (mpirun.mpich), a two-line script under the plain
// name (mpirun) that execs it, so that the job's MPI is the one a bare
// `mpirun` or `mpicc` starts, whatever Debian's alternatives point at.
// Scripts, not symlinks: Hydra looks for hydra_pmi_proxy next to the path
// it was started by. Every guest of an MPI job calls it (the launcher runs
// remote commands with rank 0's PATH).
func WriteMPIShims(dir, flavour, usrBin string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("mpi shims: %w", err)
	}
	for _, name := range mpiTools() {
		target := filepath.Join(usrBin, name+"."+flavour)
		if _, err := os.Stat(target); err != nil {
			continue
		}
		script := "#!/bin/sh\nexec " + target + " \"$@\"\n" // target: usrBin and a fixed name, no user input
		if err := writeFileAtomic(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
			return fmt.Errorf("mpi shims: %w", err)
		}
	}
	return nil
}

// isMPILauncher reports whether arg0 names an MPI launcher: an Argv that
// starts with one is run as it is.
func isMPILauncher(arg0 string) bool {
	switch filepath.Base(arg0) {
	case "mpirun", "mpiexec", "orterun", "prterun", "mpiexec.hydra",
		"mpirun.openmpi", "mpiexec.openmpi", "mpirun.mpich", "mpiexec.mpich":
		return true
	}
	return false
}

// MPIArgv returns the command rank 0 runs for an Argv job: argv itself
// when it already starts with an MPI launcher, else argv under the
// flavour's launcher across all nodes (tasks-per-node ranks each, each
// output line prefixed with its rank).
func MPIArgv(r guestproto.Request, hostfile string) []string {
	if len(r.Argv) == 0 || isMPILauncher(r.Argv[0]) {
		return r.Argv
	}
	np := strconv.Itoa(len(r.Network.Peers) * tasksPerNode(r))
	var argv []string
	switch r.MPI {
	case MPIOpenMPI:
		argv = []string{"mpirun", "--tag-output", "-np", np, "--hostfile", hostfile}
		if c := cpusPerTask(r); c > 1 {
			argv = append(argv, "--map-by", "slot:PE="+strconv.Itoa(c))
		}
	case MPIMPICH:
		argv = []string{"mpiexec", "-prepend-rank", "-f", hostfile, "-n", np}
	default:
		return r.Argv
	}
	return append(argv, r.Argv...)
}

// lookPathEnv resolves a command name without a slash in the PATH of env
// (the job's, not hpc-guest's: PID 1 has none).
func lookPathEnv(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%q not found in the job's PATH %q", name, path)
}

// PeerAddr is a peer's launcher: its hostname and host:port.
type PeerAddr struct {
	Name string
	Addr string
}

// Barrier pings every peer's launcher until all have answered or timeout
// has passed; the error then names the peers that did not answer and why.
// Rank 0 calls it before it starts an MPI job.
func Barrier(ctx context.Context, lc LauncherClient, peers []PeerAddr, timeout time.Duration) error {
	lc.RetryFor = 0
	if lc.DialTimeout <= 0 {
		lc.DialTimeout = 2 * time.Second
	}
	deadline := time.Now().Add(timeout)
	missing := map[PeerAddr]error{}
	for _, p := range peers {
		missing[p] = errors.New("not tried")
	}
	for {
		var mu sync.Mutex
		var wg sync.WaitGroup
		var round []PeerAddr
		for _, p := range peers {
			if _, ok := missing[p]; ok {
				round = append(round, p)
			}
		}
		for _, p := range round {
			wg.Go(func() {
				err := lc.Ping(p.Addr)
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					delete(missing, p)
				} else {
					missing[p] = err
				}
			})
		}
		wg.Wait()
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			var names []string
			for _, p := range peers {
				if err, ok := missing[p]; ok {
					names = append(names, fmt.Sprintf("%s (%s: %v)", p.Name, p.Addr, err))
				}
			}
			return fmt.Errorf("%d of %d peers not ready after %s: %s", len(names), len(peers), timeout, strings.Join(names, "; "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// NetJob runs the command of a networked job (Request.Network set) in the
// mode its request asks for; startNetworkJob builds it in a guest, tests
// on 127.0.0.1. See README.md ("MPI mode").
type NetJob struct {
	// Client reaches the peers' launchers.
	Client LauncherClient
	// Peers are the other guests' launchers (rank 0 uses them).
	Peers []PeerAddr
	// Env is NetworkEnv: added to the job's environment.
	Env []string
	// Hostfile is the hostfile's path (for MPIArgv).
	Hostfile string
	// Done is closed when rank 0 has said done (followers wait for it).
	Done <-chan struct{}
	// BarrierTimeout defaults to DefaultBarrierTimeout.
	BarrierTimeout time.Duration
	// Log receives the mode's own lines (followers: output.log).
	Log *slog.Logger
}

// Run runs the job: with an MPI, rank 0 waits for every peer's launcher,
// runs the command under the MPI's launcher (MPIArgv; a Script as it is)
// and then tells every peer done, while the other ranks only serve
// remote starts until done or Stop; without an MPI every guest runs the
// command. The exit is RunJob's (rank 0's for an MPI job).
func (j *NetJob) Run(ctx context.Context, req guestproto.Request, o JobOptions) guestproto.Exit {
	log := j.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o.Env = mergeEnv(o.Env, j.Env)
	if req.MPI == "" {
		return j.runCommand(ctx, req, o)
	}
	if req.Network.Rank != 0 {
		return j.follow(ctx, req.Network.Rank, o, log)
	}
	timeout := j.BarrierTimeout
	if timeout <= 0 {
		timeout = DefaultBarrierTimeout
	}
	start := time.Now()
	log.Info("waiting for every guest's launcher", "peers", len(j.Peers), "timeout", timeout)
	if err := Barrier(ctx, j.Client, j.Peers, timeout); err != nil {
		fmt.Fprintf(o.Out, "hpc-guest: %v\n", err)
		return guestproto.Exit{ExitCode: 126, Error: err.Error(), RunSeconds: time.Since(start).Seconds()}
	}
	log.Info("every guest is ready", "seconds", time.Since(start).Seconds())
	req.Argv = MPIArgv(req, j.Hostfile)
	e := j.runCommand(ctx, req, o)
	j.sayDone(log)
	return e
}

// runCommand is RunJob with argv[0] resolved in the job's PATH.
func (j *NetJob) runCommand(ctx context.Context, req guestproto.Request, o JobOptions) guestproto.Exit {
	if len(req.Argv) > 0 {
		p, err := lookPathEnv(req.Argv[0], mergeEnv(req.Environ(), o.Env))
		if err != nil {
			if isMPILauncher(req.Argv[0]) {
				err = fmt.Errorf("%w (does the image have %s installed?)", err, req.MPI)
			}
			fmt.Fprintf(o.Out, "hpc-guest: %v\n", err)
			return guestproto.Exit{ExitCode: 127, Error: err.Error()}
		}
		req.Argv = append([]string{p}, req.Argv[1:]...)
	}
	return RunJob(ctx, req, o)
}

// sayDone tells every peer that rank 0's command has ended (best effort:
// a peer that does not hear it ends at its walltime).
func (j *NetJob) sayDone(log *slog.Logger) {
	lc := j.Client
	lc.RetryFor = 10 * time.Second
	var wg sync.WaitGroup
	for _, p := range j.Peers {
		wg.Go(func() {
			if err := lc.Done(p.Addr); err != nil {
				log.Warn("cannot tell a peer that the job is done", "peer", p.Name, "err", err)
			}
		})
	}
	wg.Wait()
}

// follow is a follower's run: serve remote starts (the launcher runs
// already) until rank 0 says done, the host stops the guest, or ctx ends.
func (j *NetJob) follow(ctx context.Context, rank int, o JobOptions, log *slog.Logger) guestproto.Exit {
	start := time.Now()
	log.Info("serving remote starts until rank 0 is done", "rank", rank)
	select {
	case <-j.Done:
		log.Info("rank 0 is done")
		return guestproto.Exit{RunSeconds: time.Since(start).Seconds()}
	case <-o.Stop:
	case <-ctx.Done():
	}
	log.Info("stopped while serving remote starts")
	return guestproto.Exit{ExitCode: 143, Signal: "terminated", Stopped: true, RunSeconds: time.Since(start).Seconds()}
}
