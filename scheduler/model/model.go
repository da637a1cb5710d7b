// Package model holds the replicated types of vhpc: jobs, nodes, GPUs,
// allocations and plans. The FSM stores them, the scheduler core reads them,
// the API converts them. Every type here is plain data: no I/O, no clocks,
// no pointers shared between copies (use Copy before mutating).
//
// Imports: nothing of ours (DESIGN.md: model sits at the bottom).
package model

import (
	"maps"
	"slices"
	"time"
)

// JobID identifies a job. IDs are assigned by FSM.Apply in commit order,
// starting at 1, and are never reused.
type JobID uint64

// JobState is a job's place in its life cycle.
type JobState string

// Job states. Pending jobs wait for the scheduler; Scheduled jobs have
// allocations that agents have not yet reported running.
const (
	JobPending   JobState = "pending"
	JobScheduled JobState = "scheduled"
	JobRunning   JobState = "running"
	JobCompleted JobState = "completed"
	JobFailed    JobState = "failed"
	JobCancelled JobState = "cancelled"
	JobTimedOut  JobState = "timeout"
)

// Terminal reports whether no further transition can happen to the job.
func (s JobState) Terminal() bool {
	switch s {
	case JobCompleted, JobFailed, JobCancelled, JobTimedOut:
		return true
	}
	return false
}

// Request is what one job asks for on each of its nodes, in scheduler units.
// It is derived from the validated job spec by the server.
type Request struct {
	Nodes        int    `json:"nodes"`
	TasksPerNode int    `json:"tasksPerNode"`
	CPUsPerTask  int    `json:"cpusPerTask"`
	MemoryMiB    int64  `json:"memoryMiB"`    // per node
	GPUs         int    `json:"gpus"`         // per node
	GPUModel     string `json:"gpuModel"`     // "" = any model
	GPUMemoryMiB int64  `json:"gpuMemoryMiB"` // minimum memory per GPU; 0 = any
	ScratchMiB   int64  `json:"scratchMiB"`   // per node
	HugepagesMiB int64  `json:"hugepagesMiB"` // per node, part of MemoryMiB
	// CrossNUMA allows cores and memory to come from NUMA nodes other than
	// the GPUs' own when NUMA-local resources are not free.
	CrossNUMA bool `json:"crossNUMA"`
}

// CoresPerNode is the number of host cores (vCPUs) the job needs per node.
func (r Request) CoresPerNode() int { return r.TasksPerNode * r.CPUsPerTask }

// DependencyKind is the condition of a dependsOn entry.
type DependencyKind string

// Dependency kinds, as in Slurm's --dependency.
const (
	AfterOK    DependencyKind = "afterok"
	AfterAny   DependencyKind = "afterany"
	AfterNotOK DependencyKind = "afternotok"
)

// Dependency makes a job wait for other jobs to end.
type Dependency struct {
	Kind DependencyKind `json:"kind"`
	Jobs []JobID        `json:"jobs"`
}

// Array describes the tasks of an array job (render frames): task i covers
// frames First+i*Step*Chunk ... up to Chunk frames, never past Last.
// Tasks are materialized lazily by the scheduler; a huge array is one Job.
type Array struct {
	First    int64 `json:"first"`
	Last     int64 `json:"last"`
	Step     int64 `json:"step"`
	Chunk    int64 `json:"chunk"`    // frames per task, >= 1
	Parallel int   `json:"parallel"` // max tasks running at once; 0 = no limit
}

// Tasks returns how many tasks the array has.
func (a Array) Tasks() int64 {
	if a.Step <= 0 || a.Chunk <= 0 || a.Last < a.First {
		return 0
	}
	frames := (a.Last-a.First)/a.Step + 1
	return (frames + a.Chunk - 1) / a.Chunk
}

// Job is one submitted job as the FSM stores it.
type Job struct {
	ID         JobID  `json:"id"`
	Token      string `json:"token"` // client token that created the job
	Name       string `json:"name"`
	User       string `json:"user"`
	Department string `json:"department"`
	Partition  string `json:"partition"`
	QOS        string `json:"qos"`
	Image      string `json:"image"`
	// MPI is the job's MPI flavour ("openmpi", "mpich"; "" or "none" for
	// none). Jobs with MPI or more than one node get a private network.
	MPI string `json:"mpi,omitempty"`
	// ImageRef and ImageDigest are the catalog image the master resolved
	// Image to at submit ("department/name:tag", "sha256:..."): the job
	// runs that digest even if the tag moves later. Both empty for the
	// built-in tiny image.
	ImageRef    string `json:"imageRef,omitempty"`
	ImageDigest string `json:"imageDigest,omitempty"`
	// Datasets are the read-only datasets the job mounts, resolved to
	// digests at submit (like the image).
	Datasets []DatasetMount `json:"datasets,omitempty"`
	Request  Request        `json:"request"`
	Walltime time.Duration  `json:"walltime"`
	Retries  int            `json:"retries"`
	// SpecJSON is the canonical job spec (jobspec.Canonical) as submitted.
	SpecJSON []byte `json:"spec"`
	// SubmitDir is the submitter's working directory, kept for the record:
	// no compute host ever opens it (inputs travel as a file set).
	SubmitDir string `json:"submitDir,omitempty"`
	// Inputs is the file set ("sha256:...", package jobdata) of the job's
	// stageIn files in its department's data repository, checked by the
	// master at submit; InputBytes and InputFiles are its size. Empty
	// without stageIn.
	Inputs     string `json:"inputs,omitempty"`
	InputBytes int64  `json:"inputBytes,omitempty"`
	InputFiles int    `json:"inputFiles,omitempty"`
	// ArtifactsExpired is when the leader deleted the job's file sets
	// (inputs, outputs) from the store after the retention period; zero
	// while they are kept.
	ArtifactsExpired time.Time    `json:"artifactsExpired,omitzero"`
	DependsOn        []Dependency `json:"dependsOn,omitempty"`
	Array            *Array       `json:"array,omitempty"`

	State      JobState  `json:"state"`
	Reason     string    `json:"reason,omitempty"` // why pending, or why it ended
	SubmitTime time.Time `json:"submitTime"`
	StartTime  time.Time `json:"startTime,omitzero"`
	EndTime    time.Time `json:"endTime,omitzero"`
	ExitCode   int       `json:"exitCode"`
	Attempt    uint64    `json:"attempt"` // current attempt, starts at 1 when first placed
	Restarts   int       `json:"restarts"`
	// NextTask is the index of the next array task to start (lazy arrays).
	NextTask int64 `json:"nextTask,omitempty"`
	// TasksDone, TasksFailed count finished array tasks.
	TasksDone   int64 `json:"tasksDone,omitempty"`
	TasksFailed int64 `json:"tasksFailed,omitempty"`
	// RetryTasks are array tasks below NextTask to run again (a failure
	// with retries left, a lost node, a preemption), oldest first; the
	// scheduler starts them before new ones. TaskRestarts counts the
	// retries each task has used (only tasks that failed appear).
	RetryTasks   []int64       `json:"retryTasks,omitempty"`
	TaskRestarts map[int64]int `json:"taskRestarts,omitempty"`
	// NodeRequeues counts the attempts a node ended as AllocRequeued (it
	// could not start the job for a reason of its own); after
	// MaxNodeRequeues such an end counts as a failure.
	NodeRequeues int `json:"nodeRequeues,omitempty"`
}

// Networked reports whether the job's guests get a private network (and
// the remote-start launcher): MPI jobs and jobs of more than one node.
func (j *Job) Networked() bool {
	return j.Request.Nodes > 1 || j.MPI != "" && j.MPI != "none"
}

// JobKind is what makes two jobs of one user "the same kind of job" for
// runtime predictions: the same name, image, partition, shape and
// requested walltime. Users resubmit the same job with the same request
// again and again (Tsafrir, Etsion and Feitelson), so the last runs of a
// kind predict the next one far better than the user's last runs of any
// kind. It is comparable, so core.Schedule matches kinds without
// building strings.
type JobKind struct {
	// The numbers first: == compares in field order, and they differ
	// most often.
	Walltime     time.Duration `json:"walltime"`
	Nodes        int           `json:"nodes"`
	TasksPerNode int           `json:"tasksPerNode"`
	CPUsPerTask  int           `json:"cpusPerTask"`
	GPUs         int           `json:"gpus,omitempty"`
	Name         string        `json:"name,omitempty"`
	Image        string        `json:"image,omitempty"`
	Partition    string        `json:"partition,omitempty"`
}

// Kind returns j's kind. The FSM records it with each completed run and
// core.Schedule looks predictions up by it.
func (j *Job) Kind() JobKind {
	r := &j.Request
	return JobKind{Name: j.Name, Image: j.Image, Partition: j.Partition, Nodes: r.Nodes,
		TasksPerNode: r.TasksPerNode, CPUsPerTask: r.CPUsPerTask, GPUs: r.GPUs, Walltime: j.Walltime}
}

// Run is one completed job in its user's runtime history: its kind and how
// long it ran. The store keeps each user's last RunsKept runs (oldest
// first) and core.Schedule predicts runtimes from them
// (core.EstimatePredicted).
type Run struct {
	Kind    JobKind       `json:"kind"`
	Runtime time.Duration `json:"runtime"`
}

// RunsKept is how many runs per user the runtime history keeps: enough
// for a user's last two runs of each of the few kinds they alternate
// between. Part of the replicated state machine.
const RunsKept = 64

// WithRun returns runs with run appended, keeping the last keep runs (all
// of them for keep <= 0), in a new slice: runs itself is never modified,
// so a stored history may be shared. The store (state.Txn.RecordRuntime,
// keep RunsKept) and core.RecordRuntime both record runs with it.
func WithRun(runs []Run, run Run, keep int) []Run {
	from := 0
	if keep > 0 {
		from = max(len(runs)+1-keep, 0)
	}
	out := make([]Run, 0, len(runs)-from+1)
	return append(append(out, runs[from:]...), run)
}

// MaxNodeRequeues bounds how often one job goes back to the queue because
// a node could not start it (AllocRequeued) before that counts as a
// failure: a registry that serves a corrupt blob to every node must not
// requeue a job for ever. Part of the replicated state machine.
const MaxNodeRequeues = 3

// TasksLeft is how many array tasks are still to start: retries and those
// from NextTask on. 0 for plain jobs.
func (j *Job) TasksLeft() int64 {
	if j.Array == nil {
		return 0
	}
	return int64(len(j.RetryTasks)) + max(j.Array.Tasks()-j.NextTask, 0)
}

// TaskAt is the i-th task still to start (0 <= i < TasksLeft): the retries
// first, then NextTask, NextTask+1, ...
func (j *Job) TaskAt(i int64) int64 {
	if i < int64(len(j.RetryTasks)) {
		return j.RetryTasks[i]
	}
	return j.NextTask + i - int64(len(j.RetryTasks))
}

// TaskPending reports whether array task t is waiting to start.
func (j *Job) TaskPending(t int64) bool {
	if j.Array == nil || t < 0 || t >= j.Array.Tasks() {
		return false
	}
	return t >= j.NextTask || slices.Contains(j.RetryTasks, t)
}

// Copy returns a deep copy that shares no memory with j.
func (j *Job) Copy() *Job {
	c := *j
	c.SpecJSON = slices.Clone(j.SpecJSON)
	c.DependsOn = make([]Dependency, len(j.DependsOn))
	for i, d := range j.DependsOn {
		c.DependsOn[i] = Dependency{Kind: d.Kind, Jobs: slices.Clone(d.Jobs)}
	}
	if j.Array != nil {
		a := *j.Array
		c.Array = &a
	}
	c.RetryTasks = slices.Clone(j.RetryTasks)
	c.Datasets = slices.Clone(j.Datasets)
	c.TaskRestarts = maps.Clone(j.TaskRestarts)
	return &c
}

// Core is one logical host CPU.
type Core struct {
	ID   int `json:"id"`   // logical CPU number (as in /sys/devices/system/cpu/cpuN)
	NUMA int `json:"numa"` // NUMA node
	// PhysicalCore groups SMT siblings: logical CPUs with the same
	// (NUMA, PhysicalCore) share one physical core.
	PhysicalCore int `json:"physicalCore"`
}

// NUMANode is the memory of one NUMA node.
type NUMANode struct {
	ID           int   `json:"id"`
	MemoryMiB    int64 `json:"memoryMiB"`
	HugepagesMiB int64 `json:"hugepagesMiB"`
}

// GPU is one passthrough-capable GPU on a node.
type GPU struct {
	PCIAddress string `json:"pciAddress"` // 0000:3b:00.0, the GPU's key on its node
	UUID       string `json:"uuid,omitempty"`
	Model      string `json:"model"`
	MemoryMiB  int64  `json:"memoryMiB"`
	NUMA       int    `json:"numa"`
	IOMMUGroup int    `json:"iommuGroup"`
	// IOMMUShared is set when other GPUs of the node share this GPU's IOMMU
	// group (the same IOMMUGroup): they can only be passed through to one
	// guest together, so the scheduler gives out such GPUs as a whole group.
	IOMMUShared bool `json:"iommuShared,omitempty"`
	// Drained is non-empty when the GPU must not be given to jobs, and says
	// why: set by the agent from its inventory (e.g. a dirty IOMMU group).
	Drained string `json:"drained,omitempty"`
	// Health is non-empty when a health check (XID error, uncorrectable
	// ECC, fallen off the bus) took the GPU out of service. The master owns
	// it: it survives re-registration until an admin returns the GPU.
	Health string `json:"health,omitempty"`
	// Rejected is non-empty when the GPU's last acceptance run measured
	// below its model's median by more than the margin (the reason names
	// the workload). The master owns it like Health; a passing run clears it.
	Rejected string `json:"rejected,omitempty"`
}

// Unusable says why the GPU must not be given to jobs, or "".
func (g GPU) Unusable() string {
	switch {
	case g.Health != "":
		return g.Health
	case g.Drained != "":
		return g.Drained
	case g.Rejected != "":
		return g.Rejected
	}
	return ""
}

// NodeState is whether a node takes work.
type NodeState string

// Node states.
const (
	NodeReady    NodeState = "ready"
	NodeDraining NodeState = "draining" // runs what it has, takes nothing new
	NodeDown     NodeState = "down"     // missed its lease
)

// Node is one compute host, as its agent registered it.
type Node struct {
	Name       string     `json:"name"`
	Partition  string     `json:"partition,omitempty"`
	Hypervisor string     `json:"hypervisor"` // "kvm" or "tcg"
	Cores      []Core     `json:"cores"`
	NUMA       []NUMANode `json:"numa"`
	GPUs       []GPU      `json:"gpus,omitempty"`
	ScratchMiB int64      `json:"scratchMiB"`
	// ReservedCores are housekeeping cores never given to jobs.
	ReservedCores []int `json:"reservedCores,omitempty"`
	// Underlay is "IP:PORT" where the node's agent terminates the VXLAN
	// segments of multi-node job networks; "" when it has none (such a
	// node runs only single-node jobs' networks).
	Underlay string    `json:"underlay,omitempty"`
	State    NodeState `json:"state"`
	Reason   string    `json:"reason,omitempty"`
	LastSeen time.Time `json:"lastSeen"`
	// AcceptanceRun is the acceptance run the node's agent must do (nil
	// when none is pending); Acceptance the last finished one. The master
	// owns both: they survive re-registration.
	AcceptanceRun *AcceptanceRun `json:"acceptanceRun,omitempty"`
	Acceptance    *Acceptance    `json:"acceptance,omitempty"`
	// AcceptanceDrain is the Reason that acceptance drained the node with
	// ("" when it did not): a passing run readies the node only while
	// its Reason is still this one, so an admin's drain stays, and a node
	// back from down (or re-registered) stays drained with it.
	AcceptanceDrain string `json:"acceptanceDrain,omitempty"`
}

// AcceptanceRun asks a node's agent to run the acceptance suite (hpcbench
// on its CPU and each GPU) and report the results (`hpcd operator
// node-accept`).
type AcceptanceRun struct {
	// ID numbers the node's runs from 1; a report names the run it
	// answers, and a report for any other run is refused.
	ID        uint64    `json:"id"`
	Requested time.Time `json:"requested"`
	// Workloads is hpcbench's --workloads list ("" = all); Size its
	// --size ("" = the agent's default).
	Workloads string `json:"workloads,omitempty"`
	Size      string `json:"size,omitempty"`
}

// Acceptance is a node's last finished acceptance run: what was measured
// and what the master decided.
type Acceptance struct {
	RunID    uint64             `json:"runId"`
	Finished time.Time          `json:"finished"`
	Results  []AcceptanceResult `json:"results,omitempty"`
	// Failed is the node's drain reason ("" when its CPU passed); the
	// GPUs' reasons are in their Rejected fields.
	Failed string `json:"failed,omitempty"`
	// Error is the agent's reason when the suite could not run at all.
	Error string `json:"error,omitempty"`
}

// AcceptanceResult is one workload measured on one device of the node.
type AcceptanceResult struct {
	// Subject is "cpu" or the GPU's PCI address.
	Subject string `json:"subject"`
	// Model is the CPU model string or the GPU's inventory model.
	Model    string  `json:"model"`
	Workload string  `json:"workload"`
	Unit     string  `json:"unit"`
	Value    float64 `json:"value"`
	// Error says why the workload failed or did not validate.
	Error string `json:"error,omitempty"`
}

// Copy returns a deep copy that shares no memory with n.
func (n *Node) Copy() *Node {
	c := *n
	c.Cores = slices.Clone(n.Cores)
	c.NUMA = slices.Clone(n.NUMA)
	c.GPUs = slices.Clone(n.GPUs)
	c.ReservedCores = slices.Clone(n.ReservedCores)
	if n.AcceptanceRun != nil {
		r := *n.AcceptanceRun
		c.AcceptanceRun = &r
	}
	if n.Acceptance != nil {
		a := *n.Acceptance
		a.Results = slices.Clone(a.Results)
		c.Acceptance = &a
	}
	return &c
}

// MemoryMiB is the node's total memory over all NUMA nodes.
func (n *Node) MemoryMiB() int64 {
	var t int64
	for _, m := range n.NUMA {
		t += m.MemoryMiB
	}
	return t
}

// AllocState is the state of one allocation (one job on one node).
type AllocState string

// Allocation states, reported by agents.
const (
	AllocPending   AllocState = "pending" // placed, agent has not started it
	AllocStarting  AllocState = "starting"
	AllocRunning   AllocState = "running"
	AllocCompleted AllocState = "completed"
	AllocFailed    AllocState = "failed"
	AllocCancelled AllocState = "cancelled"
	AllocTimedOut  AllocState = "timeout"
	AllocLost      AllocState = "lost" // node went down
	// AllocPreempted: stopped to make room for a job of a higher QOS; the
	// job is requeued without using up a retry.
	AllocPreempted AllocState = "preempted"
	// AllocRequeued: the node could not start the job for a reason that is
	// neither the job's nor lasting (the registry served an image layer
	// whose bytes do not match its digest; no room for the image on the
	// node). The job goes back to the queue as a new attempt without using
	// a retry, at most MaxNodeRequeues times.
	AllocRequeued AllocState = "requeued"
)

// Terminal reports whether the allocation has ended.
func (s AllocState) Terminal() bool {
	switch s {
	case AllocCompleted, AllocFailed, AllocCancelled, AllocTimedOut, AllocLost, AllocPreempted, AllocRequeued:
		return true
	}
	return false
}

// Placement is the exact resources one job (or array task) gets on one node.
type Placement struct {
	Node      string   `json:"node"`
	Cores     []int    `json:"cores"`     // logical CPU ids, sorted
	NUMA      []int    `json:"numa"`      // NUMA nodes the memory comes from
	GPUs      []string `json:"gpus"`      // PCI addresses
	MemoryMiB int64    `json:"memoryMiB"` // same as the request
	Scratch   int64    `json:"scratchMiB"`
	Hugepages int64    `json:"hugepagesMiB"`
}

// Copy returns a deep copy.
func (p Placement) Copy() Placement {
	p.Cores = slices.Clone(p.Cores)
	p.NUMA = slices.Clone(p.NUMA)
	p.GPUs = slices.Clone(p.GPUs)
	return p
}

// MemoryShares splits MemoryMiB and HugepagesMiB over the placement's NUMA
// nodes, in p.NUMA order: an even split, the remainder going to the first
// nodes. The scheduler core and the VM builder both use this rule, so the
// memory a placement holds on each NUMA node is known without extra fields.
// It returns (regular, hugepages) per NUMA node, where regular excludes the
// hugepages; nil, nil when p.NUMA is empty.
func (p Placement) MemoryShares() (regular, hugepages []int64) {
	k := len(p.NUMA)
	if k == 0 {
		return nil, nil
	}
	return splitEven(p.MemoryMiB-p.Hugepages, k), splitEven(p.Hugepages, k)
}

func splitEven(total int64, k int) []int64 {
	out := make([]int64, k)
	q, r := total/int64(k), total%int64(k)
	for i := range out {
		out[i] = q
		if int64(i) < r {
			out[i]++
		}
	}
	return out
}

// AllocID names one allocation: "<job>.<task>.<rank>" style ids are built by the FSM.
type AllocID string

// Alloc is one job (or array task) placed on one node for one attempt.
type Alloc struct {
	ID        AllocID    `json:"id"`
	Job       JobID      `json:"job"`
	Task      int64      `json:"task"` // array task index; 0 for plain jobs
	Rank      int        `json:"rank"` // index of this node within the gang
	Attempt   uint64     `json:"attempt"`
	Placement Placement  `json:"placement"`
	State     AllocState `json:"state"`
	ExitCode  int        `json:"exitCode"`
	Reason    string     `json:"reason,omitempty"`
	Created   time.Time  `json:"created"`
	Started   time.Time  `json:"started,omitzero"`
	Ended     time.Time  `json:"ended,omitzero"`
	// Deadline is when the walltime runs out (Created + job walltime).
	Deadline time.Time `json:"deadline"`
	// StopRequested is set when the master wants the agent to stop this
	// allocation (cancel, a failed gang sibling); resources stay held until
	// the agent reports a terminal state.
	StopRequested bool `json:"stopRequested,omitempty"`
	// StopAsLost makes the agent's final report count as a lost node
	// (requeued per the job's retry policy) rather than a cancel: the
	// master stopped it because its hardware failed, not the user.
	StopAsLost bool `json:"stopAsLost,omitempty"`
	// StopAsPreempted makes the agent's final report count as a
	// preemption: the job is requeued and no retry is used up.
	StopAsPreempted bool `json:"stopAsPreempted,omitempty"`
	// BootSeconds and RunSeconds are reported by the agent when it ends.
	BootSeconds float64 `json:"bootSeconds,omitempty"`
	RunSeconds  float64 `json:"runSeconds,omitempty"`
	// GPUUsage is what the job did with its GPUs (from in-guest samples).
	GPUUsage *GPUUsage `json:"gpuUsage,omitempty"`
	// ImagePulled: the node pulled the job's catalog image for this
	// allocation (it was not in its cache).
	ImagePulled bool `json:"imagePulled,omitempty"`
	// Outputs is what the node uploaded of the job's stageOut files when
	// the allocation ended (nil: none, or no stageOut).
	Outputs *Outputs `json:"outputs,omitempty"`
	// NetSecret (hex) authenticates remote starts between the guests of a
	// networked job's attempt (the same in every allocation of the gang);
	// chosen by the leader (Start.NetSecret), only agents receive it.
	NetSecret string `json:"netSecret,omitempty"`
	// Speculative: started by a speculative start (Start.Speculative).
	// The core may preempt the gang once it runs past its prediction
	// into a starving job's reservation.
	Speculative bool `json:"speculative,omitempty"`
}

// GPUUsage is the measured GPU use of one allocation.
type GPUUsage struct {
	GPUHours        float64 `json:"gpuHours"`
	MeanUtilization float64 `json:"meanUtilization"` // 0..1
	EnergyJ         float64 `json:"energyJ"`
	Samples         int64   `json:"samples"`
}

// Copy returns a deep copy.
func (a *Alloc) Copy() *Alloc {
	c := *a
	c.Placement = a.Placement.Copy()
	if a.GPUUsage != nil {
		u := *a.GPUUsage
		c.GPUUsage = &u
	}
	return &c
}

// Start is one gang (all nodes of one job or array task) the plan starts now.
type Start struct {
	Job        JobID       `json:"job"`
	Task       int64       `json:"task"`
	Placements []Placement `json:"placements"` // one per node, len == Request.Nodes
	// NetSecret is the gang's launcher secret for a networked job: random
	// hex the leader adds before it commits the plan (the state machine
	// never invents randomness); "" otherwise.
	NetSecret string `json:"netSecret,omitempty"`
	// Speculative marks a start the core made on the job's prediction in
	// front of a starving job's reservation, where its walltime would not
	// fit (core.Config.SpeculativeBackfill); the state machine copies it
	// to the allocations (Alloc.Speculative).
	Speculative bool `json:"speculative,omitempty"`
}

// Preemption is one running gang (all allocations of one job task
// attempt) the plan stops and requeues to make room for job By.
type Preemption struct {
	Job     JobID     `json:"job"`
	Task    int64     `json:"task"`
	Attempt uint64    `json:"attempt"`
	Allocs  []AllocID `json:"allocs"`
	By      JobID     `json:"by"`
	Reason  string    `json:"reason"`
}

// Reservation is a future start the plan holds resources for (backfill).
type Reservation struct {
	Job   JobID     `json:"job"`
	At    time.Time `json:"at"`
	Nodes []string  `json:"nodes"`
	// Task is the array task the reservation is for (0 for plain jobs).
	Task int64 `json:"task,omitempty"`
	// End is when the reserved resources are expected back (At + estimate).
	End time.Time `json:"end,omitzero"`
	// Placements are the exact resources held from At, one per node in
	// Nodes order; backfilled starts never overlap them before End.
	Placements []Placement `json:"placements,omitempty"`
}

// Plan is the scheduler core's output for one cycle.
type Plan struct {
	Starts       []Start       `json:"starts"`
	Reservations []Reservation `json:"reservations,omitempty"`
	// Preemptions are running gangs to stop and requeue so that a job of a
	// higher QOS can start (Config.Preemption).
	Preemptions []Preemption `json:"preemptions,omitempty"`
	// Pending gives, for every job not started, why it waits.
	Pending map[JobID]string `json:"pending,omitempty"`
	// Recheck is the earliest time at which the plan may change although
	// nothing else does: a running job outliving its prediction on a node
	// a reservation waits for (its expected end, and the reservation,
	// move to its deadline) or a pending job reaching the starvation
	// threshold. Zero when none is known. The server's loop
	// runs a cycle every second anyway; hpcsim, whose cycles follow
	// events, wakes a cycle then.
	Recheck time.Time `json:"recheck,omitzero"`
}

// Outputs is the file set one allocation uploaded of its job's stageOut
// files (package jobdata): the agent reports it with the allocation's end,
// `hpcsub fetch` downloads it. Never modified once stored.
type Outputs struct {
	// Digest names the file set ("sha256:..."); empty when nothing was
	// uploaded (no stageOut source existed, or the upload failed).
	Digest string `json:"digest,omitempty"`
	// Repository is the registry repository that holds the set: the
	// job's own (jobdata.OutputRepositoryName). Empty for sets stored
	// before outputs had one, which lie in the department's repository
	// (jobdata.RepositoryName).
	Repository string `json:"repository,omitempty"`
	Bytes      int64  `json:"bytes,omitempty"`
	Files      int    `json:"files,omitempty"`
	// Missing lists the stageOut sources the job did not produce.
	Missing []string `json:"missing,omitempty"`
}
