package jobspec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParse feeds arbitrary bytes to Parse and Load. They must never panic,
// must fail only with non-empty Problems that have messages, and whatever
// Load accepts must round-trip through Canonical and CanonicalJSON.
// Seeds: every example and bad example, plus one input per class of bad
// input below. Run by hand: go test ./jobspec -run '^$' -fuzz FuzzParse -fuzztime 20s
func FuzzParse(f *testing.F) {
	for _, glob := range []string{"*.yaml", "bad/*"} {
		files, _ := filepath.Glob(filepath.Join(examplesDir, glob))
		for _, file := range files {
			if data, err := os.ReadFile(file); err == nil {
				f.Add(data)
			}
		}
	}
	for _, seed := range []string{
		minimal,
		"",                                  // empty file
		"# only a comment\n",                // empty after comments
		"---\n",                             // empty document
		"name: a\x00b\n",                    // NUL byte
		"name: caf\xe9\n",                   // not UTF-8
		"\xff\xfen\x00a\x00m\x00",           // UTF-16
		"- a\n- b\n",                        // not a mapping
		"just text\n",                       // scalar document
		minimal + "---\n" + minimal,         // two documents
		minimal + "resources:\n  gpu: 1\n",  // misspelt field
		minimal + "comand: [x]\n",           // misspelt top field
		minimal + "resources: {gpus: -1}\n", // negative number
		minimal + "resources: {nodes: 99999999999999999999}\n",     // absurd number
		minimal + "resources: {memory: 4 parsecs}\n",               // bad unit
		minimal + "resources: {memory: 4GB}\n",                     // decimal unit
		minimal + "resources: {memory: 1.5GiB, hugepages: 2GiB}\n", // hugepages > memory
		"name: <script>\ncommand: [x]\n",                           // name with <
		"name: a/b\ncommand: [x]\n",                                // name with /
		minimal + "image: ../x\n",                                  // image with ..
		minimal + "stageIn: [../secret]\n",                         // staging path with ..
		minimal + "stageOut: [{from: /etc/passwd, to: x}]\n",       // absolute staging path
		minimal + "script: echo\n",                                 // both command and script
		"name: t\n",                                                // neither
		"a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n", // alias bomb
		"name: &n t\ncommand: [*n]\n",      // anchor and alias
		"name: !!binary dA==\n",            // custom tag
		minimal + "name: again\n",          // duplicate field
		minimal + "walltime: 31d\n",        // walltime too long
		minimal + "walltime: 1-02:03:04\n", // slurm duration
		minimal + "walltime: 05:00\n",      // MM:SS
		minimal + "array: {frames: 1-240:2, chunk: 4, parallel: 2}\n",
		minimal + "array: {frames: 240-1}\n",
		minimal + "env: {A: 1, VHPC_X: 2, 1B: 3}\n",
		minimal + "dependsOn: [{type: afterok, jobs: [1, 2]}, {jobs: 3}]\n",
		minimal + "retries: 1.5\n",
		"name: " + strings.Repeat("[", 1000) + "\n", // deep nesting
		"{name: t, command: [x], resources: {crossNUMA: true}}",
		"name: t\nscript: |\n  echo \"a\"\n\n  exit 3\n",
		"name: t\ncommand: [\"\\u2028\", \"\\x85\", \"a\\r\"]\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := Parse("fuzz.yaml", data); err != nil {
			checkProblems(t, err)
		}
		s, err := Load("fuzz.yaml", data)
		if err != nil {
			checkProblems(t, err)
			return
		}
		checkRoundTrip(t, s)
	})
}

// checkProblems asserts err is a non-empty, capped Problems whose entries
// have messages and printable errors.
func checkProblems(t *testing.T, err error) {
	t.Helper()
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error %v (%T) is not Problems", err, err)
	}
	if len(ps) == 0 || len(ps) > MaxProblems {
		t.Fatalf("%d problems", len(ps))
	}
	for _, p := range ps {
		if p.Msg == "" {
			t.Fatalf("problem without message: %+v", p)
		}
		if len(p.Value) > maxValueLen+3 {
			t.Fatalf("problem value not truncated: %d bytes", len(p.Value))
		}
	}
	if !utf8.ValidString(err.Error()) {
		t.Fatalf("error text is not UTF-8: %q", err.Error())
	}
}
