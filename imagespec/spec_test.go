package imagespec

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vhpc/jobspec"
)

const good = `name: public/python:1
packages: [python3, python3-numpy]
files:
  - {src: run.sh, dst: /opt/app/run.sh, mode: "0755"}
env:
  OMP_NUM_THREADS: "4"
diskSize: 2GiB
template:
  machine: q35
  cpuModel: max
  kernelCmdline: mitigations=off
`

func TestLoadAccepts(t *testing.T) {
	s, err := Load("python.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Ref().String(); got != "public/python:1" {
		t.Errorf("ref %q", got)
	}
	if s.Base != "bookworm" || s.DiskSize != 2<<30 || s.Template.Machine != "q35" || len(s.Files) != 1 || s.Files[0].Mode != "0755" {
		t.Errorf("spec %+v", s)
	}
	m, err := Load("m.yaml", []byte("name: chemistry/lammps\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Ref().Tag != "latest" || m.DiskSize != DefaultDiskSize || m.Template.Machine != "pc" {
		t.Errorf("defaults %+v", m)
	}
}

func TestLoadProblems(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown field", "name: a/b\npackage: [x]\n", `s.yaml:2:1: package: unknown field; did you mean "packages"?`},
		{"unknown nested", "name: a/b\ntemplate: {machin: pc}\n", `s.yaml:2:12: template.machin: unknown field; did you mean "machine"?`},
		{"no suggestion", "name: a/b\nzzzzzzzz: 1\n", "zzzzzzzz: unknown field; want one of name, base"},
		{"duplicate", "name: a/b\nname: a/c\n", "s.yaml:2:1: name: duplicate field"},
		{"wrong kind", "name: a/b\npackages: python3\n", "s.yaml:2:11: packages: is a single value; want a list"},
		{"anchor", "name: &x a/b\n", "anchors and aliases are not supported"},
		{"two documents", "name: a/b\n---\nname: c/d\n", "more than one YAML document"},
		{"empty", "", "empty file"},
		{"not a mapping", "- a\n", "not a mapping"},
		{"missing name", "packages: [x1]\n", "s.yaml:1:1: name: missing"},
		{"bad name", "name: Chem/Lammps\n", "s.yaml:1:7: name: \"Chem/Lammps\": department and name"},
		{"no department", "name: lammps\n", "want department/name[:tag]"},
		{"bad tag", "name: a/b:-x\n", `tag "-x"`},
		{"bad base", "name: a/b\nbase: trixie\n", `s.yaml:2:7: base: "trixie" is not supported`},
		{"bad package", "name: a/b\npackages: [python3, 'Python3=1.0']\n", `s.yaml:2:21: packages[1]: "Python3=1.0" is not a Debian package name`},
		{"duplicate package", "name: a/b\npackages: [vim, vim]\n", `packages[1]: "vim" is listed twice`},
		{"src escapes", "name: a/b\nfiles: [{src: ../x, dst: /x}]\n", `files[0].src: "../x" has a '..'`},
		{"src absolute", "name: a/b\nfiles: [{src: /etc/passwd, dst: /x}]\n", "is absolute"},
		{"dst relative", "name: a/b\nfiles: [{src: x, dst: x}]\n", "files[0].dst: \"x\": want a clean absolute path"},
		{"dst in proc", "name: a/b\nfiles: [{src: x, dst: /proc/x}]\n", "is under /proc"},
		{"bad mode", "name: a/b\nfiles: [{src: x, dst: /x, mode: '999'}]\n", "files[0].mode"},
		{"env reserved", "name: a/b\nenv: {VHPC_X: y}\n", "VHPC_* variables are set by vhpc"},
		{"env name", "name: a/b\nenv: {1X: y}\n", "is not a variable name"},
		{"disk too small", "name: a/b\ndiskSize: 1MiB\n", "s.yaml:2:11: diskSize: 1MiB is out of range"},
		{"disk unit", "name: a/b\ndiskSize: 4 parsecs\n", "unknown unit"},
		{"machine", "name: a/b\ntemplate: {machine: virt}\n", `template.machine: "virt": want pc or q35`},
		{"cmdline init", "name: a/b\ntemplate: {kernelCmdline: init=/bin/sh}\n", "is set by vhpc"},
		{"cmdline chars", "name: a/b\ntemplate: {kernelCmdline: 'a;b'}\n", "only A-Z"},
		{"bool as string", "name: a/b\nbase: true\n", "is a boolean in YAML"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load("s.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("accepted; want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got\n%v\nwant it to contain %q", err, tc.want)
			}
			var ps jobspec.Problems
			if !errors.As(err, &ps) {
				t.Errorf("error is %T, not jobspec.Problems", err)
			}
		})
	}
}

func TestOpenFileConfined(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "secret")
	must(t, os.WriteFile(outside, []byte("s"), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "ok.sh"), []byte("#!/bin/sh\n"), 0o755))
	must(t, os.Symlink(outside, filepath.Join(dir, "escape")))
	must(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	root, err := os.OpenRoot(dir)
	must(t, err)
	defer root.Close()
	tests := []struct {
		src string
		ok  bool
	}{{"ok.sh", true}, {"escape", false}, {"../secret", false}, {"sub", false}, {"missing", false}}
	for _, tc := range tests {
		f, _, err := OpenFile(root, tc.src)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", tc.src, err, tc.ok)
		}
		if f != nil {
			f.Close()
		}
	}
}

func TestSchema(t *testing.T) {
	b, err := Schema()
	must(t, err)
	var m map[string]any
	must(t, json.Unmarshal(b, &m))
	props, _ := m["properties"].(map[string]any)
	for _, k := range []string{"name", "base", "packages", "files", "env", "diskSize", "template"} {
		if _, ok := props[k]; !ok {
			t.Errorf("schema has no property %s", k)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
