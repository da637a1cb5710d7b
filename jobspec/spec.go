package jobspec

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Spec is one job.yaml, schema v1: what hpcsub reads, what the server stores
// (as CanonicalJSON) and what the scheduler and agents derive their requests
// from. Field names in YAML and JSON are the lowerCamelCase tags below.
//
// A Spec from Parse remembers where each value was written, so that Validate
// can give line:col; a Spec built in Go validates the same way without
// positions. Compare Specs with Equal, not ==/reflect.DeepEqual, because of
// that hidden position table.
type Spec struct {
	Name       string            `yaml:"name" json:"name" jsonschema:"required,minLength=1,maxLength=64,pattern=^[A-Za-z0-9._-]+$" jsonschema_description:"Job name: 1..64 of A-Z a-z 0-9 . _ -. Required."`
	Department string            `yaml:"department" json:"department" jsonschema:"maxLength=64,pattern=^[A-Za-z0-9._-]+$,default=default" jsonschema_description:"Fair-share account the job is charged to; also picks the department's image templates. Default \"default\"."`
	Image      string            `yaml:"image" json:"image" jsonschema:"maxLength=194,pattern=^([A-Za-z0-9._-]+/)?[A-Za-z0-9._-]+(:[A-Za-z0-9._-]+)?$,default=tiny" jsonschema_description:"Guest image: tiny (built in), department/name[:tag] from the image catalog (tag default latest; public/... for every department), or name[:tag] of the job's department or public; no '..'. Default \"tiny\"."`
	Partition  string            `yaml:"partition" json:"partition" jsonschema:"maxLength=64,pattern=^[A-Za-z0-9._-]+$,default=default" jsonschema_description:"Partition (group of hosts) to run in. Default \"default\"."`
	QOS        string            `yaml:"qos" json:"qos" jsonschema:"enum=low,enum=normal,enum=high,default=normal" jsonschema_description:"Quality of service: low, normal or high. Default normal."`
	Resources  Resources         `yaml:"resources" json:"resources" jsonschema_description:"What the job needs on each of its nodes."`
	Walltime   Duration          `yaml:"walltime" json:"walltime" jsonschema_description:"Wall-clock limit; the job is stopped when it runs longer. 1s..30d, default 1h."`
	Command    []string          `yaml:"command,omitempty" json:"command,omitempty" jsonschema:"minItems=1,maxItems=256" jsonschema_description:"Program and arguments (argv), run directly in the guest. Exactly one of command and script."`
	Script     string            `yaml:"script,omitempty" json:"script,omitempty" jsonschema:"maxLength=524288" jsonschema_description:"Shell script text, run by /bin/sh in the guest. Exactly one of command and script."`
	Env        map[string]string `yaml:"env,omitempty" json:"env,omitempty" jsonschema:"maxProperties=128" jsonschema_description:"Environment variables for the job. Names [A-Za-z_][A-Za-z0-9_]*, not starting with VHPC_ (reserved)."`
	MPI        string            `yaml:"mpi" json:"mpi" jsonschema:"enum=none,enum=openmpi,enum=mpich,default=none" jsonschema_description:"MPI flavour that launches the ranks across the job's nodes: none, openmpi or mpich. Default none."`
	StageIn    []Stage           `yaml:"stageIn,omitempty" json:"stageIn,omitempty" jsonschema:"maxItems=64" jsonschema_description:"Files or folders of the submit directory that hpcsub uploads with the job (content-addressed: what the cluster's store holds already is not sent again); every node of the job gets them in its job directory before the job starts."`
	StageOut   []Stage           `yaml:"stageOut,omitempty" json:"stageOut,omitempty" jsonschema:"maxItems=64" jsonschema_description:"Files or folders of the job directory uploaded to the cluster's store after the job ends (from the first node of a multi-node job); hpcsub --wait downloads them next to the job file, hpcsub fetch ID at any time."`
	Datasets   []string          `yaml:"datasets,omitempty" json:"datasets,omitempty" jsonschema:"maxItems=16" jsonschema_description:"Read-only datasets from the catalog (hpc data push), each mounted in the guest at /datasets/<name>: department/name[:tag] or name[:tag] of the job's department or public. Each node pulls a dataset once and keeps it in its cache."`
	Array      *Array            `yaml:"array,omitempty" json:"array,omitempty" jsonschema_description:"Makes this an array job over a range of frames (render jobs)."`
	DependsOn  []Dependency      `yaml:"dependsOn,omitempty" json:"dependsOn,omitempty" jsonschema:"maxItems=64" jsonschema_description:"Jobs that must end before this one starts."`
	Retries    int               `yaml:"retries" json:"retries" jsonschema:"minimum=0,maximum=10,default=0" jsonschema_description:"How many times a failed job is run again (for an array: each failed task). A lost node uses one; a job preempted by a higher QOS is requeued without using one. 0..10, default 0."`

	// src is where Parse found each value; nil for a Spec built in Go.
	src *source
}

// Resources is what a job needs on each node (memory, GPUs, disk are per node,
// not totals). The scheduler's model.Request is derived from it.
type Resources struct {
	Nodes        int      `yaml:"nodes" json:"nodes" jsonschema:"minimum=1,maximum=1024,default=1" jsonschema_description:"Number of nodes (guests). 1..1024, default 1."`
	TasksPerNode int      `yaml:"tasksPerNode" json:"tasksPerNode" jsonschema:"minimum=1,maximum=1024,default=1" jsonschema_description:"Tasks (MPI ranks) per node. 1..1024, default 1."`
	CPUsPerTask  int      `yaml:"cpusPerTask" json:"cpusPerTask" jsonschema:"minimum=1,maximum=1024,default=1" jsonschema_description:"CPU cores per task. 1..1024, default 1; tasksPerNode*cpusPerTask is at most 1024."`
	Memory       Quantity `yaml:"memory" json:"memory" jsonschema_description:"Memory per node. 64MiB..16TiB, default 512MiB."`
	GPUs         int      `yaml:"gpus" json:"gpus" jsonschema:"minimum=0,maximum=64,default=0" jsonschema_description:"GPUs per node, passed through to the guest. 0..64, default 0."`
	GPUModel     string   `yaml:"gpuModel,omitempty" json:"gpuModel,omitempty" jsonschema:"maxLength=64,pattern=^[A-Za-z0-9._-]+$" jsonschema_description:"GPU model, e.g. H100; empty means any model. Needs gpus > 0."`
	GPUMemory    Quantity `yaml:"gpuMemory,omitempty" json:"gpuMemory,omitempty" jsonschema_description:"Minimum memory per GPU, e.g. 80GiB; empty means any. Needs gpus > 0."`
	Scratch      Quantity `yaml:"scratch" json:"scratch" jsonschema_description:"Local scratch disk per node. 0..64TiB, default 1GiB."`
	Hugepages    Quantity `yaml:"hugepages,omitempty" json:"hugepages,omitempty" jsonschema_description:"Part of memory backed by 2MiB hugepages, per node; a multiple of 2MiB, at most memory. Default 0."`
	CrossNUMA    bool     `yaml:"crossNUMA" json:"crossNUMA" jsonschema:"default=false" jsonschema_description:"Allow cores and memory from NUMA nodes other than the GPUs' own when local ones are not free. Default false."`
}

// Stage is one staged file or folder: From is relative to the submit
// directory, To relative to the job directory (stageIn), or From relative
// to the job directory and To to the directory the outputs are fetched
// into (stageOut). In YAML a plain string "data/in.txt" means From = To.
type Stage struct {
	From string `yaml:"from" json:"from" jsonschema_description:"Source path, relative; no '..', not absolute."`
	To   string `yaml:"to" json:"to" jsonschema_description:"Destination path, relative; no '..', not absolute. Default: the same as from."`
}

// Array makes a job an array of tasks over render frames. Each task gets
// Chunk consecutive frames (of the range, honouring the step) and sees them as
// $VHPC_FRAME_FIRST and $VHPC_FRAME_LAST.
type Array struct {
	Frames   string `yaml:"frames" json:"frames" jsonschema:"pattern=^[0-9]+(-[0-9]+(:[0-9]+)?)?$" jsonschema_description:"Frame range: \"1-240\", \"1-240:2\" (every second frame) or one frame \"7\". Frames 0..10000000. Required."`
	Chunk    int    `yaml:"chunk" json:"chunk" jsonschema:"minimum=1,maximum=100000,default=1" jsonschema_description:"Frames per task. 1..100000, default 1."`
	Parallel int    `yaml:"parallel" json:"parallel" jsonschema:"minimum=0,maximum=100000,default=0" jsonschema_description:"Most tasks running at once; 0 means no limit. Default 0."`
}

// Range returns the parsed frame range of a.Frames: first and last frame and
// the step (1 when not given). It returns (0, 0, 0) when Frames does not
// parse; Validate reports why. The scheduler builds model.Array from it.
func (a *Array) Range() (first, last, step int64) {
	f, l, s, err := parseFrames(a.Frames)
	if err != nil {
		return 0, 0, 0
	}
	return f, l, s
}

// Tasks returns how many tasks the array has: ceil(frames / chunk), or 0 when
// the array does not validate.
func (a *Array) Tasks() int64 {
	first, last, step := a.Range()
	if step <= 0 || a.Chunk <= 0 || last < first {
		return 0
	}
	frames := (last-first)/step + 1
	return (frames + int64(a.Chunk) - 1) / int64(a.Chunk)
}

// parseFrames parses "N", "N-M" or "N-M:S".
func parseFrames(s string) (first, last, step int64, err error) {
	rng, st, hasStep := strings.Cut(s, ":")
	a, b, hasRange := strings.Cut(rng, "-")
	if !hasRange {
		b = a
		if hasStep {
			return 0, 0, 0, errBadFrames
		}
	}
	step = 1
	if first, err = atoiFrame(a); err != nil {
		return 0, 0, 0, err
	}
	if last, err = atoiFrame(b); err != nil {
		return 0, 0, 0, err
	}
	if hasStep {
		if step, err = atoiFrame(st); err != nil {
			return 0, 0, 0, err
		}
	}
	return first, last, step, nil
}

// atoiFrame parses a frame number or step: digits only, at most 18 of them.
func atoiFrame(s string) (int64, error) {
	if !allDigits(s) || len(s) > 18 {
		return 0, errBadFrames
	}
	return strconv.ParseInt(s, 10, 64)
}

// Dependency makes a job wait for other jobs, as Slurm's --dependency:
// afterok (the jobs ended successfully), afterany (the jobs ended, however),
// afternotok (the jobs ended in failure).
type Dependency struct {
	Type string   `yaml:"type" json:"type" jsonschema:"enum=afterok,enum=afterany,enum=afternotok,default=afterok" jsonschema_description:"afterok: start after the jobs succeeded; afterany: after they ended; afternotok: after they failed. Default afterok."`
	Jobs []uint64 `yaml:"jobs" json:"jobs" jsonschema:"minItems=1,maxItems=1024" jsonschema_description:"IDs of the jobs to wait for (as printed by hpcsub)."`
}

// Default values that Defaults fills in.
const (
	DefaultDepartment = "default"
	DefaultImage      = "tiny"
	DefaultPartition  = "default"
	DefaultQOS        = "normal"
	DefaultMPI        = "none"
	DefaultDependency = "afterok"
	DefaultWalltime   = Duration(time.Hour)
	DefaultMemory     = 512 * MiB
	DefaultScratch    = 1 * GiB
)

// Defaults fills every unset field with its default, in place, and turns
// empty lists and maps into nil so that equal specs compare equal. A field
// the job file set explicitly is left as written even when it is zero
// (nodes: 0 stays 0 and Validate rejects it); for a Spec built in Go, zero
// means unset. hpcsub, the server and Load call it before Validate.
func (s *Spec) Defaults() {
	setStr := func(path string, v *string, def string) {
		if *v == "" && !s.src.set(path) {
			*v = def
		}
	}
	setInt := func(path string, v *int, def int) {
		if *v == 0 && !s.src.set(path) {
			*v = def
		}
	}
	setQty := func(path string, v *Quantity, def Quantity) {
		if *v == 0 && !s.src.set(path) {
			*v = def
		}
	}
	setStr("department", &s.Department, DefaultDepartment)
	setStr("image", &s.Image, DefaultImage)
	setStr("partition", &s.Partition, DefaultPartition)
	setStr("qos", &s.QOS, DefaultQOS)
	setStr("mpi", &s.MPI, DefaultMPI)
	if s.Walltime == 0 && !s.src.set("walltime") {
		s.Walltime = DefaultWalltime
	}
	r := &s.Resources
	setInt("resources.nodes", &r.Nodes, 1)
	setInt("resources.tasksPerNode", &r.TasksPerNode, 1)
	setInt("resources.cpusPerTask", &r.CPUsPerTask, 1)
	setQty("resources.memory", &r.Memory, DefaultMemory)
	setQty("resources.scratch", &r.Scratch, DefaultScratch)
	if s.Array != nil {
		setInt("array.chunk", &s.Array.Chunk, 1)
	}
	for _, list := range []struct {
		name   string
		stages []Stage
	}{{"stageIn", s.StageIn}, {"stageOut", s.StageOut}} {
		for i := range list.stages {
			st := &list.stages[i]
			if st.To == "" && !s.src.set(list.name+"["+strconv.Itoa(i)+"].to") {
				st.To = st.From
			}
		}
	}
	for i := range s.DependsOn {
		setStr("dependsOn["+strconv.Itoa(i)+"].type", &s.DependsOn[i].Type, DefaultDependency)
		if len(s.DependsOn[i].Jobs) == 0 {
			s.DependsOn[i].Jobs = nil
		}
	}
	if len(s.Command) == 0 {
		s.Command = nil
	}
	if len(s.Env) == 0 {
		s.Env = nil
	}
	if len(s.Datasets) == 0 {
		s.Datasets = nil
	}
	if len(s.StageIn) == 0 {
		s.StageIn = nil
	}
	if len(s.StageOut) == 0 {
		s.StageOut = nil
	}
	if len(s.DependsOn) == 0 {
		s.DependsOn = nil
	}
}

// Clone returns a deep copy of s that shares no mutable memory with it (the
// position table from Parse is immutable and shared).
func (s *Spec) Clone() *Spec {
	c := *s
	c.Command = slices.Clone(s.Command)
	c.Env = maps.Clone(s.Env)
	c.StageIn = slices.Clone(s.StageIn)
	c.StageOut = slices.Clone(s.StageOut)
	c.Datasets = slices.Clone(s.Datasets)
	if s.Array != nil {
		a := *s.Array
		c.Array = &a
	}
	if s.DependsOn != nil {
		c.DependsOn = make([]Dependency, len(s.DependsOn))
		for i, d := range s.DependsOn {
			c.DependsOn[i] = Dependency{Type: d.Type, Jobs: slices.Clone(d.Jobs)}
		}
	}
	return &c
}

// Equal reports whether s and o describe the same job, ignoring where their
// values were written. Nil and empty lists and maps are equal.
func (s *Spec) Equal(o *Spec) bool {
	if s == nil || o == nil {
		return s == o
	}
	a, b := *s, *o
	a.src, b.src = nil, nil
	if !slices.Equal(a.Command, b.Command) || !maps.Equal(a.Env, b.Env) ||
		!slices.Equal(a.StageIn, b.StageIn) || !slices.Equal(a.StageOut, b.StageOut) || !slices.Equal(a.Datasets, b.Datasets) ||
		!slices.EqualFunc(a.DependsOn, b.DependsOn, func(x, y Dependency) bool {
			return x.Type == y.Type && slices.Equal(x.Jobs, y.Jobs)
		}) {
		return false
	}
	if (a.Array == nil) != (b.Array == nil) || (a.Array != nil && *a.Array != *b.Array) {
		return false
	}
	return a.Name == b.Name && a.Department == b.Department && a.Image == b.Image &&
		a.Partition == b.Partition && a.QOS == b.QOS && a.Resources == b.Resources &&
		a.Walltime == b.Walltime && a.Script == b.Script && a.MPI == b.MPI && a.Retries == b.Retries
}
