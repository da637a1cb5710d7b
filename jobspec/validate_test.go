package jobspec

import (
	"strings"
	"testing"
	"time"
)

// valid returns a Spec built in Go with every default filled.
func valid() *Spec {
	s := &Spec{Name: "job", Command: []string{"/bin/true"}}
	s.Defaults()
	return s
}

// TestValidate has one named case per rule: the mutation breaks the rule and
// the problem must name the path and say what is allowed.
func TestValidate(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name   string
		mutate func(s *Spec)
		path   string // "" means the spec must validate
		want   string
	}{
		{"valid minimal", func(s *Spec) {}, "", ""},
		{"valid everything", func(s *Spec) {
			s.Department, s.Image, s.Partition, s.QOS = "physics", "cuda-12.4:2024.1", "gpu", "high"
			s.Resources = Resources{Nodes: 4, TasksPerNode: 8, CPUsPerTask: 4, Memory: 64 * GiB, GPUs: 8,
				GPUModel: "H100", GPUMemory: 80 * GiB, Scratch: 100 * GiB, Hugepages: 32 * GiB, CrossNUMA: true}
			s.Walltime = Duration(30 * Day)
			s.Env = map[string]string{"OMP_NUM_THREADS": "4", "_x": ""}
			s.MPI = "openmpi"
			s.StageIn = []Stage{{"in/data.bin", "data.bin"}}
			s.StageOut = []Stage{{"out", "results/out"}}
			s.Array = &Array{Frames: "0-10000000:5", Chunk: 100000, Parallel: 100000}
			s.DependsOn = []Dependency{{"afterany", []uint64{1, 2}}}
			s.Retries = 10
		}, "", ""},
		{"name required", func(s *Spec) { s.Name = "" }, "name", "is required"},
		{"name too long", func(s *Spec) { s.Name = long(65) }, "name", "is 65 bytes long; the most is 64"},
		{"name max length", func(s *Spec) { s.Name = long(64) }, "", ""},
		{"name with <", func(s *Spec) { s.Name = "a<b" }, "name", `"a<b" has '<'`},
		{"name with /", func(s *Spec) { s.Name = "a/b" }, "name", `has '/'`},
		{"name with space", func(s *Spec) { s.Name = "a b" }, "name", `has ' '`},
		{"name unicode", func(s *Spec) { s.Name = "jöb" }, "name", `has 'ö'`},
		{"name dotdot", func(s *Spec) { s.Name = ".." }, "name", "is not a name"},
		{"department charset", func(s *Spec) { s.Department = "a;b" }, "department", `has ';'`},
		{"department empty", func(s *Spec) { s.Department = "" }, "department", "is required"},
		{"partition charset", func(s *Spec) { s.Partition = "a:b" }, "partition", `has ':'`},
		{"image empty", func(s *Spec) { s.Image = "" }, "image", "is required"},
		{"image department/name:tag", func(s *Spec) { s.Image = "chemistry/lammps:2024.08" }, "", ""},
		{"image public/name", func(s *Spec) { s.Image = "public/python" }, "", ""},
		{"image two slashes", func(s *Spec) { s.Image = "a/b/c" }, "image", `has '/' more than once`},
		{"image empty department", func(s *Spec) { s.Image = "/lammps" }, "image", "department is empty"},
		{"image bad department", func(s *Spec) { s.Image = "chem istry/lammps" }, "image", `department has ' '`},
		{"image empty name", func(s *Spec) { s.Image = "chemistry/" }, "image", "is empty"},
		{"image department dotdot", func(s *Spec) { s.Image = "../lammps" }, "image", "department is not a name"},
		{"image dotdot", func(s *Spec) { s.Image = "a..b" }, "image", `has ".."`},
		{"image tag dotdot", func(s *Spec) { s.Image = "a:.." }, "image", "tag is not a name"},
		{"image empty tag", func(s *Spec) { s.Image = "a:" }, "image", "tag is empty"},
		{"image two colons", func(s *Spec) { s.Image = "a:b:c" }, "image", `tag has ':'`},
		{"image name too long", func(s *Spec) { s.Image = long(65) }, "image", "the most is 64"},
		{"qos unknown", func(s *Spec) { s.QOS = "urgent" }, "qos", `"urgent" is not allowed; want one of low, normal, high`},
		{"qos empty", func(s *Spec) { s.QOS = "" }, "qos", "is empty; want one of"},
		{"nodes zero", func(s *Spec) { s.Resources.Nodes = 0 }, "resources.nodes", "0 is too small; want 1..1024"},
		{"nodes negative", func(s *Spec) { s.Resources.Nodes = -1 }, "resources.nodes", "-1 is negative; want 1..1024"},
		{"nodes too many", func(s *Spec) { s.Resources.Nodes = 1025 }, "resources.nodes", "1025 is too large; want 1..1024"},
		{"tasks zero", func(s *Spec) { s.Resources.TasksPerNode = 0 }, "resources.tasksPerNode", "want 1..1024"},
		{"cpus too many", func(s *Spec) { s.Resources.CPUsPerTask = 2000 }, "resources.cpusPerTask", "2000 is too large"},
		{"cores per node", func(s *Spec) { s.Resources.TasksPerNode, s.Resources.CPUsPerTask = 64, 32 },
			"resources.cpusPerTask", "64*32 = 2048 cores per node; the most is 1024"},
		{"memory too small", func(s *Spec) { s.Resources.Memory = MiB }, "resources.memory", "1MiB is too small; want 64MiB..16TiB"},
		{"memory zero", func(s *Spec) { s.Resources.Memory = 0 }, "resources.memory", "0 is too small"},
		{"memory negative", func(s *Spec) { s.Resources.Memory = -GiB }, "resources.memory", "-1GiB is negative"},
		{"memory too large", func(s *Spec) { s.Resources.Memory = 17 * TiB }, "resources.memory", "17TiB is too large"},
		{"gpus negative", func(s *Spec) { s.Resources.GPUs = -1 }, "resources.gpus", "-1 is negative; want 0..64"},
		{"gpus too many", func(s *Spec) { s.Resources.GPUs = 65 }, "resources.gpus", "65 is too large; want 0..64"},
		{"gpu model charset", func(s *Spec) { s.Resources.GPUs, s.Resources.GPUModel = 1, "H100 SXM" }, "resources.gpuModel", `has ' '`},
		{"gpu model without gpus", func(s *Spec) { s.Resources.GPUModel = "H100" }, "resources.gpuModel", "gpus is 0"},
		{"gpu memory without gpus", func(s *Spec) { s.Resources.GPUMemory = 80 * GiB }, "resources.gpuMemory", "gpus is 0"},
		{"gpu memory too large", func(s *Spec) { s.Resources.GPUs, s.Resources.GPUMemory = 1, 2*TiB }, "resources.gpuMemory", "too large"},
		{"scratch negative", func(s *Spec) { s.Resources.Scratch = -1 }, "resources.scratch", "is negative; want 0..64TiB"},
		{"scratch too large", func(s *Spec) { s.Resources.Scratch = 65 * TiB }, "resources.scratch", "too large"},
		{"scratch zero ok", func(s *Spec) { s.Resources.Scratch = 0 }, "", ""},
		{"hugepages over memory", func(s *Spec) { s.Resources.Hugepages = GiB }, "resources.hugepages", "1GiB is more than memory (512MiB)"},
		{"hugepages not 2MiB", func(s *Spec) { s.Resources.Hugepages = 3 * MiB }, "resources.hugepages", "not a multiple of the 2MiB hugepage size"},
		{"hugepages negative", func(s *Spec) { s.Resources.Hugepages = -2 * MiB }, "resources.hugepages", "is negative"},
		{"hugepages equal memory", func(s *Spec) { s.Resources.Hugepages = s.Resources.Memory }, "", ""},
		{"walltime zero", func(s *Spec) { s.Walltime = 0 }, "walltime", "0s is too short; want 1s..30d"},
		{"walltime negative", func(s *Spec) { s.Walltime = Duration(-time.Hour) }, "walltime", "is negative"},
		{"walltime too long", func(s *Spec) { s.Walltime = Duration(31 * Day) }, "walltime", "31d is too long; want 1s..30d"},
		{"walltime fraction", func(s *Spec) { s.Walltime = Duration(1500 * time.Millisecond) }, "walltime", "not whole seconds"},
		{"both command and script", func(s *Spec) { s.Script = "echo" }, "script", "both command and script are set"},
		{"neither command nor script", func(s *Spec) { s.Command = nil }, "command", "neither command nor script"},
		{"empty program", func(s *Spec) { s.Command = []string{""} }, "command[0]", "the program is empty"},
		{"too many args", func(s *Spec) { s.Command = make([]string, MaxArgs+1); s.Command[0] = "x" }, "command", "has 257 arguments; the most is 256"},
		{"arg too long", func(s *Spec) { s.Command = []string{"x", long(MaxArgLen + 1)} }, "command[1]", "the most is 32768 per argument"},
		{"args total", func(s *Spec) {
			s.Command = []string{"x"}
			for range 5 {
				s.Command = append(s.Command, long(MaxArgLen))
			}
		}, "command", "arguments total"},
		{"arg NUL", func(s *Spec) { s.Command = []string{"x", "a\x00b"} }, "command[1]", "NUL byte"},
		{"script too large", func(s *Spec) { s.Command, s.Script = nil, long(MaxScriptBytes+1) }, "script", "the most is 524288"},
		{"script blank", func(s *Spec) { s.Command, s.Script = nil, " \n\t" }, "script", "only white space"},
		{"script NUL", func(s *Spec) { s.Command, s.Script = nil, "echo \x00" }, "script", "NUL byte"},
		{"env name charset", func(s *Spec) { s.Env = map[string]string{"A-B": "1"} }, "env.A-B", `has '-'`},
		{"env name digit first", func(s *Spec) { s.Env = map[string]string{"1A": "1"} }, "env.1A", `has '1'`},
		{"env name empty", func(s *Spec) { s.Env = map[string]string{"": "1"} }, "env.", "is empty"},
		{"env name too long", func(s *Spec) { s.Env = map[string]string{long(129): "1"} }, "env." + long(129), "the most is 128"},
		{"env reserved", func(s *Spec) { s.Env = map[string]string{"VHPC_JOB_ID": "1"} }, "env.VHPC_JOB_ID", "reserved"},
		{"env reserved lower case", func(s *Spec) { s.Env = map[string]string{"vhpc_x": "1"} }, "env.vhpc_x", "reserved"},
		{"env value too long", func(s *Spec) { s.Env = map[string]string{"A": long(MaxEnvValueLen + 1)} }, "env.A", "the most is 32768"},
		{"env value NUL", func(s *Spec) { s.Env = map[string]string{"A": "\x00"} }, "env.A", "NUL byte"},
		{"env too many", func(s *Spec) {
			s.Env = map[string]string{}
			for i := range MaxEnvVars + 1 {
				s.Env["V"+long(i%100)+string(rune('A'+i/100))] = ""
			}
		}, "env", "has 129 variables; the most is 128"},
		{"env total", func(s *Spec) {
			s.Env = map[string]string{}
			for i := range 5 {
				s.Env[string(rune('A'+i))] = long(MaxEnvValueLen)
			}
		}, "env", "names and values total"},
		{"mpi unknown", func(s *Spec) { s.MPI = "intel" }, "mpi", `"intel" is not allowed; want one of none, openmpi, mpich`},
		{"stage absolute", func(s *Spec) { s.StageIn = []Stage{{"/etc/passwd", "p"}} }, "stageIn[0].from", "is absolute"},
		{"stage dotdot", func(s *Spec) { s.StageIn = []Stage{{"a/../../b", "b"}} }, "stageIn[0].from", `has a ".." element`},
		{"stage dotdot inside", func(s *Spec) { s.StageIn = []Stage{{"a/../b", "b"}} }, "stageIn[0].from", `has a ".." element`},
		{"stage to dotdot", func(s *Spec) { s.StageOut = []Stage{{"a", ".."}} }, "stageOut[0].to", `has a ".." element`},
		{"stage to absolute", func(s *Spec) { s.StageOut = []Stage{{"a", "/tmp/a"}} }, "stageOut[0].to", "is absolute"},
		{"stage empty", func(s *Spec) { s.StageIn = []Stage{{"", "a"}} }, "stageIn[0].from", "is empty"},
		{"stage dot", func(s *Spec) { s.StageOut = []Stage{{"./", "x"}} }, "stageOut[0].from", "whole job directory"},
		{"stage NUL", func(s *Spec) { s.StageIn = []Stage{{"a\x00", "a"}} }, "stageIn[0].from", "NUL byte"},
		{"stage control char", func(s *Spec) { s.StageIn = []Stage{{"a\nb", "a"}} }, "stageIn[0].from", "control character"},
		{"stage too long", func(s *Spec) { s.StageIn = []Stage{{long(1025), "a"}} }, "stageIn[0].from", "the most is 1024"},
		{"stage too many", func(s *Spec) { s.StageIn = make([]Stage, MaxStages+1) }, "stageIn", "has 65 entries; the most is 64"},
		{"stage same path reported once", func(s *Spec) { s.StageIn = []Stage{{"/a", "/a"}} }, "stageIn[0].from", "is absolute"},
		{"array frames missing", func(s *Spec) { s.Array = &Array{Chunk: 1} }, "array.frames", "is required"},
		{"array frames syntax", func(s *Spec) { s.Array = &Array{Frames: "1..10", Chunk: 1} }, "array.frames", `"1..10" is not a frame range; want "FIRST-LAST"`},
		{"array frames negative", func(s *Spec) { s.Array = &Array{Frames: "-1-5", Chunk: 1} }, "array.frames", "not a frame range"},
		{"array frames reversed", func(s *Spec) { s.Array = &Array{Frames: "10-1", Chunk: 1} }, "array.frames", "first frame 10 is after the last 1"},
		{"array frames too large", func(s *Spec) { s.Array = &Array{Frames: "1-10000001", Chunk: 1} }, "array.frames", "frame 10000001 is too large"},
		{"array frames overflow", func(s *Spec) { s.Array = &Array{Frames: "1-99999999999999999999", Chunk: 1} }, "array.frames", "not a frame range"},
		{"array step zero", func(s *Spec) { s.Array = &Array{Frames: "1-10:0", Chunk: 1} }, "array.frames", "step 0 is out of range"},
		{"array step without range", func(s *Spec) { s.Array = &Array{Frames: "5:2", Chunk: 1} }, "array.frames", "not a frame range"},
		{"array single frame", func(s *Spec) { s.Array = &Array{Frames: "7", Chunk: 1} }, "", ""},
		{"array chunk zero", func(s *Spec) { s.Array = &Array{Frames: "1-2", Chunk: 0} }, "array.chunk", "0 is too small; want 1..100000"},
		{"array chunk too large", func(s *Spec) { s.Array = &Array{Frames: "1-2", Chunk: 100001} }, "array.chunk", "too large"},
		{"array parallel negative", func(s *Spec) { s.Array = &Array{Frames: "1-2", Chunk: 1, Parallel: -1} }, "array.parallel", "-1 is negative; want 0..100000"},
		{"dependency type", func(s *Spec) { s.DependsOn = []Dependency{{"after", []uint64{1}}} }, "dependsOn[0].type", `"after" is not allowed`},
		{"dependency no jobs", func(s *Spec) { s.DependsOn = []Dependency{{"afterok", nil}} }, "dependsOn[0].jobs", "is empty"},
		{"dependency job zero", func(s *Spec) { s.DependsOn = []Dependency{{"afterok", []uint64{0}}} }, "dependsOn[0].jobs[0]", "0 is not a job ID"},
		{"dependency too many", func(s *Spec) {
			for range MaxDependencies + 1 {
				s.DependsOn = append(s.DependsOn, Dependency{"afterok", []uint64{1}})
			}
		}, "dependsOn", "has 65 entries; the most is 64"},
		{"dependency ids total", func(s *Spec) {
			for range 2 {
				s.DependsOn = append(s.DependsOn, Dependency{"afterok", make([]uint64, 600)})
				for i := range s.DependsOn[len(s.DependsOn)-1].Jobs {
					s.DependsOn[len(s.DependsOn)-1].Jobs[i] = uint64(i + 1)
				}
			}
		}, "dependsOn", "lists 1200 job IDs in all; the most is 1024"},
		{"retries negative", func(s *Spec) { s.Retries = -1 }, "retries", "-1 is negative; want 0..10"},
		{"retries too many", func(s *Spec) { s.Retries = 11 }, "retries", "11 is too large; want 0..10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := valid()
			tt.mutate(s)
			err := s.Validate()
			if tt.path == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate succeeded; want %s: %s", tt.path, tt.want)
			}
			ps := problemsOf(t, err)
			found := false
			for _, p := range ps {
				if p.Path == tt.path && strings.Contains(p.Msg, tt.want) {
					found = true
				}
				if p.Line != 0 || p.File != "" {
					t.Errorf("a Spec built in Go has a position: %+v", p)
				}
			}
			if !found {
				t.Fatalf("Validate:\n%v\nwant %s: ...%s...", err, tt.path, tt.want)
			}
			if len(ps) != 1 && !strings.HasSuffix(tt.name, "total") {
				t.Errorf("want exactly one problem, got %d:\n%v", len(ps), err)
			}
		})
	}
}

// TestDefaults checks what Defaults fills, and that values a file set
// explicitly are left for Validate even when zero.
func TestDefaults(t *testing.T) {
	s, err := Parse("job.yaml", []byte(minimal+"stageIn: [{from: a}]\ndependsOn: [{jobs: [1]}]\narray: {frames: 1-4}\n"))
	if err != nil {
		t.Fatal(err)
	}
	s.Defaults()
	want := &Spec{
		Name: "t", Department: "default", Image: "tiny", Partition: "default", QOS: "normal",
		Resources: Resources{Nodes: 1, TasksPerNode: 1, CPUsPerTask: 1, Memory: 512 * MiB, Scratch: GiB},
		Walltime:  Duration(time.Hour), Command: []string{"true"}, MPI: "none",
		StageIn:   []Stage{{"a", "a"}},
		Array:     &Array{Frames: "1-4", Chunk: 1},
		DependsOn: []Dependency{{"afterok", []uint64{1}}},
	}
	if !s.Equal(want) {
		t.Fatalf("after Defaults:\n%+v\nwant\n%+v", s, want)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}

	// explicit zeros and empties stay, and Validate names them with positions
	in := "name: t\ncommand: [x]\nresources:\n  nodes: 0\n  memory: 0\n  scratch: 0\nwalltime: 0\nqos: \"\"\narray: {frames: 1-2, chunk: 0}\n"
	_, err = Load("job.yaml", []byte(in))
	ps := problemsOf(t, err)
	want2 := []string{
		"job.yaml:4:10: resources.nodes: 0 is too small",
		"job.yaml:5:11: resources.memory: 0 is too small",
		"job.yaml:7:11: walltime: 0s is too short",
		"job.yaml:8:6: qos: is empty",
		"job.yaml:9:29: array.chunk: 0 is too small",
	}
	if len(ps) != len(want2) {
		t.Fatalf("got %d problems, want %d:\n%v", len(ps), len(want2), err)
	}
	for i, w := range want2 {
		if !strings.HasPrefix(ps[i].Error(), w) {
			t.Errorf("problem %d = %q; want prefix %q", i, ps[i].Error(), w)
		}
	}

	// empty lists and maps become nil
	e := &Spec{Name: "x", Command: []string{}, Env: map[string]string{}, StageIn: []Stage{}, StageOut: []Stage{}, DependsOn: []Dependency{}}
	e.Defaults()
	if e.Command != nil || e.Env != nil || e.StageIn != nil || e.StageOut != nil || e.DependsOn != nil {
		t.Errorf("empty collections not nil after Defaults: %+v", e)
	}
}

func TestArrayRange(t *testing.T) {
	tests := []struct {
		frames            string
		first, last, step int64
		tasks             int64
		chunk             int
	}{
		{"1-240", 1, 240, 1, 60, 4},
		{"1-240:2", 1, 240, 2, 120, 1},
		{"1-24", 1, 24, 1, 6, 4},
		{"7", 7, 7, 1, 1, 1},
		{"0-9:5", 0, 9, 5, 1, 2},
		{"bad", 0, 0, 0, 0, 1},
		{"", 0, 0, 0, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.frames, func(t *testing.T) {
			a := &Array{Frames: tt.frames, Chunk: tt.chunk}
			f, l, s := a.Range()
			if f != tt.first || l != tt.last || s != tt.step {
				t.Errorf("Range() = %d, %d, %d; want %d, %d, %d", f, l, s, tt.first, tt.last, tt.step)
			}
			if got := a.Tasks(); got != tt.tasks {
				t.Errorf("Tasks() = %d; want %d", got, tt.tasks)
			}
		})
	}
}

func TestLoadSuppressesDuplicateProblems(t *testing.T) {
	// name does not decode (a mapping); Validate would also say "required"
	_, err := Load("job.yaml", []byte("name: {a: 1}\ncommand: [x]\n"))
	ps := problemsOf(t, err)
	if len(ps) != 1 || ps[0].Path != "name" || !strings.Contains(ps[0].Msg, "is a mapping") {
		t.Fatalf("got:\n%v\nwant one problem about name being a mapping", err)
	}
}
