// Package runner runs one allocation's task inside a libvirt guest, from
// an empty job directory to a collected exit status and a clean host. The
// node agent (nodeagent/agent) calls it; it is built on nodeagent/vm
// (domain definitions), nodeagent/libvirt (life cycle), nodeagent/staging
// (job directory, stage-in/out) and vmimages (the tiny image). See
// ../README.md for the picture.
package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"vhpc/guestproto"
	"vhpc/jobdata"
	"vhpc/nodeagent/gpureset"
	"vhpc/nodeagent/guestid"
	"vhpc/nodeagent/libvirt"
	"vhpc/nodeagent/netplane"
	"vhpc/nodeagent/staging"
	"vhpc/nodeagent/vm"
	"vhpc/scheduler/model"
	"vhpc/vmimages"
)

// Config configures a Runner. Zero values get the defaults noted.
type Config struct {
	// StateDir holds jobs/<allocID>/, logs/ and the hypervisor probe
	// cache. It and its parents must be traversable by the QEMU user.
	// Default /var/lib/vhpc.
	StateDir string
	// ImageDir is the image store. Default <StateDir>/images.
	ImageDir string
	// LibvirtURI defaults to qemu:///system.
	LibvirtURI string
	// Hypervisor is "auto" (default: probe, cached), "kvm" or "tcg".
	Hypervisor string
	// HousekeepingCores run QEMU's emulator threads (emulatorpin).
	HousekeepingCores []int
	// ShutdownGrace is how long a guest gets between the ACPI power
	// button and a hard destroy when its walltime is over. Default 10s.
	ShutdownGrace time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger

	// GuestBinary is the static hpc-guest put into the tiny image;
	// default: found next to the executable or on $PATH by
	// vmimages.FindGuestBinary (never built: New fails, saying how to get
	// one, when there is none).
	GuestBinary string
	// QEMUUser is the user libvirt runs QEMU as (qemu.conf "user"); its
	// group is every guest's group, and with SharedQEMUUser it owns every
	// guest's files. Default "libvirt-qemu"; if that user does not exist,
	// the files stay root's (QEMU running as root) and guests get no ids
	// of their own.
	QEMUUser string
	// QEMUGroup is qemu.conf's "group": every guest with an id of its own
	// runs with it as its only group, which lets its QEMU into libvirt's
	// per-domain directories (/var/lib/libvirt/qemu is 0750 to it).
	// Default "libvirt-qemu".
	QEMUGroup string
	// GuestIDs is the range of host user ids the guests run as, one id
	// per guest (nodeagent/guestid: a guest's QEMU cannot open another
	// guest's disks or share). Zero: guestid.DefaultBase, DefaultCount.
	GuestIDs guestid.Range
	// GuestIDLockDir holds the locks of the ids in use, shared by every
	// agent of the host. Default guestid.DefaultLockDir.
	GuestIDLockDir string
	// SharedQEMUUser runs every guest as QEMUUser instead (hosts whose
	// /dev/kvm or devices only QEMUUser's supplementary groups open).
	SharedQEMUUser bool
	// ProbeTimeout bounds the KVM probe boot. Default 15s.
	ProbeTimeout time.Duration
	// PollInterval is how often a running guest is checked. Default 200ms.
	PollInterval time.Duration
	// Namespace keeps this runner's domains apart from other agents' on
	// the same libvirtd (vhpc-<ns>-<job>-<task>-<rank>). Default: derived
	// from StateDir, so an agent restarted on the same state dir finds its
	// guests again.
	Namespace string

	// HostRoot is the directory the host's /sys is found under: GPU tasks
	// read it (IOMMU groups, CPU NUMA nodes, through nodeagent/inventory)
	// and write it (GPU reset and rebind, through nodeagent/gpureset).
	// Default "/"; tests point it at a fixture tree. GPU-less tasks never
	// touch it.
	HostRoot string
	// GPUReturnDriver is the host driver a GPU task's functions are bound
	// to after its guest is gone and they have been reset: "" leaves them
	// where libvirt's managed detach left them (the driver they had
	// before), "nvidia" binds the GPU functions to nvidia, "vfio-pci"
	// binds every passed function to vfio-pci.
	GPUReturnDriver string
}

// Stage is one stage-out source and where it goes (relative paths; see
// jobdata.Stage).
type Stage = jobdata.Stage

// JobData moves a task's files between the cluster's store and the job's
// work directory (package jobdata over the registry the master names; the
// agent gives every task one). The runner never opens a path a client
// named: inputs arrive as a file set by digest, outputs leave as one.
type JobData interface {
	// FetchInputs lays out the file set digest of repository repoName
	// under workDir, verifying every blob.
	FetchInputs(ctx context.Context, repoName, digest, workDir string) error
	// PushOutputs uploads the stages' sources under workDir (those that
	// exist, within limit bytes) as one file set to repository repoName
	// and says what it
	// stored and what was missing. With an error, the Outputs still say
	// what was uploaded (an output over the limit is uploaded in part).
	PushOutputs(ctx context.Context, repoName, workDir string, stages []Stage, limit int64) (*model.Outputs, error)
}

// Task is one allocation's work on this node, as the agent passes it.
type Task struct {
	AllocID string
	Job     uint64
	Task    int64
	Rank    int
	Attempt uint64
	// Image is the guest image's name; "" or "tiny" is the built-in tiny
	// image. With ImageDir set it is informational.
	Image string
	// ImageDir is a Debian image directory on this host (built by
	// vmimages.BuildDebian, or pulled from the registry into the agent's
	// cache): kernel, initrd, root.qcow2, config.json. The guest boots the
	// image's kernel with a qcow2 overlay on root.qcow2 as its root disk
	// (made per job in the job directory, nothing copied); the image's env
	// is under the job's. "" = the tiny image.
	ImageDir string
	Command  []string
	Script   string
	Env      map[string]string
	// Placement gives cores (1:1 vCPUs), memory (0 = 256 MiB) and scratch
	// (MiB, 0 = no scratch disk).
	Placement model.Placement
	// Walltime is enforced from the moment the guest is started; 0 = none.
	Walltime time.Duration
	// InputRepository holds Inputs (the department's file sets,
	// jobdata.RepositoryName); OutputRepository is where the outputs go
	// (the job's own, jobdata.OutputRepositoryName).
	InputRepository, OutputRepository string
	// Inputs is the job's stageIn file set ("sha256:..."): fetched by
	// digest into the work directory before the guest starts. "" = none.
	Inputs string
	// StageOut lists what is uploaded from the work directory after the
	// guest ends, at most MaxOutputBytes (0: no limit; negative: nothing,
	// the department's data quota is full); the result's
	// Outputs say what was stored.
	StageOut       []Stage
	MaxOutputBytes int64
	// Data moves Inputs and StageOut; required when either is set.
	Data JobData
	// Datasets are attached read-only (a 9p share each) and mounted by
	// the guest at /datasets/<Name>; the agent pulled them into its
	// dataset cache and pins them while the task runs.
	Datasets []Dataset
	// GPUs are Placement.GPUs resolved from the inventory (ResolveGPUs):
	// one per placement GPU, with its host NUMA node and IOMMU group.
	// Run checks them against the host again, passes them through with
	// every function of their slot, pins the guest next to them and resets
	// them after the guest is gone. Empty for a GPU-less task.
	GPUs []vm.GPU

	// Network is the private network of a gang (a multi-node job, or an
	// MPI job): Run makes this node's side of it (nodeagent/netplane)
	// before the guest starts, gives the guest a NIC on it, writes
	// Network.Guest into job.json and removes it after the guest is gone
	// (as do Adopt and Remove). nil = no network.
	Network *TaskNetwork
	// MPI ("openmpi", "mpich" or ""), TasksPerNode and CPUsPerTask are
	// passed to the guest in job.json (guestproto.Request); an MPI task
	// needs a Network.
	MPI          string
	TasksPerNode int
	CPUsPerTask  int
}

// Dataset is one read-only dataset of a task: its mount name and the
// directory on this host that holds it (shared by every task that mounts
// it; the guest cannot write to it).
type Dataset struct {
	Name string
	Dir  string
}

// TaskNetwork is what a task's node needs of its gang's network: the
// agent fills it from its configuration (Local) and the allocations of
// the job's other ranks (Remotes, each rank on its own node).
type TaskNetwork struct {
	// Local is this node's VXLAN underlay (netplane.ParseUnderlay of the
	// agent's configured address).
	Local netplane.Underlay
	// Remotes are the gang's other nodes, with their guests' MACs
	// (guestproto.GuestMAC of their ranks); empty for a one-node gang.
	Remotes []netplane.Remote
	// VNI is the gang's VXLAN id, the same on all its nodes; 0 =
	// netplane.DefaultVNI(Job, Task).
	VNI uint32
	// MTU of the job network and the guest's NIC; 0 = Guest.MTU, else
	// netplane.DefaultMTU. The same on every node of the gang.
	MTU int
	// Guest is this guest's view (guestproto.NewNetwork(Rank, nodes,
	// secret)): written into job.json with the MTU filled in; its MAC is
	// the NIC's.
	Guest guestproto.Network
}

// jobNets is the part of *netplane.Plane the runner uses (a fake in unit
// tests).
type jobNets interface {
	Ensure(netplane.JobNet) (string, error)
	Seal(netplane.Key) error
	Remove(netplane.Key) error
	Cleanup(keep func(netplane.Key) bool) ([]netplane.Key, error)
}

// Result is how a task ended.
type Result struct {
	// State is completed, failed, timeout or cancelled.
	State       model.AllocState
	ExitCode    int
	BootSeconds float64
	RunSeconds  float64
	// Reason says why the task failed, timed out or was cancelled.
	Reason string
	// Outputs is what was uploaded of StageOut (nil without StageOut).
	Outputs *model.Outputs
}

// Runner runs tasks in guests on this node. Its methods are safe for
// concurrent use on distinct allocations.
type Runner struct {
	cfg      Config
	log      *slog.Logger
	doms     libvirt.Domains
	closer   func() error
	img      vmimages.Image
	hv       string
	qemuUID  int
	qemuGID  int
	chownOK  bool
	hvReason string
	// kvmDevice is /dev/kvm; tests point it elsewhere.
	kvmDevice string
	ns        string // domain namespace (Config.Namespace)
	// hostFS is Config.HostRoot as the inventory reads it; tests replace
	// it (and pci) with fixtures.
	hostFS    fs.FS
	pci       gpureset.Sysfs
	gpuReturn *gpureset.Returner
	nets      jobNets // job networks of namespace ns
	ids       *guestIDs
}

// New connects to libvirt, finds or builds the tiny image and settles the
// hypervisor (forced by Config.Hypervisor, else read from the probe cache
// in StateDir, else probed by booting the tiny image under KVM). It fails
// with a clear message when libvirtd is not reachable.
func New(ctx context.Context, cfg Config) (*Runner, error) {
	cfg = withDefaults(cfg)
	switch cfg.Hypervisor {
	case "auto", "kvm", "tcg":
	default:
		return nil, fmt.Errorf("runner: hypervisor %q: want auto, kvm or tcg", cfg.Hypervisor)
	}
	if err := vm.CheckNamespace(cfg.Namespace); err != nil {
		return nil, fmt.Errorf("runner: %w", err)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("runner: state dir: %w", err)
	}
	conn, err := libvirt.Connect(cfg.LibvirtURI)
	if err != nil {
		return nil, fmt.Errorf("runner: %w", err)
	}
	gb, err := vmimages.FindGuestBinary(cfg.GuestBinary)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("runner: %w", err)
	}
	img, err := vmimages.EnsureTiny(ctx, cfg.ImageDir, vmimages.TinySpec{GuestBinary: gb}, cfg.Logger)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("runner: tiny image: %w", err)
	}
	r, err := newRunner(cfg, conn, img)
	if err != nil {
		conn.Close()
		return nil, err
	}
	r.closer = conn.Close
	if err := r.settleHypervisor(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	r.checkKVMForGuestIDs("/dev/kvm")
	r.cleanupNets(ctx)
	return r, nil
}

// cleanupNets removes the job networks of this namespace whose job (and
// task) has no domain any more: left by an agent that stopped between a
// guest's end and the network's removal. Failures are logged, not fatal
// (an agent without CAP_NET_ADMIN runs no multi-node jobs).
func (r *Runner) cleanupNets(ctx context.Context) {
	infos, err := r.doms.List(ctx, vm.Prefix(r.ns))
	if err != nil {
		r.log.Warn("job networks not cleaned up: cannot list domains", "err", err)
		return
	}
	keep := map[netplane.Key]bool{}
	for _, in := range infos {
		if job, task, _, ok := vm.ParseName(r.ns, in.Name); ok {
			keep[netplane.Key{Job: job, Task: task}] = true
		}
	}
	gone, err := r.nets.Cleanup(func(k netplane.Key) bool { return keep[k] })
	for _, k := range gone {
		r.log.Info("removed the network of a job without a guest", "job", k.Job, "task", k.Task)
	}
	if err != nil {
		r.log.Warn("job network cleanup failed", "err", err)
	}
}

func withDefaults(cfg Config) Config {
	if cfg.StateDir == "" {
		cfg.StateDir = "/var/lib/vhpc"
	}
	if cfg.ImageDir == "" {
		cfg.ImageDir = filepath.Join(cfg.StateDir, "images")
	}
	if cfg.LibvirtURI == "" {
		cfg.LibvirtURI = "qemu:///system"
	}
	if cfg.Hypervisor == "" {
		cfg.Hypervisor = "auto"
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.QEMUUser == "" {
		cfg.QEMUUser = "libvirt-qemu"
	}
	if cfg.QEMUGroup == "" {
		cfg.QEMUGroup = "libvirt-qemu"
	}
	if cfg.GuestIDs == (guestid.Range{}) {
		cfg.GuestIDs = guestid.Range{Base: guestid.DefaultBase, Count: guestid.DefaultCount}
	}
	if cfg.GuestIDLockDir == "" {
		cfg.GuestIDLockDir = guestid.DefaultLockDir
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = 15 * time.Second
	}
	if cfg.HostRoot == "" {
		cfg.HostRoot = "/"
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 200 * time.Millisecond
	}
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultNamespace(cfg.StateDir)
	}
	return cfg
}

// newRunner wires a Runner over any Domains (the fake in unit tests). The
// hypervisor is left for settleHypervisor (or set by the test).
func newRunner(cfg Config, doms libvirt.Domains, img vmimages.Image) (*Runner, error) {
	cfg = withDefaults(cfg)
	r := &Runner{cfg: cfg, log: cfg.Logger.With("component", "runner"), doms: doms, img: img, kvmDevice: "/dev/kvm", ns: cfg.Namespace,
		hostFS: os.DirFS(cfg.HostRoot), pci: gpureset.Dir{Root: filepath.Join(cfg.HostRoot, "sys")}}
	if err := r.setPCI(r.pci); err != nil {
		return nil, err
	}
	nets, err := netplane.New(cfg.Namespace, r.log)
	if err != nil {
		return nil, fmt.Errorf("runner: %w", err)
	}
	r.nets = nets
	if u, err := user.Lookup(cfg.QEMUUser); err == nil {
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err1 == nil && err2 == nil {
			r.qemuUID, r.qemuGID, r.chownOK = uid, gid, os.Getuid() == 0
		}
	}
	guestGID := -1 // no QEMU group: guests get no ids of their own
	if g, err := user.LookupGroup(cfg.QEMUGroup); err == nil {
		if gid, err := strconv.Atoi(g.Gid); err == nil {
			guestGID = gid
		}
	}
	if r.ids, err = openGuestIDs(cfg, r.chownOK && guestGID >= 0, guestGID); err != nil {
		return nil, err
	}
	for _, d := range []string{filepath.Join(cfg.StateDir, "jobs"), filepath.Join(cfg.StateDir, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("runner: %w", err)
		}
	}
	return r, nil
}

// setPCI sets the sysfs GPU tasks reset through (tests use a fake).
func (r *Runner) setPCI(sys gpureset.Sysfs) error {
	ret, err := gpureset.New(sys, r.cfg.GPUReturnDriver, r.log)
	if err != nil {
		return fmt.Errorf("runner: %w", err)
	}
	r.pci, r.gpuReturn = sys, ret
	return nil
}

// Close releases the libvirt connection. Guests keep running (Adopt
// finds them after a restart).
func (r *Runner) Close() error {
	if r.closer != nil {
		return r.closer()
	}
	return nil
}

// GPUSamplesPath is where the guest appends its GPU samples while the task
// runs (guestproto.GPUSamplesFile in the job share); it is gone after cleanup.
func (r *Runner) GPUSamplesPath(allocID string) string {
	dir, err := staging.Layout(r.cfg.StateDir, allocID)
	if err != nil {
		return ""
	}
	return filepath.Join(dir.Share, guestproto.GPUSamplesFile)
}

// DefaultNamespace is the domain namespace of a runner on stateDir: a hash
// of its absolute path, so an agent restarted on the same state dir finds
// its guests again and agents on other state dirs never see them.
func DefaultNamespace(stateDir string) string {
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		abs = stateDir
	}
	sum := sha256.Sum256([]byte(abs))
	return hex.EncodeToString(sum[:4])
}

// DomainName is the libvirt domain a task runs in.
func (r *Runner) DomainName(t Task) string { return vm.Name(r.ns, t.Job, t.Task, t.Rank) }

// Hypervisor returns "kvm" or "tcg", as settled by New.
func (r *Runner) Hypervisor() string { return r.hv }

// Image returns the tiny image the runner boots.
func (r *Runner) Image() vmimages.Image { return r.img }

// LogPath returns the job's output log (stdout+stderr as the guest writes
// it), for `hpcsub logs -f`. It is a hard link to the share's output.log,
// so it stays readable after the job directory is removed, until
// RemoveLogs.
func (r *Runner) LogPath(allocID string) string {
	return filepath.Join(r.cfg.StateDir, "logs", allocID+".output.log")
}

// ConsolePath returns the guest's serial console log (kernel and
// hpc-guest messages), kept like LogPath.
func (r *Runner) ConsolePath(allocID string) string {
	return filepath.Join(r.cfg.StateDir, "logs", allocID+".console.log")
}

// RemoveLogs deletes the logs LogPath and ConsolePath name; the agent calls
// it when the master no longer needs them.
func (r *Runner) RemoveLogs(allocID string) error {
	if err := staging.CheckAllocID(allocID); err != nil {
		return err
	}
	var errs []error
	for _, p := range []string{r.LogPath(allocID), r.ConsolePath(allocID)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Running returns the allocation ids of every vhpc- domain defined on this
// host (running or stopped but not yet collected), read from the domains'
// metadata. The agent adopts or cleans each after a restart.
func (r *Runner) Running(ctx context.Context) ([]string, error) {
	infos, err := r.doms.List(ctx, vm.Prefix(r.ns))
	if err != nil {
		return nil, fmt.Errorf("runner: %w", err)
	}
	var ids []string
	for _, in := range infos {
		d, err := r.doms.XML(ctx, in.Name)
		if errors.Is(err, libvirt.ErrNotFound) {
			continue // gone meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("runner: %w", err)
		}
		m, err := vm.ParseMetadata(d)
		if err != nil {
			r.log.Warn("vhpc- domain without vhpc metadata", "domain", in.Name, "err", err)
			continue
		}
		ids = append(ids, m.ID)
	}
	return ids, nil
}

// Remove destroys and undefines an allocation's domain and deletes its job
// directory: for an agent cleaning up a domain it will not adopt. If the
// domain existed and t has GPUs, they are reset afterwards as in Run; t's
// network (Task.Network) is removed.
func (r *Runner) Remove(ctx context.Context, t Task) error {
	dir, err := staging.Layout(r.cfg.StateDir, t.AllocID)
	if err != nil {
		return fmt.Errorf("runner: %w", err)
	}
	name := vm.Name(r.ns, t.Job, t.Task, t.Rank)
	existed := false
	if len(t.GPUs) > 0 {
		st, err := r.doms.State(ctx, name)
		if err != nil {
			return fmt.Errorf("runner: %w", err)
		}
		existed = st != libvirt.StateAbsent
	}
	err = errors.Join(r.doms.DestroyAndUndefine(ctx, name), staging.Cleanup(dir))
	if existed {
		err = errors.Join(err, r.returnGPUs(ctx, t, name, r.log.With("alloc_id", t.AllocID, "domain", name)))
	}
	return errors.Join(err, r.removeNet(t))
}

func (r *Runner) template(image string) (vm.Template, error) {
	if image != "" && image != "tiny" {
		return vm.Template{}, fmt.Errorf("image %q is not available on this node (only \"tiny\" so far)", image)
	}
	return vm.Template{Name: "tiny", Hypervisor: r.hv, Kernel: r.img.Kernel, Initrd: r.img.Initrd, Cmdline: r.img.Cmdline}, nil
}
