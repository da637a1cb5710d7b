package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeDB is a packageDB from tables.
type fakeDB struct {
	owners    map[string][]string // path -> packages
	base      map[string]bool
	installed map[string]bool
	programs  map[string]string // name -> path
	deps      map[string][]string
}

func (f *fakeDB) Owners(p string) ([]string, error) {
	if o, ok := f.owners[p]; ok {
		return o, nil
	}
	return nil, errors.New("no path found matching pattern " + p)
}
func (f *fakeDB) Base(p string) bool        { return f.base[p] }
func (f *fakeDB) Installed(p string) bool   { return f.installed[p] }
func (f *fakeDB) Depends(p string) []string { return f.deps[p] }
func (f *fakeDB) LookPath(n string) (string, error) {
	if p, ok := f.programs[n]; ok {
		return p, nil
	}
	return "", errors.New(n + ": not found")
}

// writeTree writes files (relative path -> content) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCheck(t *testing.T) {
	sys := t.TempDir() // stands for /usr/include and other system files
	wkt := filepath.Join(sys, "include", "google", "protobuf", "timestamp.proto")
	writeTree(t, sys, map[string]string{"include/google/protobuf/timestamp.proto": "syntax = \"proto3\";\n", "boot/vmlinuz": "k"})
	kernel := filepath.Join(sys, "boot", "vmlinuz")
	generate := "#!/bin/sh\nprotoc -I api -I " + filepath.Join(sys, "include") + " api/vhpc.proto\n"
	proto := "syntax = \"proto3\";\nimport \"google/protobuf/timestamp.proto\";\nimport \"own.proto\";\n"
	db := func() *fakeDB {
		return &fakeDB{
			owners: map[string][]string{
				"/usr/bin/protoc": {"protobuf-compiler"}, wkt: {"libprotobuf-dev"}, "/usr/bin/sed": {"sed"},
				"/usr/bin/virsh": {"libvirt-clients"}, "/usr/sbin/libvirtd": {"libvirt-daemon"}, kernel: {"linux-image-6.1.0-1-amd64"},
			},
			base:      map[string]bool{"sed": true},
			installed: map[string]bool{"protobuf-compiler": true, "libprotobuf-dev": true, "libvirt-daemon-system": true, "git": true},
			programs:  map[string]string{"protoc": "/usr/bin/protoc", "sed": "/usr/bin/sed", "virsh": "/usr/bin/virsh", "libvirtd": "/usr/sbin/libvirtd"},
			deps:      map[string][]string{"libvirt-daemon-system": {"libvirt-daemon", "libvirt-clients"}},
		}
	}
	base := map[string]string{
		"scripts/generate.sh": generate,
		"api/vhpc.proto":      proto,
		"api/own.proto":       "syntax = \"proto3\";\n",
	}
	tests := []struct {
		name     string
		list     string
		files    map[string]string
		mutate   func(*fakeDB)
		problems []string // substrings, one per expected problem
	}{
		{name: "the libprotobuf-dev miss that broke a fresh machine", list: "protobuf-compiler\n",
			problems: []string{`api/vhpc.proto:2: uses google/protobuf/timestamp.proto (` + wkt + `) from package libprotobuf-dev, which is not on`}},
		{name: "everything listed", list: "protobuf-compiler # protoc\nlibprotobuf-dev\n"},
		{name: "well-known protos not installed at all", list: "protobuf-compiler\nlibprotobuf-dev\n",
			mutate:   func(f *fakeDB) { f.owners[wkt] = nil; _ = os.Remove(wkt) },
			problems: []string{`imports "google/protobuf/timestamp.proto", which no include directory has`}},
		{name: "program not installed", list: "protobuf-compiler\nlibprotobuf-dev\n",
			files:    map[string]string{"scripts/x.sh": "qemu-img create x 1G\n"},
			problems: []string{`scripts/x.sh:1: runs "qemu-img", which is not installed`}},
		{name: "base package needs no line", list: "protobuf-compiler\nlibprotobuf-dev\n",
			files: map[string]string{"scripts/x.sh": "sed -n 1p x\n"}},
		{name: "dependency of a listed package", list: "protobuf-compiler\nlibprotobuf-dev\nlibvirt-daemon-system\n",
			files: map[string]string{"scripts/x.sh": "libvirtd -d\nvirsh version\n"}},
		{name: "listed but not installed", list: "protobuf-compiler\nlibprotobuf-dev\nqemu-utils\n",
			problems: []string{"lists qemu-utils, which is not installed"}},
		{name: "a script that installs by itself", list: "protobuf-compiler\nlibprotobuf-dev\n",
			files: map[string]string{"scripts/x.sh": "apt-get install -y sed\n"},
			mutate: func(f *fakeDB) {
				f.programs["apt-get"] = "/usr/bin/apt-get"
				f.owners["/usr/bin/apt-get"] = []string{"apt"}
				f.base["apt"] = true
			},
			problems: []string{"scripts/x.sh:1: installs packages itself"}},
		{name: "Go exec and system path literals", list: "protobuf-compiler\nlibprotobuf-dev\n",
			files:    map[string]string{"x/x.go": "package x\nimport \"os/exec\"\nfunc f() {\n\tvar argv []string\n\targv = []string{\"virsh\", \"list\"}\n\t_ = exec.Command(argv[0])\n\t_ = \"" + kernel + "\"\n}\n"},
			mutate:   func(f *fakeDB) { f.owners[kernel] = []string{"linux-image-6.1.0-1-amd64"} },
			problems: []string{`x/x.go:6: uses virsh (/usr/bin/virsh) from package libvirt-clients, which is not on`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			files := map[string]string{ListPath: tt.list}
			for k, v := range base {
				files[k] = v
			}
			for k, v := range tt.files {
				files[k] = v
			}
			writeTree(t, root, files)
			writeTree(t, sys, map[string]string{"include/google/protobuf/timestamp.proto": "syntax = \"proto3\";\n"})
			d := db()
			if tt.mutate != nil {
				tt.mutate(d)
			}
			rep, err := check(root, d)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Problems) != len(tt.problems) {
				t.Fatalf("problems:\n%s\nwant %d: %q", strings.Join(rep.Problems, "\n"), len(tt.problems), tt.problems)
			}
			for i, want := range tt.problems {
				if !strings.Contains(rep.Problems[i], want) {
					t.Errorf("problem %d: %q\nwant it to contain %q", i, rep.Problems[i], want)
				}
			}
			var out bytes.Buffer
			code := run(root, true, d, &out, &out)
			if want := map[bool]int{true: 0, false: 1}[len(tt.problems) == 0]; code != want {
				t.Errorf("exit %d, want %d:\n%s", code, want, out.String())
			}
		})
	}
}

func TestParseList(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string
		err       string
	}{
		{name: "names and comments", src: "# head\n\ngit   # why\nqemu-system-x86\nlibstdc++6\n", want: []string{"git", "qemu-system-x86", "libstdc++6"}},
		{name: "two words", src: "git make\n", err: "list:1: want one Debian package name a line"},
		{name: "bad name", src: "Git\n", err: "want one Debian package name"},
		{name: "twice", src: "git\ngit\n", err: "list:2: git is listed twice"},
		{name: "empty", src: "# nothing\n", err: "lists no package"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseList(strings.NewReader(tt.src), "list")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestParseDpkgOutput(t *testing.T) {
	owners := parseOwners("diversion by x from: /bin/sh\nlibvirt-daemon, libvirt-daemon-driver-qemu:amd64: /usr/sbin/libvirtd\nother: /usr/sbin/libvirtd.conf\n", "/usr/sbin/libvirtd")
	if strings.Join(owners, ",") != "libvirt-daemon,libvirt-daemon-driver-qemu" {
		t.Errorf("owners %q", owners)
	}
	deps := parseDepends("libc6 (>= 2.34), , libvirt-daemon (= 9.0.0-4), default-dbus-system-bus | dbus-system-bus, python3:any")
	if strings.Join(deps, ",") != "libc6,libvirt-daemon,default-dbus-system-bus,dbus-system-bus,python3" {
		t.Errorf("deps %q", deps)
	}
}
