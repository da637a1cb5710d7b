package jobspec

import (
	"errors"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// field is one known key of a YAML mapping and how to decode its value into T.
// The tables below are the single list of accepted keys; a test checks them
// against the yaml tags of the Go types.
type field[T any] struct {
	name string
	dec  func(d *decoder, v *T, path string, n *yaml.Node)
}

var specFields = []field[Spec]{
	{"name", func(d *decoder, s *Spec, p string, n *yaml.Node) { d.str(&s.Name, p, n) }},
	{"department", func(d *decoder, s *Spec, p string, n *yaml.Node) { d.str(&s.Department, p, n) }},
	{"image", func(d *decoder, s *Spec, p string, n *yaml.Node) { d.str(&s.Image, p, n) }},
	{"partition", func(d *decoder, s *Spec, p string, n *yaml.Node) { d.str(&s.Partition, p, n) }},
	{"qos", func(d *decoder, s *Spec, p string, n *yaml.Node) { d.str(&s.QOS, p, n) }},
	{"resources", func(d *decoder, s *Spec, p string, n *yaml.Node) {
		decodeFields(d, &s.Resources, p, n, resourcesFields)
	}},
	{"walltime", func(d *decoder, s *Spec, p string, n *yaml.Node) { d.duration(&s.Walltime, p, n) }},
	{"command", func(d *decoder, s *Spec, p string, n *yaml.Node) {
		if n.Kind == yaml.ScalarNode {
			d.problem(n, p, n.Value, "%s is a string; want a list of arguments like [\"/bin/sh\", \"-c\", \"...\"], or use script: for shell text", quote(n.Value))
			return
		}
		d.list(p, n, func(i int, ip string, item *yaml.Node) {
			var arg string
			d.str(&arg, ip, item)
			s.Command = append(s.Command, arg)
		})
	}},
	{"script", func(d *decoder, s *Spec, p string, n *yaml.Node) { d.str(&s.Script, p, n) }},
	{"env", func(d *decoder, s *Spec, p string, n *yaml.Node) { d.env(s, p, n) }},
	{"mpi", func(d *decoder, s *Spec, p string, n *yaml.Node) { d.str(&s.MPI, p, n) }},
	{"stageIn", func(d *decoder, s *Spec, p string, n *yaml.Node) { s.StageIn = d.stages(p, n) }},
	{"stageOut", func(d *decoder, s *Spec, p string, n *yaml.Node) { s.StageOut = d.stages(p, n) }},
	{"datasets", func(d *decoder, s *Spec, p string, n *yaml.Node) {
		d.list(p, n, func(i int, ip string, item *yaml.Node) {
			var ref string
			d.str(&ref, ip, item)
			s.Datasets = append(s.Datasets, ref)
		})
	}},
	{"array", func(d *decoder, s *Spec, p string, n *yaml.Node) {
		s.Array = &Array{}
		decodeFields(d, s.Array, p, n, arrayFields)
	}},
	{"dependsOn", func(d *decoder, s *Spec, p string, n *yaml.Node) {
		d.list(p, n, func(i int, ip string, item *yaml.Node) {
			var dep Dependency
			decodeFields(d, &dep, ip, item, dependencyFields)
			s.DependsOn = append(s.DependsOn, dep)
		})
	}},
	{"retries", func(d *decoder, s *Spec, p string, n *yaml.Node) { d.integer(&s.Retries, p, n, 0, MaxRetries) }},
}

var resourcesFields = []field[Resources]{
	{"nodes", func(d *decoder, r *Resources, p string, n *yaml.Node) { d.integer(&r.Nodes, p, n, 1, MaxNodes) }},
	{"tasksPerNode", func(d *decoder, r *Resources, p string, n *yaml.Node) {
		d.integer(&r.TasksPerNode, p, n, 1, MaxTasksPerNode)
	}},
	{"cpusPerTask", func(d *decoder, r *Resources, p string, n *yaml.Node) {
		d.integer(&r.CPUsPerTask, p, n, 1, MaxCPUsPerTask)
	}},
	{"memory", func(d *decoder, r *Resources, p string, n *yaml.Node) { d.quantity(&r.Memory, p, n) }},
	{"gpus", func(d *decoder, r *Resources, p string, n *yaml.Node) { d.integer(&r.GPUs, p, n, 0, MaxGPUs) }},
	{"gpuModel", func(d *decoder, r *Resources, p string, n *yaml.Node) { d.str(&r.GPUModel, p, n) }},
	{"gpuMemory", func(d *decoder, r *Resources, p string, n *yaml.Node) { d.quantity(&r.GPUMemory, p, n) }},
	{"scratch", func(d *decoder, r *Resources, p string, n *yaml.Node) { d.quantity(&r.Scratch, p, n) }},
	{"hugepages", func(d *decoder, r *Resources, p string, n *yaml.Node) { d.quantity(&r.Hugepages, p, n) }},
	{"crossNUMA", func(d *decoder, r *Resources, p string, n *yaml.Node) { d.boolean(&r.CrossNUMA, p, n) }},
}

var stageFields = []field[Stage]{
	{"from", func(d *decoder, st *Stage, p string, n *yaml.Node) { d.str(&st.From, p, n) }},
	{"to", func(d *decoder, st *Stage, p string, n *yaml.Node) { d.str(&st.To, p, n) }},
}

var arrayFields = []field[Array]{
	{"frames", func(d *decoder, a *Array, p string, n *yaml.Node) { d.str(&a.Frames, p, n) }},
	{"chunk", func(d *decoder, a *Array, p string, n *yaml.Node) { d.integer(&a.Chunk, p, n, 1, MaxChunk) }},
	{"parallel", func(d *decoder, a *Array, p string, n *yaml.Node) {
		d.integer(&a.Parallel, p, n, 0, MaxParallel)
	}},
}

var dependencyFields = []field[Dependency]{
	{"type", func(d *decoder, dep *Dependency, p string, n *yaml.Node) { d.str(&dep.Type, p, n) }},
	{"jobs", func(d *decoder, dep *Dependency, p string, n *yaml.Node) {
		if n.Kind == yaml.ScalarNode { // a single job: "jobs: 12"
			dep.Jobs = append(dep.Jobs, d.jobID(p+"[0]", n))
			return
		}
		d.list(p, n, func(i int, ip string, item *yaml.Node) {
			dep.Jobs = append(dep.Jobs, d.jobID(ip, item))
		})
	}},
}

// keyHints maps names used by other schedulers, or common slips, to our field.
// A hint is only offered when the field exists where the key was written.
var keyHints = map[string]string{
	"cmd": "command", "args": "command", "argv": "command", "exec": "command",
	"time": "walltime", "timelimit": "walltime", "timeout": "walltime",
	"queue": "partition", "account": "department", "dept": "department",
	"dependencies": "dependsOn", "dependency": "dependsOn", "after": "dependsOn",
	"mem": "memory", "ram": "memory", "gpu": "gpus", "gres": "gpus",
	"ntasks": "tasksPerNode", "cpus": "cpusPerTask", "threads": "cpusPerTask",
	"disk": "scratch", "tmp": "scratch", "environment": "env",
	"retry": "retries", "maxretries": "retries", "container": "image",
}

// decodeFields decodes mapping n into v using the known fields, reporting
// keys that are unknown (with a suggestion), duplicated or not plain strings.
// A null value leaves the field unset.
func decodeFields[T any](d *decoder, v *T, path string, n *yaml.Node, fields []field[T]) {
	if n.Kind != yaml.MappingNode {
		d.problem(n, path, n.Value, "is %s; want a mapping with fields %s", kindName(n), fieldList(fields))
		return
	}
	seen := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.problem(k, path, "", "field name is %s; want a plain name", kindName(k))
			continue
		}
		p := joinPath(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.problem(k, p, k.Value, "duplicate field; first set at line %d", first.Line)
			continue
		}
		seen[k.Value] = k
		f := findField(fields, k.Value)
		if f == nil {
			d.problem(k, p, k.Value, "%s", unknownFieldMsg(path, k.Value, fields))
			continue
		}
		if isNull(val) {
			continue
		}
		d.pos[p] = position{val.Line, val.Column}
		f.dec(d, v, p, val)
	}
}

func findField[T any](fields []field[T], name string) *field[T] {
	for i := range fields {
		if fields[i].name == name {
			return &fields[i]
		}
	}
	return nil
}

func fieldList[T any](fields []field[T]) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	return strings.Join(names, ", ")
}

// unknownFieldMsg explains an unknown key: the closest known field if there
// is one, the right place for a resources field written at the top, or the
// list of known fields.
func unknownFieldMsg[T any](path, key string, fields []field[T]) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	if best := suggest(key, names); best != "" {
		return "unknown field; did you mean " + strconv.Quote(best) + "?"
	}
	if path == "" {
		rnames := make([]string, len(resourcesFields))
		for i, f := range resourcesFields {
			rnames[i] = f.name
		}
		if best := suggest(key, rnames); best != "" {
			return "unknown field; " + strconv.Quote(best) + " belongs under resources:"
		}
	}
	return "unknown field; want one of " + strings.Join(names, ", ")
}

// suggest returns the known name closest to key, or "" when none is close:
// the same name ignoring case and '_', '-'; a known hint; a name with a small
// edit distance; or a name that key is a prefix of (at least 3 letters).
func suggest(key string, names []string) string {
	norm := func(s string) string {
		return strings.ToLower(strings.NewReplacer("_", "", "-", "", " ", "").Replace(s))
	}
	nk := norm(key)
	for _, n := range names {
		if norm(n) == nk {
			return n
		}
	}
	if h, ok := keyHints[nk]; ok {
		for _, n := range names {
			if n == h {
				return n
			}
		}
	}
	best, bestDist := "", 0
	limit := 1
	switch {
	case len(nk) > 8:
		limit = 3
	case len(nk) > 3:
		limit = 2
	}
	for _, n := range names {
		if dist := EditDistance(nk, strings.ToLower(n)); dist <= limit && (best == "" || dist < bestDist) {
			best, bestDist = n, dist
		}
	}
	if best != "" {
		return best
	}
	if len(nk) >= 3 {
		for _, n := range names {
			if strings.HasPrefix(strings.ToLower(n), nk) {
				return n
			}
		}
	}
	return ""
}

// EditDistance is the Levenshtein distance between short ASCII-ish strings
// (each cut to 64 bytes to keep it cheap). jobspec's field suggestions use
// it, and the master's "did you mean" for images.
func EditDistance(a, b string) int {
	const maxLen = 64
	if len(a) > maxLen {
		a = a[:maxLen]
	}
	if len(b) > maxLen {
		b = b[:maxLen]
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// str decodes a scalar as text. Numbers and booleans are taken as written.
func (d *decoder) str(dst *string, p string, n *yaml.Node) {
	if n.Kind != yaml.ScalarNode {
		d.problem(n, p, "", "is %s; want a string", kindName(n))
		return
	}
	*dst = n.Value
}

// list calls each for every item of sequence n, with the item's path.
func (d *decoder) list(p string, n *yaml.Node, each func(i int, ip string, item *yaml.Node)) {
	if n.Kind != yaml.SequenceNode {
		d.problem(n, p, n.Value, "is %s; want a list", kindName(n))
		return
	}
	for i, item := range n.Content {
		ip := p + "[" + strconv.Itoa(i) + "]"
		d.pos[ip] = position{item.Line, item.Column}
		each(i, ip, item)
	}
}

// integer decodes a whole number into an int; lo and hi only shape the
// message (Validate checks the range).
func (d *decoder) integer(dst *int, p string, n *yaml.Node, lo, hi int) {
	if n.Kind != yaml.ScalarNode {
		d.problem(n, p, "", "is %s; want a whole number %d..%d", kindName(n), lo, hi)
		return
	}
	v, err := strconv.ParseInt(n.Value, 10, strconv.IntSize)
	switch {
	case err == nil:
		*dst = int(v)
	case errors.Is(err, strconv.ErrRange):
		d.problem(n, p, n.Value, "%s is out of range; want %d..%d", short(n.Value), lo, hi)
	default:
		if _, ferr := strconv.ParseFloat(n.Value, 64); ferr == nil {
			d.problem(n, p, n.Value, "%s is not a whole number; want %d..%d", short(n.Value), lo, hi)
		} else {
			d.problem(n, p, n.Value, "%s is not a number; want a whole number %d..%d", quote(n.Value), lo, hi)
		}
	}
}

// jobID decodes one job ID of a dependency.
func (d *decoder) jobID(p string, n *yaml.Node) uint64 {
	if n.Kind != yaml.ScalarNode {
		d.problem(n, p, "", "is %s; want a job ID (a positive number)", kindName(n))
		return 0
	}
	v, err := strconv.ParseUint(n.Value, 10, 64)
	if err != nil {
		d.problem(n, p, n.Value, "%s is not a job ID; want a positive number as printed by hpcsub", quote(n.Value))
		return 0
	}
	return v
}

// boolean decodes true or false (any case); YAML 1.1's yes/no/on/off are
// refused because they surprise people.
func (d *decoder) boolean(dst *bool, p string, n *yaml.Node) {
	if n.Kind == yaml.ScalarNode {
		switch strings.ToLower(n.Value) {
		case "true":
			*dst = true
			return
		case "false":
			*dst = false
			return
		}
	}
	d.problem(n, p, n.Value, "is %s; want true or false", kindName(n))
}

func (d *decoder) quantity(dst *Quantity, p string, n *yaml.Node) {
	if n.Kind != yaml.ScalarNode {
		d.problem(n, p, "", "is %s; %s", kindName(n), quantityHelp)
		return
	}
	q, err := ParseQuantity(n.Value)
	if err != nil {
		d.problem(n, p, n.Value, "%s", err.Error())
		return
	}
	*dst = q
}

func (d *decoder) duration(dst *Duration, p string, n *yaml.Node) {
	if n.Kind != yaml.ScalarNode {
		d.problem(n, p, "", "is %s; %s", kindName(n), durationHelp)
		return
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		d.problem(n, p, n.Value, "%s", err.Error())
		return
	}
	*dst = v
}

// env decodes the environment mapping; keys are checked by Validate.
func (d *decoder) env(s *Spec, p string, n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		d.problem(n, p, n.Value, "is %s; want a mapping of NAME: value", kindName(n))
		return
	}
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.problem(k, p, "", "variable name is %s; want a name like MY_VAR", kindName(k))
			continue
		}
		kp := p + "." + k.Value
		if line, dup := seen[k.Value]; dup {
			d.problem(k, kp, k.Value, "duplicate variable; first set at line %d", line)
			continue
		}
		seen[k.Value] = k.Line
		d.pos[kp] = position{k.Line, k.Column}
		var v string
		if !isNull(val) {
			d.str(&v, kp, val)
		}
		if s.Env == nil {
			s.Env = make(map[string]string)
		}
		s.Env[k.Value] = v
	}
}

// stages decodes stageIn or stageOut: a list of "path" or {from, to}.
func (d *decoder) stages(p string, n *yaml.Node) []Stage {
	var out []Stage
	d.list(p, n, func(i int, ip string, item *yaml.Node) {
		var st Stage
		switch {
		case item.Kind == yaml.ScalarNode && !isNull(item):
			st.From, st.To = item.Value, item.Value
			d.pos[ip+".from"] = position{item.Line, item.Column}
			d.pos[ip+".to"] = position{item.Line, item.Column}
		case item.Kind == yaml.MappingNode:
			decodeFields(d, &st, ip, item, stageFields)
		default:
			d.problem(item, ip, "", "is %s; want a path \"data/in.txt\" or a mapping {from: ..., to: ...}", kindName(item))
		}
		out = append(out, st)
	})
	return out
}
