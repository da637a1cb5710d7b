package jobspec

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// TestCanonicalGolden pins Canonical and CanonicalJSON of every example.
// Run `go test ./jobspec -run Golden -update` after a deliberate change.
func TestCanonicalGolden(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(examplesDir, "*.yaml"))
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			s, err := Load(filepath.Base(f), data)
			if err != nil {
				t.Fatal(err)
			}
			y, err := s.Canonical()
			if err != nil {
				t.Fatal(err)
			}
			j, err := s.CanonicalJSON()
			if err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join("testdata", "golden", name+".yaml"), y)
			golden(t, filepath.Join("testdata", "golden", name+".json"), append(j, '\n'))
			checkRoundTrip(t, s)
		})
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs (run with -update if intended):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// checkRoundTrip asserts the Canonical contract on a loaded spec: Canonical
// loads back to an Equal spec and is a fixed point; CanonicalJSON
// unmarshals to an Equal spec.
func checkRoundTrip(t *testing.T, s *Spec) {
	t.Helper()
	y, err := s.Canonical()
	if err != nil {
		t.Fatalf("Canonical of a loaded spec: %v", err)
	}
	back, err := Load("canonical.yaml", y)
	if err != nil {
		t.Fatalf("Load(Canonical()):\n%v\ncanonical:\n%s", err, y)
	}
	if !back.Equal(s) {
		t.Fatalf("Load(Canonical()) differs:\n%#v\nwant\n%#v\ncanonical:\n%s", back, s, y)
	}
	y2, err := back.Canonical()
	if err != nil || string(y2) != string(y) {
		t.Fatalf("Canonical is not a fixed point:\n%s\nthen\n%s (%v)", y, y2, err)
	}
	j, err := s.CanonicalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var fromJSON Spec
	if err := json.Unmarshal(j, &fromJSON); err != nil {
		t.Fatalf("json.Unmarshal(CanonicalJSON()): %v\n%s", err, j)
	}
	fromJSON.Defaults()
	if !fromJSON.Equal(s) {
		t.Fatalf("CanonicalJSON round trip differs:\n%#v\nwant\n%#v\njson: %s", &fromJSON, s, j)
	}
	// a plain yaml.Unmarshal of the canonical form reads the same spec too
	var fromYAML Spec
	if err := yaml.Unmarshal(y, &fromYAML); err != nil {
		t.Fatalf("yaml.Unmarshal(Canonical()): %v", err)
	}
	if !fromYAML.Equal(s) {
		t.Fatalf("yaml.Unmarshal round trip differs:\n%#v\nwant\n%#v", &fromYAML, s)
	}
}

func TestCanonicalIsStable(t *testing.T) {
	// the same job written two ways gives the same bytes
	a := "name: x\nscript: echo\nenv: {B: 2, A: 1}\nresources: {memory: 1GiB, nodes: 1}\nwalltime: 3600\nstageIn: [in]\n"
	b := "stageIn: [{from: in, to: in}]\nwalltime: 1h\nresources:\n  memory: 1073741824\nenv:\n  A: \"1\"\n  B: \"2\"\nscript: echo\nname: x\nqos: normal\n"
	sa, err := Load("a", []byte(a))
	if err != nil {
		t.Fatal(err)
	}
	sb, err := Load("b", []byte(b))
	if err != nil {
		t.Fatal(err)
	}
	ya, _ := sa.Canonical()
	yb, _ := sb.Canonical()
	if string(ya) != string(yb) {
		t.Fatalf("canonical forms differ:\n%s\n---\n%s", ya, yb)
	}
}

func TestCanonicalRefusesInvalid(t *testing.T) {
	s := &Spec{Name: "a/b", Command: []string{"x"}}
	if _, err := s.Canonical(); err == nil || !strings.Contains(err.Error(), `name: "a/b" has '/'`) {
		t.Fatalf("Canonical of an invalid spec: %v", err)
	}
	if _, err := s.CanonicalJSON(); err == nil {
		t.Fatal("CanonicalJSON of an invalid spec succeeded")
	}
	problemsOf(t, func() error { _, err := s.Canonical(); return err }())
}

func TestCanonicalDoesNotModify(t *testing.T) {
	s := &Spec{Name: "a", Script: "echo"}
	if _, err := s.Canonical(); err != nil {
		t.Fatal(err)
	}
	if s.Image != "" || s.Resources.Nodes != 0 {
		t.Fatalf("Canonical changed its receiver: %+v", s)
	}
}

func TestCanonicalTrickyStrings(t *testing.T) {
	for _, script := range []string{
		"echo hi", "echo 'a' \"b\"\n", "  leading space\n", "trailing space \n", "tab\there\n",
		"multi\nline\n\n\nblank lines\n", "no newline at end\nx", "#!/bin/sh\nexit 0\n", "- not a list",
		"key: value", "null", "~", "true", "0x10", "1e3", "'", "\"", "{a}", "[a]", "&a *b", "% x", "@x", "`x`",
		"\u2028line sep", "\u0085nel", "emoji 🚀", "x\r\n", "ends with cr\r", "a\x1bcontrol",
	} {
		s := &Spec{Name: "x", Script: script}
		s.Defaults()
		checkRoundTrip(t, s)
		c := &Spec{Name: "x", Command: []string{script, "", " "}, Env: map[string]string{"A": script}}
		c.Defaults()
		checkRoundTrip(t, c)
	}
}
