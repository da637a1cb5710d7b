package vmimages

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"vhpc/imagespec"
)

// debianBuilderVersion is part of every Debian image's hash: bump it when
// the build steps change so cached images are rebuilt.
const debianBuilderVersion = "debian-v2"

// Files of a built Debian image directory (and of a pulled one).
const (
	ConfigFile   = "config.json"
	KernelFile   = "kernel"
	InitrdFile   = "initrd"
	RootDiskFile = "root.qcow2"
)

// GuestInitPath is where hpc-guest is installed in a Debian image; the
// kernel command line names it as init=.
const GuestInitPath = "/usr/sbin/hpc-guest"

// DefaultMirror is the Debian mirror images are built from.
const DefaultMirror = "http://deb.debian.org/debian"

// DefaultSourceDateEpoch (2024-01-01) stamps builds when SOURCE_DATE_EPOCH
// is not given, so two builds of one spec are alike.
const DefaultSourceDateEpoch = 1704067200

// rootUUID is the fixed file system UUID (and hash seed) of every root
// disk: part of making the build reproducible.
const rootUUID = "5c0a3a9e-7d1e-4b8e-9a43-7668706301ad"

// guestPackages are installed in every Debian image besides the spec's:
// the kernel, its initramfs tools, kmod (modules), e2fsprogs (mke2fs for
// scratch when the host did not format it).
var guestPackages = []string{"linux-image-amd64", "initramfs-tools", "kmod", "e2fsprogs"}

// DebianOptions are the inputs of BuildDebian besides the spec.
type DebianOptions struct {
	// Store is the directory images are built into and cached in:
	// <Store>/<department>-<name>-<tag>-<hash>/.
	Store string
	// GuestBinary is the static hpc-guest (FindGuestBinary).
	GuestBinary string
	// Mirror defaults to DefaultMirror.
	Mirror string
	// SourceDateEpoch stamps the build; 0 = DefaultSourceDateEpoch.
	SourceDateEpoch int64
	// Progress receives one line per step and the tools' output (stderr
	// for `hpc image build`); nil = discarded.
	Progress io.Writer
	// Log defaults to discarding.
	Log *slog.Logger
}

// DebianConfig is config.json of a Debian image: what the agent needs to
// boot it and what `hpc image inspect` shows.
type DebianConfig struct {
	Ref      string             `json:"ref"`
	Base     string             `json:"base"`
	Template imagespec.Template `json:"template"`
	// Cmdline is the full kernel command line (root, init, console, the
	// template's extra arguments).
	Cmdline       string            `json:"cmdline"`
	KernelVersion string            `json:"kernelVersion"`
	Env           map[string]string `json:"env,omitempty"`
	DiskSizeBytes int64             `json:"diskSizeBytes"`
	// Packages are every installed package with its version, from the
	// image's dpkg status, sorted by name.
	Packages   []Package  `json:"packages"`
	Provenance Provenance `json:"provenance"`
}

// Package is one installed Debian package.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Provenance says how an image was built.
type Provenance struct {
	SpecHash          string    `json:"specHash"`
	Builder           string    `json:"builder"`
	MmdebstrapVersion string    `json:"mmdebstrapVersion"`
	Mirror            string    `json:"mirror"`
	SourceDateEpoch   int64     `json:"sourceDateEpoch"`
	Date              time.Time `json:"date"`
}

// DebianImage is a built (or pulled) image directory: a Debian image, or
// the tiny image (which has no root disk).
type DebianImage struct {
	Dir            string
	Kernel, Initrd string // absolute paths in Dir
	// RootDisk is the absolute path of root.qcow2; "" for an
	// initramfs-only image such as tiny.
	RootDisk string
	Config   DebianConfig
	// Cached is true when BuildDebian found the image already built.
	Cached bool
}

// OpenDebian reads an image directory (built by BuildDebian or
// EnsureTiny, or pulled from a registry). The runner calls it to boot a
// job from an image; it checks that every file is there. The kernel may be
// named kernel, vmlinux or vmlinuz and the initrd initrd or initrd.img;
// root.qcow2 may be missing only when the command line names no root=.
func OpenDebian(dir string) (DebianImage, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return DebianImage{}, fmt.Errorf("image %s: %w", dir, err)
	}
	img := DebianImage{Dir: abs}
	b, err := os.ReadFile(filepath.Join(abs, ConfigFile))
	if err != nil {
		return DebianImage{}, fmt.Errorf("image %s: %w", dir, err)
	}
	if err := json.Unmarshal(b, &img.Config); err != nil {
		return DebianImage{}, fmt.Errorf("image %s: %s: %w", dir, ConfigFile, err)
	}
	if img.Config.Cmdline == "" {
		return DebianImage{}, fmt.Errorf("image %s: %s has no kernel command line", dir, ConfigFile)
	}
	if img.Kernel, err = firstFile(abs, KernelFile, "vmlinux", "vmlinuz"); err != nil {
		return DebianImage{}, fmt.Errorf("image %s: no kernel: %w", dir, err)
	}
	if img.Initrd, err = firstFile(abs, InitrdFile, "initrd.img"); err != nil {
		return DebianImage{}, fmt.Errorf("image %s: no initrd: %w", dir, err)
	}
	img.RootDisk = filepath.Join(abs, RootDiskFile)
	if _, err := os.Stat(img.RootDisk); err != nil {
		if !errors.Is(err, fs.ErrNotExist) || strings.Contains(img.Config.Cmdline, "root=") {
			return DebianImage{}, fmt.Errorf("image %s: %w", dir, err)
		}
		img.RootDisk = "" // an initramfs-only image (tiny): the job boots without a root disk
	}
	return img, nil
}

// firstFile is the path of the first of names that exists in dir.
func firstFile(dir string, names ...string) (string, error) {
	for _, n := range names {
		p := filepath.Join(dir, n)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	return "", fmt.Errorf("none of %s", strings.Join(names, ", "))
}

// DebianCmdline is the kernel command line of a Debian image: root on the
// first virtio disk, hpc-guest as init, the console on the serial port,
// no fsck, reboot (= domain destroyed) on panic, then the template's extra
// arguments (imagespec has refused root=, init=, console=).
func DebianCmdline(t imagespec.Template) string {
	c := "root=/dev/vda rootfstype=ext4 rw fsck.mode=skip console=ttyS0 panic=-1 quiet loglevel=3 init=" + GuestInitPath
	if extra := strings.Join(strings.Fields(t.KernelCmdline), " "); extra != "" {
		c += " " + extra
	}
	return c
}

// SpecHash is the cache key of a build: the builder version, the spec
// (canonical JSON), every copied file's bytes, hpc-guest's bytes, the
// mirror and the epoch. It reads the files through specDir's os.Root.
func SpecHash(s *imagespec.Spec, specDir string, o DebianOptions) (string, error) {
	o = o.withDefaults()
	h := sha256.New()
	js, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("hash spec: %w", err)
	}
	fmt.Fprintf(h, "%s\n%s\n%s\n%d\n%s\n", debianBuilderVersion, js, o.Mirror, o.SourceDateEpoch, DebianCmdline(s.Template))
	if len(s.Files) > 0 {
		root, err := os.OpenRoot(specDir)
		if err != nil {
			return "", fmt.Errorf("spec directory: %w", err)
		}
		defer root.Close()
		for _, f := range s.Files {
			r, _, err := imagespec.OpenFile(root, f.Src)
			if err != nil {
				return "", err
			}
			fmt.Fprintf(h, "file %s\n", f.Src)
			_, err = io.Copy(h, r)
			r.Close()
			if err != nil {
				return "", fmt.Errorf("hash %s: %w", f.Src, err)
			}
		}
	}
	g, err := os.Open(o.GuestBinary)
	if err != nil {
		return "", fmt.Errorf("hpc-guest: %w", err)
	}
	defer g.Close()
	if _, err := io.Copy(h, g); err != nil {
		return "", fmt.Errorf("hash hpc-guest: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

func (o DebianOptions) withDefaults() DebianOptions {
	if o.Mirror == "" {
		o.Mirror = DefaultMirror
	}
	if o.SourceDateEpoch == 0 {
		o.SourceDateEpoch = DefaultSourceDateEpoch
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// BuildDebian builds the image of spec s (files relative to specDir) into
// o.Store, or returns the cached one when an image with the same SpecHash
// is there. Steps: mmdebstrap (minbase + the spec's packages + the kernel,
// with an initramfs that mounts a virtio root), files, environment and
// hpc-guest as init copied in, the kernel extracted, mkfs.ext4 -d with a
// fixed UUID, qemu-img convert -c to qcow2, config.json. No loop mounts.
// It runs as root (mmdebstrap's root mode; files keep their owners). A
// build is made in a temporary directory and renamed into place; a
// failure leaves nothing behind. An unknown package fails the build with
// apt's line naming it. `hpc image build` and the e2e tests call it.
func BuildDebian(ctx context.Context, s *imagespec.Spec, specDir string, o DebianOptions) (DebianImage, error) {
	o = o.withDefaults()
	if err := s.Validate(); err != nil {
		return DebianImage{}, err
	}
	if err := CheckStatic(o.GuestBinary); err != nil {
		return DebianImage{}, err
	}
	sum, err := SpecHash(s, specDir, o)
	if err != nil {
		return DebianImage{}, err
	}
	ref := s.Ref()
	dir := filepath.Join(o.Store, ref.Department+"-"+ref.Name+"-"+ref.Tag+"-"+sum)
	if img, err := OpenDebian(dir); err == nil {
		img.Cached = true
		o.Log.Debug("image found", "dir", dir)
		return img, nil
	}
	if err := os.MkdirAll(o.Store, 0o755); err != nil {
		return DebianImage{}, fmt.Errorf("image store: %w", err)
	}
	tmp, err := os.MkdirTemp(o.Store, ".build-"+ref.Name+"-")
	if err != nil {
		return DebianImage{}, fmt.Errorf("image store: %w", err)
	}
	defer func() {
		if err := removeBuildDir(tmp); err != nil {
			o.Log.Error("build directory left behind", "dir", tmp, "err", err)
		}
	}()
	b := &debianBuild{spec: s, specDir: specDir, o: o, tmp: tmp, rootfs: filepath.Join(tmp, "rootfs"), hash: sum}
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"mmdebstrap", b.bootstrap},
		{"copy files and hpc-guest", b.customize},
		{"kernel and initrd", b.kernel},
		{"package list", b.packages},
		{"clamp times to SOURCE_DATE_EPOCH", b.clampTimes},
		{"mkfs.ext4 -d", b.mkfs},
		{"qemu-img convert -c", b.qcow2},
		{"config.json", b.config},
	}
	for i, st := range steps {
		start := time.Now()
		fmt.Fprintf(o.Progress, "[%d/%d] %s\n", i+1, len(steps), st.name)
		if err := st.fn(ctx); err != nil {
			return DebianImage{}, fmt.Errorf("build %s: %s: %w", ref, st.name, err)
		}
		o.Log.Debug("build step done", "step", st.name, "seconds", time.Since(start).Seconds())
	}
	if err := removeBuildDir(b.rootfs); err != nil {
		return DebianImage{}, fmt.Errorf("remove build root: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return DebianImage{}, fmt.Errorf("image store: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if img, err2 := OpenDebian(dir); err2 == nil { // a concurrent build won
			img.Cached = true
			return img, nil
		}
		return DebianImage{}, fmt.Errorf("image store: %w", err)
	}
	return OpenDebian(dir)
}

// debianBuild is the state of one build.
type debianBuild struct {
	spec         *imagespec.Spec
	specDir      string
	o            DebianOptions
	tmp, rootfs  string
	hash         string
	kver         string
	mmdebVersion string
	pkgs         []Package
}

// env is the environment of the build's tools: a fixed epoch and time.
func (b *debianBuild) env() []string {
	epoch := strconv.FormatInt(b.o.SourceDateEpoch, 10)
	return append(os.Environ(), "SOURCE_DATE_EPOCH="+epoch, "E2FSPROGS_FAKE_TIME="+epoch, "LC_ALL=C.UTF-8")
}

// bootstrap runs mmdebstrap into rootfs. The initramfs configuration
// (MODULES=list with the virtio/9p/ext4 modules, gzip) is uploaded by a
// setup hook, before the kernel package runs update-initramfs.
func (b *debianBuild) bootstrap(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, "mmdebstrap", "--version").Output()
	if err != nil {
		return fmt.Errorf("mmdebstrap --version: %w (install mmdebstrap)", err)
	}
	b.mmdebVersion = strings.TrimSpace(strings.TrimPrefix(string(out), "mmdebstrap"))
	conf := filepath.Join(b.tmp, "initramfs.conf")
	mods := filepath.Join(b.tmp, "initramfs.modules")
	if err := os.WriteFile(conf, []byte("# written by vhpc's image builder\nMODULES=list\nCOMPRESS=gzip\n"), 0o644); err != nil {
		return err
	}
	// The initramfs loads what mounting a virtio root needs, the 9p share
	// and the power button (MODULES=list), so hpc-guest finds them loaded.
	if err := os.WriteFile(mods, []byte(strings.Join(DefaultModules, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	pkgs := append(slices.Clone(guestPackages), b.spec.Packages...)
	args := []string{
		"--variant=minbase",
		"--include=" + strings.Join(pkgs, ","),
		// The root is copied by mkfs.ext4 -d afterwards: dpkg's fsyncs buy nothing.
		"--dpkgopt=force-unsafe-io",
		"--dpkgopt=path-exclude=/usr/share/man/*",
		"--dpkgopt=path-exclude=/usr/share/info/*",
		"--dpkgopt=path-exclude=/usr/share/locale/*",
		"--dpkgopt=path-exclude=/usr/share/doc/*",
		"--dpkgopt=path-include=/usr/share/doc/*/copyright",
		`--setup-hook=mkdir -p "$1/etc/initramfs-tools/conf.d"`,
		"--setup-hook=upload " + mods + " /etc/initramfs-tools/modules",
		"--setup-hook=upload " + conf + " /etc/initramfs-tools/conf.d/vhpc.conf",
		b.spec.Base, b.rootfs, b.o.Mirror,
	}
	cmd := exec.CommandContext(ctx, "mmdebstrap", args...)
	cmd.Env = b.env()
	// On cancel mmdebstrap gets SIGINT, not SIGKILL: it then unmounts
	// what it mounted in the chroot (/proc, /sys, /dev/pts) itself.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 3 * time.Minute
	if err := runTool(cmd, b.o.Progress); err != nil {
		return err
	}
	return errors.Join(os.Remove(conf), os.Remove(mods))
}

// removeBuildDir deletes a build directory, after unmounting anything
// still mounted below it (an mmdebstrap killed mid-way), so that the
// removal can never reach through a mount into the host.
func removeBuildDir(dir string) error {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("read mounts: %w", err)
	}
	var under []string
	for _, line := range strings.Split(string(mi), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			under = append(under, f[4])
		}
	}
	slices.SortFunc(under, func(a, b string) int { return len(b) - len(a) }) // deepest first
	for _, m := range under {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount %s: %w (not removing %s)", m, err, dir)
		}
	}
	return os.RemoveAll(dir)
}

// runTool runs cmd with its output copied to progress line by line. On
// failure the error carries apt's error lines ("E: Unable to locate
// package foo") or else the last lines of output.
func runTool(cmd *exec.Cmd, progress io.Writer) error {
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	var lines []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintf(progress, "  %s\n", sc.Text())
			lines = append(lines, sc.Text())
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	err := cmd.Run()
	pw.Close()
	<-done
	if err == nil {
		return nil
	}
	var why []string
	for _, l := range lines {
		if strings.HasPrefix(l, "E: ") {
			why = append(why, l)
		}
	}
	if len(why) == 0 {
		why = lines[max(0, len(lines)-5):]
	}
	return fmt.Errorf("%s: %w: %s", filepath.Base(cmd.Path), err, strings.Join(why, "; "))
}

// customize copies the spec's files (through the spec directory's os.Root,
// written through the image root's os.Root), hpc-guest, the environment
// and the module load list into rootfs.
func (b *debianBuild) customize(context.Context) error {
	img, err := os.OpenRoot(b.rootfs)
	if err != nil {
		return err
	}
	defer img.Close()
	if len(b.spec.Files) > 0 {
		src, err := os.OpenRoot(b.specDir)
		if err != nil {
			return fmt.Errorf("spec directory: %w", err)
		}
		defer src.Close()
		for _, f := range b.spec.Files {
			if err := copyInto(src, img, f); err != nil {
				return err
			}
		}
	}
	g, err := os.Open(b.o.GuestBinary)
	if err != nil {
		return err
	}
	defer g.Close()
	if err := writeInRoot(img, GuestInitPath, g, 0o755); err != nil {
		return err
	}
	var env bytes.Buffer
	for _, k := range slices.Sorted(maps.Keys(b.spec.Env)) {
		fmt.Fprintf(&env, "%s=%s\n", k, b.spec.Env[k])
	}
	if err := writeInRoot(img, "/etc/environment", &env, 0o644); err != nil {
		return err
	}
	return nil
}

// copyInto copies one spec file from src into the image root.
func copyInto(src, img *os.Root, f imagespec.File) error {
	r, fi, err := imagespec.OpenFile(src, f.Src)
	if err != nil {
		return err
	}
	defer r.Close()
	mode := fi.Mode().Perm()
	if f.Mode != "" {
		m, err := strconv.ParseUint(f.Mode, 8, 12)
		if err != nil {
			return fmt.Errorf("files: mode %q: %w", f.Mode, err)
		}
		mode = os.FileMode(m)
	}
	return writeInRoot(img, f.Dst, r, mode)
}

// writeInRoot writes r to the absolute image path dst, creating parents;
// symlinks in the image cannot lead the write outside it (os.Root).
func writeInRoot(img *os.Root, dst string, r io.Reader, mode os.FileMode) error {
	rel := strings.TrimPrefix(filepath.Clean(dst), "/")
	if err := img.MkdirAll(filepath.Dir(rel), 0o755); err != nil {
		return fmt.Errorf("image %s: %w", dst, err)
	}
	w, err := img.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("image %s: %w", dst, err)
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Close()
		return fmt.Errorf("image %s: %w", dst, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("image %s: %w", dst, err)
	}
	return img.Chmod(rel, mode)
}

// kernel copies the image's own kernel (as a PVH vmlinux when it can be
// extracted) and initrd out of rootfs/boot, and writes the module load
// list hpc-guest reads.
func (b *debianBuild) kernel(ctx context.Context) error {
	kver, err := newestKernel(filepath.Join(b.rootfs, "boot"), filepath.Join(b.rootfs, "lib/modules"))
	if err != nil {
		return err
	}
	b.kver = kver
	vmlinuz := filepath.Join(b.rootfs, "boot", "vmlinuz-"+kver)
	kernel := filepath.Join(b.tmp, KernelFile)
	if err := extractVmlinux(ctx, vmlinuz, kernel); err != nil {
		if !errors.Is(err, errUnsupportedKernel) {
			return err
		}
		if err := copyFile(vmlinuz, kernel, 0o644); err != nil {
			return err
		}
	}
	if err := copyFile(filepath.Join(b.rootfs, "boot", "initrd.img-"+kver), filepath.Join(b.tmp, InitrdFile), 0o644); err != nil {
		return fmt.Errorf("initrd (update-initramfs did not run?): %w", err)
	}
	modDir := filepath.Join(b.rootfs, "lib/modules", kver)
	f, err := os.Open(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		return err
	}
	md, err := parseModulesDep(f)
	f.Close()
	if err != nil {
		return err
	}
	order, _ := md.resolve(DefaultModules)
	var list bytes.Buffer
	for _, m := range order {
		fmt.Fprintf(&list, "/lib/modules/%s/%s\n", kver, m)
	}
	return os.WriteFile(filepath.Join(b.rootfs, "lib/modules/load.list"), list.Bytes(), 0o644)
}

// clampTimes sets every file time in rootfs newer than the epoch to the
// epoch (what mmdebstrap does for tarballs), so that the files this build
// wrote and the directories it changed do not carry today's date into
// the ext4 image.
func (b *debianBuild) clampTimes(context.Context) error {
	epoch := time.Unix(b.o.SourceDateEpoch, 0)
	ts := []unix.Timespec{unix.NsecToTimespec(epoch.UnixNano()), unix.NsecToTimespec(epoch.UnixNano())}
	return filepath.WalkDir(b.rootfs, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if !fi.ModTime().After(epoch) {
			return nil
		}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("clamp time of %s: %w", p, err)
		}
		return nil
	})
}

// packages reads the installed packages from the image's dpkg status.
func (b *debianBuild) packages(context.Context) error {
	f, err := os.Open(filepath.Join(b.rootfs, "var/lib/dpkg/status"))
	if err != nil {
		return err
	}
	defer f.Close()
	b.pkgs, err = parseDpkgStatus(f)
	return err
}

// parseDpkgStatus returns the installed packages of a dpkg status file,
// sorted by name.
func parseDpkgStatus(r io.Reader) ([]Package, error) {
	var out []Package
	var cur Package
	installed := false
	flush := func() {
		if cur.Name != "" && installed {
			out = append(out, cur)
		}
		cur, installed = Package{}, false
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			flush()
			continue
		}
		k, v, ok := strings.Cut(line, ": ")
		switch {
		case !ok:
		case k == "Package":
			cur.Name = v
		case k == "Version":
			cur.Version = v
		case k == "Status":
			installed = strings.HasSuffix(v, " installed")
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("dpkg status: %w", err)
	}
	slices.SortFunc(out, func(a, b Package) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// mkfs makes the ext4 root file system from rootfs, with a fixed UUID and
// hash seed, into a sparse raw file of the spec's disk size.
func (b *debianBuild) mkfs(ctx context.Context) error {
	raw := filepath.Join(b.tmp, "root.raw")
	f, err := os.Create(raw)
	if err != nil {
		return err
	}
	if err := f.Truncate(int64(b.spec.DiskSize)); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-d", b.rootfs, "-U", rootUUID,
		"-E", "hash_seed="+rootUUID+",lazy_itable_init=1", "-L", "vhpc-root", raw)
	cmd.Env = b.env()
	return runTool(cmd, b.o.Progress)
}

// qcow2 compresses the raw root into root.qcow2 and deletes the raw file.
func (b *debianBuild) qcow2(ctx context.Context) error {
	raw := filepath.Join(b.tmp, "root.raw")
	cmd := exec.CommandContext(ctx, "qemu-img", "convert", "-O", "qcow2", "-c", raw, filepath.Join(b.tmp, RootDiskFile))
	cmd.Env = b.env()
	if err := runTool(cmd, b.o.Progress); err != nil {
		return err
	}
	return os.Remove(raw)
}

// config writes config.json.
func (b *debianBuild) config(context.Context) error {
	c := DebianConfig{
		Ref: b.spec.Ref().String(), Base: b.spec.Base, Template: b.spec.Template,
		Cmdline: DebianCmdline(b.spec.Template), KernelVersion: b.kver, Env: b.spec.Env,
		DiskSizeBytes: int64(b.spec.DiskSize), Packages: b.pkgs,
		Provenance: Provenance{SpecHash: b.hash, Builder: debianBuilderVersion, MmdebstrapVersion: b.mmdebVersion,
			Mirror: b.o.Mirror, SourceDateEpoch: b.o.SourceDateEpoch, Date: time.Unix(b.o.SourceDateEpoch, 0).UTC()},
	}
	js, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(b.tmp, ConfigFile), append(js, '\n'), 0o644)
}
