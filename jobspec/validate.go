package jobspec

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on every number and string of a Spec. They are part of the schema:
// the README lists them, and the server relies on them (a valid Spec is small).
const (
	MaxDatasets      = 16       // datasets per job
	MaxNameLen       = 64       // name, department, partition, gpuModel, each part of image (department, name, tag)
	MaxNodes         = 1024     // resources.nodes
	MaxTasksPerNode  = 1024     // resources.tasksPerNode
	MaxCPUsPerTask   = 1024     // resources.cpusPerTask
	MaxCoresPerNode  = 1024     // tasksPerNode * cpusPerTask
	MaxGPUs          = 64       // resources.gpus
	MinMemory        = 64 * MiB // resources.memory
	MaxMemory        = 16 * TiB // resources.memory
	MaxGPUMemory     = 1 * TiB  // resources.gpuMemory
	MaxScratch       = 64 * TiB // resources.scratch
	HugepageSize     = 2 * MiB  // resources.hugepages is a multiple of this
	MaxWalltime      = Duration(30 * Day)
	MaxArgs          = 256       // command items
	MaxArgLen        = 32 << 10  // bytes per command item
	MaxCommandBytes  = 128 << 10 // all command items together
	MaxScriptBytes   = 512 << 10 // script
	MaxEnvVars       = 128       // env entries
	MaxEnvNameLen    = 128       // env variable name
	MaxEnvValueLen   = 32 << 10  // env value
	MaxEnvBytes      = 128 << 10 // all names and values together
	MaxStages        = 64        // stageIn, stageOut, each
	MaxStagePathLen  = 1024      // a staging path
	MaxFrame         = 10_000_000
	MaxChunk         = 100_000
	MaxParallel      = 100_000
	MaxDependencies  = 64   // dependsOn entries
	MaxDependencyIDs = 1024 // job IDs over all dependsOn entries
	MaxRetries       = 10
)

// ReservedEnvPrefix starts the names of variables set by vhpc itself
// (VHPC_FRAME_FIRST, VHPC_JOB_ID, ...); a job may not set them.
const ReservedEnvPrefix = "VHPC_"

// Allowed values of the enumerated fields (immutable tables; the schema and
// README list them too).
var (
	qosValues        = []string{"low", "normal", "high"}
	mpiValues        = []string{"none", "openmpi", "mpich"}
	dependencyValues = []string{"afterok", "afterany", "afternotok"}
)

var errBadFrames = fmt.Errorf("want \"FIRST-LAST\" or \"FIRST-LAST:STEP\" like \"1-240\" or \"1-240:2\", or one frame \"7\"")

// Validate checks every rule of the schema and returns all violations as
// Problems, with positions when s came from Parse. It expects Defaults to
// have run (Load does both): an unset field is a violation here. It does not
// change s. hpcsub calls it before submitting and the server again on
// receipt; a Spec that validates is within every limit above.
func (s *Spec) Validate() error {
	v := &validator{src: s.src}
	v.spec(s)
	return v.probs.err()
}

// validator collects Problems, positioned from the Spec's source.
type validator struct {
	src   *source
	probs Problems
}

func (v *validator) add(path, value, format string, args ...any) {
	line, col := v.src.at(path)
	v.probs = append(v.probs, Problem{
		File: v.src.filename(), Line: line, Col: col,
		Path: path, Value: short(value), Msg: fmt.Sprintf(format, args...),
	})
}

func (v *validator) spec(s *Spec) {
	v.name("name", s.Name, true)
	v.name("department", s.Department, true)
	v.image("image", s.Image)
	v.name("partition", s.Partition, true)
	v.enum("qos", s.QOS, qosValues)
	v.resources("resources", &s.Resources)
	v.walltime("walltime", s.Walltime)
	v.program(s)
	v.env("env", s.Env)
	v.enum("mpi", s.MPI, mpiValues)
	v.stages("stageIn", s.StageIn)
	v.stages("stageOut", s.StageOut)
	v.datasets("datasets", s.Datasets)
	if s.Array != nil {
		v.array("array", s.Array)
	}
	v.dependencies("dependsOn", s.DependsOn)
	v.intRange("retries", s.Retries, 0, MaxRetries)
}

// nameChar reports whether c may appear in names: [A-Za-z0-9._-].
func nameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// nameProblem returns what is wrong with a name, or "".
func nameProblem(s string) string {
	if s == "" {
		return "is empty"
	}
	if len(s) > MaxNameLen {
		return fmt.Sprintf("is %d bytes long; the most is %d", len(s), MaxNameLen)
	}
	for i := 0; i < len(s); i++ {
		if !nameChar(s[i]) {
			r, _ := utf8.DecodeRuneInString(s[i:])
			return fmt.Sprintf("has %q", r)
		}
	}
	if s == "." || s == ".." {
		return "is not a name"
	}
	return ""
}

const nameRule = "want 1..64 of letters, digits, '.', '_', '-'"

func (v *validator) name(p, s string, required bool) {
	if s == "" && !required {
		return
	}
	if s == "" {
		v.add(p, s, "is required; %s", nameRule)
		return
	}
	if why := nameProblem(s); why != "" {
		v.add(p, s, "%s %s; %s", quote(s), why, nameRule)
	}
}

func (v *validator) image(p, s string) {
	const rule = "want tiny (the built-in image), department/name[:tag] (e.g. chemistry/lammps:2024.08, public/python) " +
		"or name[:tag] of your department's or a public image; each part 1..64 of letters, digits, '.', '_', '-', no '..'"
	if s == "" {
		v.add(p, s, "is required; %s", rule)
		return
	}
	if why := catalogRefProblem(s); why != "" {
		v.add(p, s, "%s %s; %s", quote(s), why, rule)
	}
}

// datasets checks the datasets list: at most MaxDatasets catalog refs, no
// dataset twice (each is mounted at /datasets/<name>).
func (v *validator) datasets(p string, refs []string) {
	const rule = "want department/name[:tag] (e.g. physics/ref-genome:v3) or name[:tag] of your department's or a public dataset; " +
		"each part 1..64 of letters, digits, '.', '_', '-', no '..'"
	if len(refs) > MaxDatasets {
		v.add(p, "", "has %d entries; the most is %d", len(refs), MaxDatasets)
	}
	names := map[string]bool{}
	for i, ref := range refs {
		ip := p + "[" + strconv.Itoa(i) + "]"
		if why := catalogRefProblem(ref); why != "" {
			v.add(ip, ref, "%s %s; %s", quote(ref), why, rule)
			continue
		}
		name := DatasetName(ref)
		if names[name] {
			v.add(ip, ref, "%s: a dataset named %s is listed twice; each is mounted at /datasets/<name>", quote(ref), name)
		}
		names[name] = true
	}
}

// DatasetName is where a dataset ref is mounted in the guest:
// /datasets/<name> (the ref's name, without department and tag).
func DatasetName(ref string) string {
	if _, after, found := strings.Cut(ref, "/"); found {
		ref = after
	}
	name, _, _ := strings.Cut(ref, ":")
	return name
}

// catalogRefProblem says what is wrong with an image or dataset ref
// ("department/name[:tag]" or "name[:tag]"), or "".
func catalogRefProblem(s string) string {
	if s == "" {
		return "is empty"
	}
	var why string
	rest := s
	if strings.Count(s, "/") > 1 {
		why = "has '/' more than once"
	} else if dept, after, found := strings.Cut(s, "/"); found {
		rest = after
		if why = nameProblem(dept); why != "" {
			why = "department " + why
		}
	}
	name, tag, hasTag := strings.Cut(rest, ":")
	if why == "" {
		why = nameProblem(name)
	}
	if why == "" && hasTag {
		why = nameProblem(tag)
		if why != "" {
			why = "tag " + why
		}
	}
	if why == "" && strings.Contains(s, "..") {
		why = "has \"..\""
	}
	return why
}

func (v *validator) enum(p, s string, allowed []string) {
	if !slices.Contains(allowed, s) {
		if s == "" {
			v.add(p, s, "is empty; want one of %s", strings.Join(allowed, ", "))
			return
		}
		v.add(p, s, "%s is not allowed; want one of %s", quote(s), strings.Join(allowed, ", "))
	}
}

func (v *validator) intRange(p string, n, lo, hi int) {
	val := strconv.Itoa(n)
	switch {
	case n < 0 && lo >= 0:
		v.add(p, val, "%d is negative; want %d..%d", n, lo, hi)
	case n < lo:
		v.add(p, val, "%d is too small; want %d..%d", n, lo, hi)
	case n > hi:
		v.add(p, val, "%d is too large; want %d..%d", n, lo, hi)
	}
}

func (v *validator) qtyRange(p string, q, lo, hi Quantity) {
	switch {
	case q < 0:
		v.add(p, q.String(), "%s is negative; want %s..%s", q, lo, hi)
	case q < lo:
		v.add(p, q.String(), "%s is too small; want %s..%s", q, lo, hi)
	case q > hi:
		v.add(p, q.String(), "%s is too large; want %s..%s", q, lo, hi)
	}
}

func (v *validator) resources(p string, r *Resources) {
	v.intRange(p+".nodes", r.Nodes, 1, MaxNodes)
	v.intRange(p+".tasksPerNode", r.TasksPerNode, 1, MaxTasksPerNode)
	v.intRange(p+".cpusPerTask", r.CPUsPerTask, 1, MaxCPUsPerTask)
	if r.TasksPerNode > 0 && r.CPUsPerTask > 0 && r.TasksPerNode <= MaxTasksPerNode && r.CPUsPerTask <= MaxCPUsPerTask {
		if cores := r.TasksPerNode * r.CPUsPerTask; cores > MaxCoresPerNode {
			v.add(p+".cpusPerTask", strconv.Itoa(r.CPUsPerTask),
				"tasksPerNode*cpusPerTask is %d*%d = %d cores per node; the most is %d", r.TasksPerNode, r.CPUsPerTask, cores, MaxCoresPerNode)
		}
	}
	v.qtyRange(p+".memory", r.Memory, MinMemory, MaxMemory)
	v.intRange(p+".gpus", r.GPUs, 0, MaxGPUs)
	if r.GPUModel != "" {
		if why := nameProblem(r.GPUModel); why != "" {
			v.add(p+".gpuModel", r.GPUModel, "%s %s; want a model name like H100 or A100-80GB", quote(r.GPUModel), why)
		} else if r.GPUs == 0 {
			v.add(p+".gpuModel", r.GPUModel, "is set but gpus is 0; set gpus: 1 or more, or remove gpuModel")
		}
	}
	if r.GPUMemory != 0 {
		v.qtyRange(p+".gpuMemory", r.GPUMemory, 1, MaxGPUMemory)
		if r.GPUs == 0 && r.GPUMemory > 0 {
			v.add(p+".gpuMemory", r.GPUMemory.String(), "is set but gpus is 0; set gpus: 1 or more, or remove gpuMemory")
		}
	}
	v.qtyRange(p+".scratch", r.Scratch, 0, MaxScratch)
	if r.Hugepages != 0 {
		switch {
		case r.Hugepages < 0:
			v.add(p+".hugepages", r.Hugepages.String(), "%s is negative; want 0..memory", r.Hugepages)
		case r.Hugepages > r.Memory:
			v.add(p+".hugepages", r.Hugepages.String(), "%s is more than memory (%s); want at most memory", r.Hugepages, r.Memory)
		case r.Hugepages%HugepageSize != 0:
			v.add(p+".hugepages", r.Hugepages.String(), "%s is not a multiple of the %s hugepage size", r.Hugepages, HugepageSize)
		}
	}
}

func (v *validator) walltime(p string, d Duration) {
	switch {
	case d < 0:
		v.add(p, d.String(), "%s is negative; want 1s..%s", d, MaxWalltime)
	case d < Duration(time.Second):
		v.add(p, d.String(), "%s is too short; want 1s..%s", d, MaxWalltime)
	case d > MaxWalltime:
		v.add(p, d.String(), "%s is too long; want 1s..%s", d, MaxWalltime)
	case time.Duration(d)%time.Second != 0:
		v.add(p, d.String(), "%s is not whole seconds", d)
	}
}

// program checks command and script: exactly one, within limits.
func (v *validator) program(s *Spec) {
	hasCmd, hasScript := len(s.Command) > 0, s.Script != ""
	switch {
	case hasCmd && hasScript:
		v.add("script", s.Script, "both command and script are set; want exactly one (command runs a program, script runs shell text)")
	case !hasCmd && !hasScript:
		v.add("command", "", "neither command nor script is set; want exactly one, e.g. command: [\"/bin/sh\", \"-c\", \"echo hi\"] or script: |")
	}
	if len(s.Command) > MaxArgs {
		v.add("command", strconv.Itoa(len(s.Command)), "has %d arguments; the most is %d", len(s.Command), MaxArgs)
	}
	total := 0
	for i, a := range s.Command {
		p := "command[" + strconv.Itoa(i) + "]"
		total += len(a)
		switch {
		case i == 0 && a == "":
			v.add(p, a, "the program is empty; want a path like /bin/sh")
		case len(a) > MaxArgLen:
			v.add(p, a, "is %d bytes; the most is %d per argument", len(a), MaxArgLen)
		case strings.IndexByte(a, 0) >= 0:
			v.add(p, a, "contains a NUL byte")
		}
	}
	if total > MaxCommandBytes {
		v.add("command", "", "arguments total %d bytes; the most is %d (put long input in a stageIn file)", total, MaxCommandBytes)
	}
	if hasScript {
		switch {
		case len(s.Script) > MaxScriptBytes:
			v.add("script", "", "is %d bytes; the most is %d (stage a script file in and run it)", len(s.Script), MaxScriptBytes)
		case strings.IndexByte(s.Script, 0) >= 0:
			v.add("script", "", "contains a NUL byte")
		case strings.TrimSpace(s.Script) == "":
			v.add("script", "", "is only white space; want shell commands")
		}
	}
}

// envNameProblem returns what is wrong with an environment variable name, or "".
func envNameProblem(k string) string {
	if k == "" {
		return "is empty"
	}
	if len(k) > MaxEnvNameLen {
		return fmt.Sprintf("is %d bytes long; the most is %d", len(k), MaxEnvNameLen)
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
		if !letter && (i == 0 || c < '0' || c > '9') {
			r, _ := utf8.DecodeRuneInString(k[i:])
			return fmt.Sprintf("has %q", r)
		}
	}
	if strings.HasPrefix(strings.ToUpper(k), ReservedEnvPrefix) {
		return "starts with " + ReservedEnvPrefix + ", which is reserved for variables vhpc sets"
	}
	return ""
}

func (v *validator) env(p string, env map[string]string) {
	if len(env) > MaxEnvVars {
		v.add(p, strconv.Itoa(len(env)), "has %d variables; the most is %d", len(env), MaxEnvVars)
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	slices.Sort(keys) // deterministic order of problems
	total := 0
	for _, k := range keys {
		val := env[k]
		kp := p + "." + k
		total += len(k) + len(val)
		if why := envNameProblem(k); why != "" {
			v.add(kp, k, "variable name %s %s; want [A-Za-z_][A-Za-z0-9_]*", quote(k), why)
			continue
		}
		switch {
		case len(val) > MaxEnvValueLen:
			v.add(kp, val, "value is %d bytes; the most is %d", len(val), MaxEnvValueLen)
		case strings.IndexByte(val, 0) >= 0:
			v.add(kp, val, "value contains a NUL byte")
		}
	}
	if total > MaxEnvBytes {
		v.add(p, "", "names and values total %d bytes; the most is %d", total, MaxEnvBytes)
	}
}

// stagePathProblem returns what is wrong with a staging path, or "".
func stagePathProblem(s string) string {
	switch {
	case s == "":
		return "is empty"
	case len(s) > MaxStagePathLen:
		return fmt.Sprintf("is %d bytes long; the most is %d", len(s), MaxStagePathLen)
	case strings.IndexByte(s, 0) >= 0:
		return "contains a NUL byte"
	case strings.HasPrefix(s, "/"):
		return "is absolute"
	case slices.Contains(strings.Split(s, "/"), ".."):
		return "has a \"..\" element"
	}
	clean := path.Clean(s)
	switch {
	case clean == ".":
		return "names the whole job directory"
	case clean == ".." || strings.HasPrefix(clean, "../") || path.IsAbs(clean):
		return "escapes the job directory"
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Sprintf("has the control character %q", r)
		}
	}
	return ""
}

func (v *validator) stages(p string, stages []Stage) {
	if len(stages) > MaxStages {
		v.add(p, strconv.Itoa(len(stages)), "has %d entries; the most is %d", len(stages), MaxStages)
		return
	}
	const rule = "want a relative path inside the job directory, without \"..\""
	for i, st := range stages {
		ip := p + "[" + strconv.Itoa(i) + "]"
		if why := stagePathProblem(st.From); why != "" {
			v.add(ip+".from", st.From, "%s %s; %s", quote(st.From), why, rule)
		}
		if st.To != st.From { // the same path is reported once, as from
			if why := stagePathProblem(st.To); why != "" {
				v.add(ip+".to", st.To, "%s %s; %s", quote(st.To), why, rule)
			}
		}
	}
}

func (v *validator) array(p string, a *Array) {
	if a.Frames == "" {
		v.add(p+".frames", "", "is required; %s", errBadFrames)
	} else if first, last, step, err := parseFrames(a.Frames); err != nil {
		v.add(p+".frames", a.Frames, "%s is not a frame range; %s", quote(a.Frames), err)
	} else {
		switch {
		case last > MaxFrame:
			v.add(p+".frames", a.Frames, "%s: frame %d is too large; frames are 0..%d", quote(a.Frames), last, MaxFrame)
		case first > last:
			v.add(p+".frames", a.Frames, "%s: first frame %d is after the last %d; want FIRST <= LAST", quote(a.Frames), first, last)
		case step < 1 || step > MaxFrame:
			v.add(p+".frames", a.Frames, "%s: step %d is out of range; want 1..%d", quote(a.Frames), step, MaxFrame)
		}
	}
	v.intRange(p+".chunk", a.Chunk, 1, MaxChunk)
	v.intRange(p+".parallel", a.Parallel, 0, MaxParallel)
}

func (v *validator) dependencies(p string, deps []Dependency) {
	if len(deps) > MaxDependencies {
		v.add(p, strconv.Itoa(len(deps)), "has %d entries; the most is %d", len(deps), MaxDependencies)
		return
	}
	total := 0
	for i, d := range deps {
		ip := p + "[" + strconv.Itoa(i) + "]"
		v.enum(ip+".type", d.Type, dependencyValues)
		if len(d.Jobs) == 0 {
			v.add(ip+".jobs", "", "is empty; want a list of job IDs like [12, 13]")
		}
		total += len(d.Jobs)
		for j, id := range d.Jobs {
			if id == 0 {
				v.add(ip+".jobs["+strconv.Itoa(j)+"]", "0", "0 is not a job ID; IDs start at 1")
			}
		}
	}
	if total > MaxDependencyIDs {
		v.add(p, strconv.Itoa(total), "lists %d job IDs in all; the most is %d", total, MaxDependencyIDs)
	}
}
