package imagespec

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"vhpc/jobspec"
)

// Defaults and bounds.
const (
	DefaultBase     = "bookworm"
	DefaultTag      = "latest"
	DefaultDiskSize = jobspec.Quantity(4 << 30)
	MinDiskSize     = jobspec.Quantity(512 << 20)
	MaxDiskSize     = jobspec.Quantity(1 << 40)
	MaxPackages     = 512
	MaxFiles        = 256
	MaxEnv          = 128
)

var (
	// OCI repository path components are lower case.
	componentRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	// The OCI distribution tag grammar.
	tagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)
	// Debian policy 5.6.1: lower case, digits, + - .; at least two, alnum first.
	packageRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]{1,127}$`)
	envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
	cpuRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	argRE     = regexp.MustCompile(`^[A-Za-z0-9._,:=/+-]{1,256}$`)
)

// ParseRef parses department/name[:tag], the tag defaulting to latest.
func ParseRef(s string) (Ref, error) {
	repo, tag, hasTag := strings.Cut(s, ":")
	if !hasTag {
		tag = DefaultTag
	}
	dept, name, ok := strings.Cut(repo, "/")
	if !ok || strings.Contains(name, "/") {
		return Ref{}, fmt.Errorf("%q: want department/name[:tag], such as chemistry/lammps:2024.08", s)
	}
	if !componentRE.MatchString(dept) || !componentRE.MatchString(name) {
		return Ref{}, fmt.Errorf("%q: department and name are 1..64 of a-z 0-9 . _ - (lower case, starting with a letter or digit)", s)
	}
	if !tagRE.MatchString(tag) {
		return Ref{}, fmt.Errorf("%q: tag %q is 1..128 of A-Z a-z 0-9 . _ -, not starting with . or -", s, tag)
	}
	return Ref{Department: dept, Name: name, Tag: tag}, nil
}

// Defaults fills the defaults in place: base, disk size, machine (the
// name's tag is defaulted by Ref).
func (s *Spec) Defaults() {
	if s.Base == "" {
		s.Base = DefaultBase
	}
	if s.DiskSize == 0 {
		s.DiskSize = DefaultDiskSize
	}
	if s.Template.Machine == "" {
		s.Template.Machine = "pc"
	}
}

// Validate checks every value (after Defaults) and returns all problems
// as jobspec.Problems, or nil. It does not touch the file system: Files
// checks the sources.
func (s *Spec) Validate() error {
	var ps jobspec.Problems
	bad := func(p, format string, args ...any) {
		lc := s.pos[p]
		if lc == ([2]int{}) {
			lc = s.pos[""] // a missing field: its parent, the document
		}
		ps = append(ps, jobspec.Problem{Path: p, Line: lc[0], Col: lc[1], Msg: fmt.Sprintf(format, args...)})
	}
	if s.Name == "" {
		bad("name", "missing; want department/name[:tag]")
	} else if _, err := ParseRef(s.Name); err != nil {
		bad("name", "%v", err)
	}
	if s.Base != DefaultBase {
		bad("base", "%q is not supported; want bookworm", s.Base)
	}
	if len(s.Packages) > MaxPackages {
		bad("packages", "%d packages; the most is %d", len(s.Packages), MaxPackages)
	}
	for i, p := range s.Packages {
		switch {
		case !packageRE.MatchString(p):
			bad(fmt.Sprintf("packages[%d]", i), "%q is not a Debian package name (2..128 of a-z 0-9 + - ., starting with a letter or digit; no versions)", p)
		case slices.Index(s.Packages, p) < i:
			bad(fmt.Sprintf("packages[%d]", i), "%q is listed twice", p)
		}
	}
	if len(s.Files) > MaxFiles {
		bad("files", "%d files; the most is %d", len(s.Files), MaxFiles)
	}
	for i, f := range s.Files {
		p := fmt.Sprintf("files[%d]", i)
		if err := checkSrc(f.Src); err != nil {
			bad(p+".src", "%v", err)
		}
		if err := checkDst(f.Dst); err != nil {
			bad(p+".dst", "%v", err)
		}
		if f.Mode != "" {
			if _, err := strconv.ParseUint(f.Mode, 8, 12); err != nil || len(f.Mode) > 4 {
				bad(p+".mode", "%q: want octal permissions such as 0644 or 0755", f.Mode)
			}
		}
	}
	if len(s.Env) > MaxEnv {
		bad("env", "%d variables; the most is %d", len(s.Env), MaxEnv)
	}
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		v := s.Env[k]
		switch {
		case !envNameRE.MatchString(k):
			bad("env."+k, "%q is not a variable name ([A-Za-z_][A-Za-z0-9_]*)", k)
		case strings.HasPrefix(k, "VHPC_"):
			bad("env."+k, "VHPC_* variables are set by vhpc; pick another name")
		case strings.ContainsAny(v, "\x00\n") || len(v) > 4096:
			bad("env."+k, "value has a NUL or newline, or is over 4096 bytes")
		}
	}
	if s.DiskSize < MinDiskSize || s.DiskSize > MaxDiskSize {
		bad("diskSize", "%s is out of range; want %s..%s", s.DiskSize, MinDiskSize, MaxDiskSize)
	}
	switch s.Template.Machine {
	case "pc", "q35":
	default:
		bad("template.machine", "%q: want pc or q35", s.Template.Machine)
	}
	if m := s.Template.CPUModel; m != "" && !cpuRE.MatchString(m) {
		bad("template.cpuModel", "%q is not a CPU model name (such as Skylake-Server or max)", m)
	}
	for _, a := range strings.Fields(s.Template.KernelCmdline) {
		key, _, _ := strings.Cut(a, "=")
		switch {
		case !argRE.MatchString(a):
			bad("template.kernelCmdline", "argument %q: only A-Z a-z 0-9 . _ , : = / + - are allowed", a)
		case slices.Contains([]string{"root", "init", "rdinit", "console", "rw", "ro"}, key):
			bad("template.kernelCmdline", "argument %q is set by vhpc (root, init, rdinit, console, rw/ro)", a)
		}
	}
	if len(ps) == 0 {
		return nil
	}
	return ps
}

// checkSrc accepts a clean relative path without "..".
func checkSrc(p string) error {
	switch {
	case p == "":
		return errors.New("missing; want a path relative to the spec's directory")
	case path.IsAbs(p):
		return fmt.Errorf("%q is absolute; want a path relative to the spec's directory", p)
	case !fs.ValidPath(p) || p == ".":
		return fmt.Errorf("%q has a '..', '.' or empty element; want a clean relative path inside the spec's directory", p)
	}
	return nil
}

// checkDst accepts a clean absolute path that is not / and not under the
// kernel's file systems.
func checkDst(p string) error {
	if p == "" || !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
		return fmt.Errorf("%q: want a clean absolute path in the image such as /opt/app/run.sh", p)
	}
	for _, top := range []string{"/proc", "/sys", "/dev", "/run", "/tmp", "/jobshare", "/scratch"} {
		if p == top || strings.HasPrefix(p, top+"/") {
			return fmt.Errorf("%q is under %s, which is mounted at boot; choose another place", p, top)
		}
	}
	return nil
}

// Load is Parse + Defaults + Validate: what `hpc image build` calls.
func Load(filename string, data []byte) (*Spec, error) {
	s, err := Parse(filename, data)
	if err != nil {
		return nil, err
	}
	s.Defaults()
	if err := s.Validate(); err != nil {
		var ps jobspec.Problems
		if errors.As(err, &ps) {
			for i := range ps {
				ps[i].File = filename
			}
		}
		return nil, err
	}
	return s, nil
}

// LoadFile reads and loads a spec file.
func LoadFile(file string) (*Spec, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("image spec: %w", err)
	}
	return Load(file, b)
}

// OpenFile opens a Files source inside dir through an os.Root, so neither
// ".." nor a symlink can lead outside dir. The builder copies through it.
func OpenFile(root *os.Root, src string) (*os.File, fs.FileInfo, error) {
	if err := checkSrc(src); err != nil {
		return nil, nil, err
	}
	f, err := root.Open(src)
	if err != nil {
		return nil, nil, fmt.Errorf("files: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("files: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("files: %s is not a regular file", src)
	}
	return f, fi, nil
}
