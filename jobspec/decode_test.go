package jobspec

import (
	"errors"
	"strings"
	"testing"
)

// minimal is the smallest valid job file; tests append to it.
const minimal = "name: t\ncommand: [\"true\"]\n"

// problemsOf returns the Problems in err, failing the test if err is not one.
func problemsOf(t *testing.T, err error) Problems {
	t.Helper()
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error %v (%T) is not Problems", err, err)
	}
	return ps
}

// TestParseProblems covers every class of bad input Parse must refuse, each
// with the exact position and a fragment of the message.
func TestParseProblems(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // a fragment of one Problem's Error()
	}{
		{"empty file", "", "job.yaml: empty file"},
		{"only comments", "# nothing\n", "job.yaml: empty file"},
		{"only document marker", "---\n", "empty document"},
		{"null document", "~\n", "empty document"},
		{"NUL byte", "name: a\x00b\n", "job.yaml:1:8: binary file: NUL byte at offset 7"},
		{"invalid UTF-8", "name: \xff\n", "job.yaml:1:7: not UTF-8 text: invalid byte 0xff"},
		{"UTF-16", "\xff\xfen\x00a\x00", "binary file"},
		{"list document", "- a\n- b\n", "job.yaml:1:1: the document is a list"},
		{"scalar document", "hello\n", "the document is a string \"hello\""},
		{"number document", "42\n", "the document is a number 42"},
		{"two documents", minimal + "---\n" + minimal, "job.yaml:3:1: more than one YAML document"},
		{"second document broken", minimal + "---\n[\n", "more than one YAML document"},
		{"syntax error", "name: [\n", "invalid YAML"},
		{"tab indent", "resources:\n\tnodes: 1\n", "invalid YAML"},
		{"anchor", "name: &n t\ncommand: [\"true\"]\n", "job.yaml:1:7: YAML anchor &n"},
		{"alias", "name: t\nx: &a 1\ncommand: [*a]\n", "job.yaml:3:11: YAML alias *a"},
		{"merge key", "name: t\n<<: {command: [x]}\n", "<<: unknown field"},
		{"custom tag", "name: !shell t\n", "YAML tag !shell is not supported"},
		{"binary tag", "name: !!binary dA==\n", "YAML tag !!binary is not supported"},
		{"unknown top field", minimal + "nmae: x\n", `job.yaml:3:1: nmae: unknown field; did you mean "name"?`},
		{"unknown nested field", minimal + "resources:\n  gpu: 1\n", `job.yaml:4:3: resources.gpu: unknown field; did you mean "gpus"?`},
		{"case slip", minimal + "resources:\n  GPUs: 1\n", `did you mean "gpus"?`},
		{"snake case", minimal + "resources:\n  tasks_per_node: 1\n", `did you mean "tasksPerNode"?`},
		{"hint from slurm", minimal + "time: 5m\n", `time: unknown field; did you mean "walltime"?`},
		{"prefix", minimal + "resources:\n  mem: 1GiB\n", `did you mean "memory"?`},
		{"resources field at top", minimal + "cpusPerTask: 2\n", `"cpusPerTask" belongs under resources:`},
		{"no suggestion", minimal + "zzzzzz: 1\n", "zzzzzz: unknown field; want one of name, department"},
		{"unknown in stage", minimal + "stageIn:\n  - {from: a, too: b}\n", `stageIn[0].too: unknown field; did you mean "to"?`},
		{"unknown in array", minimal + "array: {frames: 1-2, chunks: 2}\n", `array.chunks: unknown field; did you mean "chunk"?`},
		{"unknown in dependency", minimal + "dependsOn:\n  - {kind: afterok, jobs: [1]}\n", `dependsOn[0].kind: unknown field`},
		{"duplicate field", minimal + "name: u\n", "job.yaml:3:1: name: duplicate field; first set at line 1"},
		{"duplicate env", minimal + "env:\n  A: 1\n  A: 2\n", "env.A: duplicate variable; first set at line 4"},
		{"complex key", minimal + "? [a]\n: 1\n", "field name is a list"},
		{"string for int", minimal + "retries: many\n", `retries: "many" is not a number; want a whole number 0..10`},
		{"float for int", minimal + "retries: 1.5\n", "retries: 1.5 is not a whole number; want 0..10"},
		{"huge int", minimal + "resources: {gpus: 99999999999999999999}\n", "resources.gpus: 99999999999999999999 is out of range; want 0..64"},
		{"list for int", minimal + "retries: [1]\n", "retries: is a list; want a whole number 0..10"},
		{"map for string", "name: {a: 1}\ncommand: [x]\n", "name: is a mapping; want a string"},
		{"command as string", "name: t\ncommand: echo hi\n", `command: "echo hi" is a string; want a list of arguments`},
		{"command item map", "name: t\ncommand: [{a: 1}]\n", "command[0]: is a mapping; want a string"},
		{"bool yes", minimal + "resources: {crossNUMA: yes}\n", `resources.crossNUMA: is a string "yes"; want true or false`},
		{"bad size", minimal + "resources: {memory: 4 parsecs}\n", `resources.memory: "4 parsecs" has unknown unit "parsecs"`},
		{"size as list", minimal + "resources: {memory: [1]}\n", "resources.memory: is a list; want a size"},
		{"bad duration", minimal + "walltime: soon\n", `walltime: "soon" has "soon" where a number belongs`},
		{"duration as map", minimal + "walltime: {h: 1}\n", "walltime: is a mapping; want a duration"},
		{"env not a map", minimal + "env: [A]\n", "env: is a list; want a mapping of NAME: value"},
		{"env value map", minimal + "env: {A: {b: 1}}\n", "env.A: is a mapping; want a string"},
		{"stage not a list", minimal + "stageIn: a.txt\n", "stageIn: is a string \"a.txt\"; want a list"},
		{"stage item list", minimal + "stageIn: [[a]]\n", "stageIn[0]: is a list; want a path"},
		{"job id negative", minimal + "dependsOn: [{jobs: [-1]}]\n", `dependsOn[0].jobs[0]: "-1" is not a job ID`},
		{"array not a map", minimal + "array: 1-10\n", "array: is a string \"1-10\"; want a mapping with fields frames, chunk, parallel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse("job.yaml", []byte(tt.in))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", s)
			}
			if s != nil {
				t.Errorf("Parse returned a Spec with an error")
			}
			ps := problemsOf(t, err)
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse error:\n%v\nwant a line containing %q", err, tt.want)
			}
			for _, p := range ps {
				if p.Msg == "" {
					t.Errorf("problem without a message: %+v", p)
				}
			}
		})
	}
}

// TestParseAccepts covers inputs that are unusual but valid.
func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		check func(t *testing.T, s *Spec)
	}{
		{"document marker", "---\n" + minimal, nil},
		{"end marker", minimal + "...\n", nil},
		{"flow mapping", "{name: t, command: [x]}", nil},
		{"BOM", "\ufeff" + minimal, nil},
		{"CRLF", strings.ReplaceAll(minimal, "\n", "\r\n"), nil},
		{"null fields are unset", minimal + "walltime: ~\nenv:\nresources: null\n", func(t *testing.T, s *Spec) {
			if s.Walltime != 0 || s.Env != nil || s.src.set("walltime") {
				t.Errorf("null left a value: %+v", s)
			}
		}},
		{"numbers as strings", "name: 123\ncommand: [1, true, 2.5]\n", func(t *testing.T, s *Spec) {
			if s.Name != "123" || strings.Join(s.Command, " ") != "1 true 2.5" {
				t.Errorf("got name %q command %q", s.Name, s.Command)
			}
		}},
		{"stage short and long", minimal + "stageIn: [a.txt, {from: b, to: c}]\n", func(t *testing.T, s *Spec) {
			want := []Stage{{"a.txt", "a.txt"}, {"b", "c"}}
			if len(s.StageIn) != 2 || s.StageIn[0] != want[0] || s.StageIn[1] != want[1] {
				t.Errorf("stageIn = %+v; want %+v", s.StageIn, want)
			}
		}},
		{"single job id", minimal + "dependsOn: [{type: afterany, jobs: 7}]\n", func(t *testing.T, s *Spec) {
			if len(s.DependsOn) != 1 || len(s.DependsOn[0].Jobs) != 1 || s.DependsOn[0].Jobs[0] != 7 {
				t.Errorf("dependsOn = %+v", s.DependsOn)
			}
		}},
		{"bool any case", minimal + "resources: {crossNUMA: True}\n", func(t *testing.T, s *Spec) {
			if !s.Resources.CrossNUMA {
				t.Errorf("crossNUMA false")
			}
		}},
		{"env values", minimal + "env: {A: 1, B: , C: \"x y\"}\n", func(t *testing.T, s *Spec) {
			if s.Env["A"] != "1" || s.Env["B"] != "" || s.Env["C"] != "x y" || len(s.Env) != 3 {
				t.Errorf("env = %v", s.Env)
			}
		}},
		{"explicit str tag", "name: !!str 12\ncommand: [x]\n", func(t *testing.T, s *Spec) {
			if s.Name != "12" {
				t.Errorf("name = %q", s.Name)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse("job.yaml", []byte(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if tt.check != nil {
				tt.check(t, s)
			}
		})
	}
}

func TestParseReportsAllProblems(t *testing.T) {
	in := "name: t\ncommand: [x]\nretries: x\nresources:\n  gpu: 1\n  nodes: y\nwalltime: soon\nfoo: 1\n"
	_, err := Parse("j.yaml", []byte(in))
	ps := problemsOf(t, err)
	want := []string{"j.yaml:3:10: retries", "j.yaml:5:3: resources.gpu", "j.yaml:6:10: resources.nodes", "j.yaml:7:11: walltime", "j.yaml:8:1: foo"}
	if len(ps) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(ps), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(ps[i].Error(), w) {
			t.Errorf("problem %d = %q; want prefix %q", i, ps[i].Error(), w)
		}
	}
}

func TestParseBounds(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"too large", minimal + "# " + strings.Repeat("x", MaxFileBytes) + "\n", "the most is 1MiB"},
		{"too many nodes", minimal + "env: {" + strings.Repeat("A: 1, ", MaxYAMLNodes/2+1) + "}\n", "too many YAML values"},
		{"deep nesting", "name: " + strings.Repeat("[", 50000) + strings.Repeat("]", 50000), "invalid YAML"},
		{"deep maps", strings.Repeat("{a: ", 20000) + "1" + strings.Repeat("}", 20000), "invalid YAML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load("job.yaml", []byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load error = %v; want %q", err, tt.want)
			}
		})
	}
}

func TestProblemsAreCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString(minimal)
	for i := range 100 {
		b.WriteString("bad" + strings.Repeat("x", i) + ": 1\n")
	}
	_, err := Load("job.yaml", []byte(b.String()))
	ps := problemsOf(t, err)
	if len(ps) != MaxProblems {
		t.Fatalf("got %d problems; want %d", len(ps), MaxProblems)
	}
	if last := ps[len(ps)-1].Msg; last != "... and 71 more problems" {
		t.Errorf("last problem = %q", last)
	}
}

func TestProblemError(t *testing.T) {
	tests := []struct {
		name string
		p    Problem
		want string
	}{
		{"full", Problem{File: "job.yaml", Line: 12, Col: 5, Path: "resources.gpus", Msg: "-1 is negative; want 0..64"},
			"job.yaml:12:5: resources.gpus: -1 is negative; want 0..64"},
		{"no column", Problem{File: "job.yaml", Line: 3, Msg: "invalid YAML: x"}, "job.yaml:3: invalid YAML: x"},
		{"no position", Problem{File: "job.yaml", Path: "name", Msg: "is required"}, "job.yaml: name: is required"},
		{"no file", Problem{Line: 1, Col: 2, Path: "name", Msg: "m"}, "1:2: name: m"},
		{"nothing", Problem{Path: "name", Msg: "m"}, "name: m"},
		{"no path", Problem{File: "f", Line: 1, Col: 1, Msg: "m"}, "f:1:1: m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Error(); got != tt.want {
				t.Fatalf("Error() = %q; want %q", got, tt.want)
			}
		})
	}
	ps := Problems{tests[0].p, tests[1].p}
	if got, want := ps.Error(), tests[0].want+"\n"+tests[1].want; got != want {
		t.Errorf("Problems.Error() = %q; want %q", got, want)
	}
}

// TestFieldTablesMatchTypes pins the decoder's field tables to the yaml tags
// of the Go types, so the decoder, Canonical and Schema agree on names.
func TestFieldTablesMatchTypes(t *testing.T) {
	check := func(name string, tags []string, table []string) {
		t.Helper()
		if strings.Join(tags, ",") != strings.Join(table, ",") {
			t.Errorf("%s: yaml tags %v != decoder fields %v", name, tags, table)
		}
	}
	names := func(fs any) []string {
		switch fs := fs.(type) {
		case []field[Spec]:
			return fieldNames(fs)
		case []field[Resources]:
			return fieldNames(fs)
		case []field[Stage]:
			return fieldNames(fs)
		case []field[Array]:
			return fieldNames(fs)
		case []field[Dependency]:
			return fieldNames(fs)
		}
		return nil
	}
	check("Spec", yamlTags(Spec{}), names(specFields))
	check("Resources", yamlTags(Resources{}), names(resourcesFields))
	check("Stage", yamlTags(Stage{}), names(stageFields))
	check("Array", yamlTags(Array{}), names(arrayFields))
	check("Dependency", yamlTags(Dependency{}), names(dependencyFields))
}

func fieldNames[T any](fs []field[T]) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.name
	}
	return out
}
