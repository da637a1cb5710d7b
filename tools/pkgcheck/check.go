package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// ListPath is the one package list, relative to the repository root.
const ListPath = "scripts/debian-packages.txt"

// installer is the only script allowed to run apt-get install.
const installer = "scripts/install-deps.sh"

// systemPath is where programs are looked up: the PATH of a root shell on
// Debian, without the repository's bin/ or a user's own directories.
const systemPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// notFromDebian says where a program the project runs comes from when no
// Debian package provides it; ok is false for every other program.
func notFromDebian(name string) (from string, ok bool) {
	switch name {
	case "go", "gofmt":
		return "the Go toolchain (/usr/local/go; the README's prerequisite)", true
	case "nvidia-smi":
		return "NVIDIA's driver (GPU hosts only; tests without it skip with a message)", true
	case "nvcc":
		return "NVIDIA's CUDA toolkit (GPU hosts only; tests without it skip with a message)", true
	case "hpcd", "hpcsub", "hpc-agent", "hpc-guest", "hpc", "hpcsim", "hpcbench":
		return "this project (bin/)", true
	}
	return "", false
}

// Kind says what a use needs from the system.
type Kind string

// The kinds of use.
const (
	Program Kind = "program" // a command run by name, looked up on PATH
	File    Kind = "file"    // an absolute path named in code
	Include Kind = "include" // a file found through an include directory
)

// Use is one thing the project needs from the system, and where.
type Use struct {
	Kind Kind
	Name string // program name, absolute path, or include-relative path
	At   string // file:line of the use
	// Dirs are the include directories to search (Include only).
	Dirs []string
}

// packageDB answers questions about installed Debian packages; dpkg is
// the real one, tests use a fake.
type packageDB interface {
	// Owners are the packages that installed path ("" none).
	Owners(path string) ([]string, error)
	// Base reports whether pkg is on every Debian system (Essential: yes
	// or Priority: required).
	Base(pkg string) bool
	// Installed reports whether pkg is installed.
	Installed(pkg string) bool
	// LookPath finds a program on PATH.
	LookPath(name string) (string, error)
	// Depends are the packages pkg depends on (Depends and Pre-Depends,
	// every alternative), without versions.
	Depends(pkg string) []string
}

// Resolved is a use with the file and package that provide it.
type Resolved struct {
	Use
	Path    string
	Package string // "" when not from Debian
	Note    string
}

// Report is the check's result.
type Report struct {
	Listed   []string
	OK       []Resolved
	Problems []string
}

// check collects the uses under root and resolves each against db.
func check(root string, db packageDB) (*Report, error) {
	listed, err := readList(filepath.Join(root, ListPath))
	if err != nil {
		return nil, err
	}
	uses, installs, err := collect(root)
	if err != nil {
		return nil, err
	}
	rep := &Report{Listed: listed}
	for _, at := range installs {
		rep.Problems = append(rep.Problems, fmt.Sprintf("%s: installs packages itself; only %s installs, from %s", at, installer, ListPath))
	}
	for _, p := range listed {
		if !db.Installed(p) {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s lists %s, which is not installed: run %s as root", ListPath, p, installer))
		}
	}
	onList := pulledIn(listed, db)
	seen := map[string]bool{}
	for _, u := range uses {
		key := string(u.Kind) + " " + u.Name
		if seen[key] {
			continue // the first use of a name speaks for all
		}
		seen[key] = true
		r, problem := resolve(u, db, onList)
		if problem != "" {
			rep.Problems = append(rep.Problems, problem)
		} else if r != nil {
			rep.OK = append(rep.OK, *r)
		}
	}
	return rep, nil
}

// resolve finds the file and package behind one use. A nil result with no
// problem means the use is not the system's business (a path that does
// not exist on the host, such as one inside a guest).
func resolve(u Use, db packageDB, onList map[string]string) (*Resolved, string) {
	r := &Resolved{Use: u}
	switch u.Kind {
	case Program:
		if from, ok := notFromDebian(u.Name); ok {
			r.Note = "not from Debian: " + from
			return r, ""
		}
		p, err := db.LookPath(u.Name)
		if err != nil {
			return nil, fmt.Sprintf("%s: runs %q, which is not installed: add the package that provides it to %s", u.At, u.Name, ListPath)
		}
		r.Path = p
	case File:
		if _, err := os.Stat(u.Name); err != nil {
			return nil, ""
		}
		if strings.HasPrefix(u.Name, "/usr/local/") || strings.HasPrefix(u.Name, "/etc/") {
			return nil, "" // not installed by packages, or configuration
		}
		r.Path = u.Name
	case Include:
		for _, d := range u.Dirs {
			if p := filepath.Join(d, u.Name); fileExists(p) {
				r.Path = p
				break
			}
		}
		if r.Path == "" {
			return nil, fmt.Sprintf("%s: imports %q, which no include directory has (%s): add the package that provides it to %s", u.At, u.Name, strings.Join(u.Dirs, ", "), ListPath)
		}
	}
	owners, err := ownersOf(db, r.Path)
	if err != nil || len(owners) == 0 {
		return nil, fmt.Sprintf("%s: uses %s (%s), which no Debian package installed: install it from a package on %s", u.At, u.Name, r.Path, ListPath)
	}
	for _, o := range owners {
		if via, ok := onList[o]; ok {
			r.Package = o
			if via != o {
				r.Note = "pulled in by " + via
			}
			return r, ""
		}
	}
	for _, o := range owners {
		if db.Base(o) {
			r.Package, r.Note = o, "on every Debian system"
			return r, ""
		}
	}
	return nil, fmt.Sprintf("%s: uses %s (%s) from package %s, which is not on %s: add it", u.At, u.Name, r.Path, strings.Join(owners, " or "), ListPath)
}

// pulledIn maps every package that installing the list brings, the
// listed ones and their dependencies transitively, to the listed package
// that brings it.
func pulledIn(listed []string, db packageDB) map[string]string {
	out := map[string]string{}
	for _, p := range listed {
		out[p] = p
	}
	for _, root := range listed {
		queue := []string{root}
		for len(queue) > 0 {
			p := queue[0]
			queue = queue[1:]
			for _, d := range db.Depends(p) {
				if _, seen := out[d]; !seen {
					out[d] = root
					queue = append(queue, d)
				}
			}
		}
	}
	return out
}

// ownersOf asks for the packages of path, then of the file it links to,
// then of its other spelling on a merged-/usr system (dpkg records
// /bin/busybox while PATH finds /usr/bin/busybox).
func ownersOf(db packageDB, path string) ([]string, error) {
	cands := []string{path}
	if real, err := filepath.EvalSymlinks(path); err == nil && real != path {
		cands = append(cands, real)
	}
	for _, c := range slices.Clone(cands) {
		if rest, ok := strings.CutPrefix(c, "/usr"); ok {
			cands = append(cands, rest)
		} else {
			cands = append(cands, "/usr"+c)
		}
	}
	var errs []error
	for _, c := range cands {
		o, err := db.Owners(c)
		if err == nil && len(o) > 0 {
			return o, nil
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return nil, errors.Join(errs...)
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// readList reads the package names of the list (first word of each line,
// comments and blanks skipped). Names must be valid Debian package names.
func readList(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read the package list: %w", err)
	}
	defer f.Close()
	return parseList(f, path)
}

func parseList(r io.Reader, name string) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(fields) > 1 || !validPackageName(fields[0]) {
			return nil, fmt.Errorf("%s:%d: want one Debian package name a line (comments after #), got %q", name, n, strings.TrimSpace(line))
		}
		if slices.Contains(out, fields[0]) {
			return nil, fmt.Errorf("%s:%d: %s is listed twice", name, n, fields[0])
		}
		out = append(out, fields[0])
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: lists no package", name)
	}
	return out, nil
}

// validPackageName follows Debian policy 5.6.1: lower case letters,
// digits, + - . ; at least two characters, starting alphanumeric.
func validPackageName(s string) bool {
	if len(s) < 2 {
		return false
	}
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && (c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// collect walks the repository for uses: shell scripts (scripts/*.sh,
// .ci/run), Makefile recipes, Go files and the proto include paths.
// installs are the places outside the installer that run apt-get install.
func collect(root string) (uses []Use, installs []string, err error) {
	var shellFiles, goFiles []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			base := d.Name()
			if rel != "." && (strings.HasPrefix(base, ".") && base != ".ci" || base == "bin" || base == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case strings.HasSuffix(rel, ".sh") || rel == filepath.Join(".ci", "run"):
			shellFiles = append(shellFiles, rel)
		case strings.HasSuffix(rel, ".go") && !strings.HasSuffix(rel, ".pb.go"):
			goFiles = append(goFiles, rel)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("walk %s: %w", root, err)
	}
	var includeDirs []Use
	for _, rel := range shellFiles {
		src, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", rel, err)
		}
		sc := scanShell(rel, string(src))
		uses = append(uses, sc.Programs...)
		includeDirs = append(includeDirs, sc.IncludeDirs...)
		if rel != installer {
			installs = append(installs, sc.Installs...)
		}
	}
	if src, err := os.ReadFile(filepath.Join(root, "Makefile")); err == nil {
		sc := scanShell("Makefile", makeRecipes(string(src)))
		uses = append(uses, sc.Programs...)
		includeDirs = append(includeDirs, sc.IncludeDirs...)
		installs = append(installs, sc.Installs...)
	}
	for _, rel := range goFiles {
		src, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", rel, err)
		}
		u, err := scanGo(rel, src)
		if err != nil {
			return nil, nil, err
		}
		uses = append(uses, u...)
	}
	protoUses, err := protoImports(root, includeDirs)
	if err != nil {
		return nil, nil, err
	}
	uses = append(uses, protoUses...)
	return uses, installs, nil
}

// dpkg is the packageDB of this machine, through dpkg-query. What every
// known package is (status, base, dependencies) is read once, by one
// dpkg-query, on the first question; Owners asks per path.
type dpkg struct {
	loaded bool
	status map[string]string // db:Status-Status
	base   map[string]bool   // Essential: yes or Priority: required
	deps   map[string][]string
}

// load reads every known package's status, Essential, Priority and
// dependencies with one dpkg-query; a failure leaves the maps empty, so
// every listed package reads as not installed and the check says so.
func (d *dpkg) load() {
	if d.loaded {
		return
	}
	d.loaded = true
	d.status, d.base, d.deps = map[string]string{}, map[string]bool{}, map[string][]string{}
	out, err := exec.Command("dpkg-query", "-W", "-f=${Package}\t${db:Status-Status}\t${Essential} ${Priority}\t${Pre-Depends}, ${Depends}\n").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 4 {
			continue
		}
		ep := strings.Fields(f[2])
		d.status[f[0]] = f[1]
		d.base[f[0]] = slices.Contains(ep, "yes") || slices.Contains(ep, "required")
		d.deps[f[0]] = parseDepends(f[3])
	}
}

// Depends are pkg's dependencies from the one dump.
func (d *dpkg) Depends(pkg string) []string {
	d.load()
	return d.deps[pkg]
}

// parseDepends reads a Depends field: "a (>= 1), b | c, d:any".
func parseDepends(field string) []string {
	var out []string
	for _, alt := range strings.FieldsFunc(field, func(r rune) bool { return r == ',' || r == '|' }) {
		name, _, _ := strings.Cut(strings.TrimSpace(alt), " ")
		name, _, _ = strings.Cut(name, ":")
		if name != "" && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// Owners runs dpkg-query -S for one exact path.
func (*dpkg) Owners(path string) ([]string, error) {
	out, err := exec.Command("dpkg-query", "-S", path).Output()
	if err != nil {
		return nil, fmt.Errorf("dpkg-query -S %s: %w", path, err)
	}
	return parseOwners(string(out), path), nil
}

// parseOwners reads "pkg1, pkg2:amd64: /path" lines for exactly path,
// skipping diversion lines.
func parseOwners(out, path string) []string {
	var owners []string
	for _, line := range strings.Split(out, "\n") {
		pkgs, p, ok := strings.Cut(line, ": ")
		if !ok || p != path || strings.HasPrefix(line, "diversion ") {
			continue
		}
		for _, o := range strings.Split(pkgs, ",") {
			o, _, _ = strings.Cut(strings.TrimSpace(o), ":")
			if o != "" && !slices.Contains(owners, o) {
				owners = append(owners, o)
			}
		}
	}
	return owners
}

// Base reads Essential and Priority from the one dump.
func (d *dpkg) Base(pkg string) bool {
	d.load()
	return d.base[pkg]
}

// Installed reads the package's status from the one dump.
func (d *dpkg) Installed(pkg string) bool {
	d.load()
	return d.status[pkg] == "installed"
}

// LookPath searches the system PATH only.
func (*dpkg) LookPath(name string) (string, error) {
	for _, dir := range filepath.SplitList(systemPath) {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found in %s", name, systemPath)
}

// print writes the problems, or a summary: the list and, with verbose,
// every use with the package that provides it.
func (r *Report) print(w io.Writer, verbose bool) {
	if len(r.Problems) > 0 {
		fmt.Fprintf(w, "pkgcheck: %d problem(s) with %s:\n", len(r.Problems), ListPath)
		for _, p := range r.Problems {
			fmt.Fprintf(w, "  %s\n", p)
		}
		return
	}
	byPkg := map[string][]string{}
	for _, u := range r.OK {
		key := u.Package
		switch {
		case key == "":
			key = "(" + u.Note + ")"
		case u.Note != "":
			key += " (" + u.Note + ")"
		}
		byPkg[key] = append(byPkg[key], u.Name)
	}
	fmt.Fprintf(w, "pkgcheck: %s (%d packages) provides all %d programs, files and includes used\n", ListPath, len(r.Listed), len(r.OK))
	if !verbose {
		return
	}
	keys := make([]string, 0, len(byPkg))
	for k := range byPkg {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %-24s %s\n", k, strings.Join(byPkg[k], " "))
	}
}
