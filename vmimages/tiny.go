// Package vmimages builds and stores the guest images vhpc boots. Today it
// knows one image, "tiny": the host's Debian kernel plus an initramfs made
// of the kernel modules a guest needs (virtio, 9p, ext4), busybox-static
// and hpc-guest as /init. Images are stored by content hash, so a build
// whose inputs did not change is a lookup.
//
// Callers: `hpc image build tiny` (cmd/hpc) and nodeagent/runner on first
// use. See README.md.
package vmimages

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// builderVersion is part of the content hash: bump it when the layout of
// the initramfs changes so that old cached images are not reused.
const builderVersion = "tiny-v3"

// TinyCmdline is the kernel command line of the tiny image: serial console,
// no waiting, reboot (and so, with on_reboot=destroy, stop) on panic.
const TinyCmdline = "console=ttyS0 panic=-1 quiet loglevel=3 rdinit=/init"

// TinySpec says where the inputs of the tiny image come from. The zero
// value means: newest kernel in /boot that has modules in /lib/modules,
// /bin/busybox, DefaultModules; GuestBinary must be set.
type TinySpec struct {
	KernelVersion string   // e.g. "6.1.0-48-amd64"; "" = newest usable
	BootDir       string   // default /boot
	ModulesRoot   string   // default /lib/modules
	Busybox       string   // default /bin/busybox (busybox-static)
	GuestBinary   string   // static hpc-guest, becomes /init
	Modules       []string // default DefaultModules
}

// Image is a built image in the store. Kernel and Initrd are absolute paths.
type Image struct {
	Name    string `json:"name"`
	Hash    string `json:"hash"`
	Dir     string `json:"dir"`
	Kernel  string `json:"kernel"`
	Initrd  string `json:"initrd"`
	Cmdline string `json:"cmdline"`
	// KernelVersion is the kernel the image was built from.
	KernelVersion string `json:"kernelVersion"`
	// Built is false when the image was found in the store.
	Built bool `json:"-"`
}

func (s TinySpec) withDefaults() TinySpec {
	if s.BootDir == "" {
		s.BootDir = "/boot"
	}
	if s.ModulesRoot == "" {
		s.ModulesRoot = "/lib/modules"
	}
	if s.Busybox == "" {
		s.Busybox = "/bin/busybox"
	}
	if len(s.Modules) == 0 {
		s.Modules = DefaultModules
	}
	return s
}

// newestKernel picks the newest vmlinuz-* in bootDir with a modules dir.
func newestKernel(bootDir, modRoot string) (string, error) {
	matches, err := filepath.Glob(filepath.Join(bootDir, "vmlinuz-*"))
	if err != nil {
		return "", fmt.Errorf("list kernels: %w", err)
	}
	var vers []string
	for _, m := range matches {
		v := strings.TrimPrefix(filepath.Base(m), "vmlinuz-")
		if _, err := os.Stat(filepath.Join(modRoot, v, "modules.dep")); err == nil {
			vers = append(vers, v)
		}
	}
	if len(vers) == 0 {
		return "", fmt.Errorf("no kernel in %s with modules in %s: install linux-image-amd64", bootDir, modRoot)
	}
	sort.Strings(vers) // good enough for Debian's ABI-numbered versions
	return vers[len(vers)-1], nil
}

// plan is the resolved list of inputs of one build.
type plan struct {
	spec    TinySpec
	kver    string
	kernel  string
	modules []string // absolute paths, load order
	applets []string
}

func makePlan(ctx context.Context, spec TinySpec) (*plan, error) {
	spec = spec.withDefaults()
	if spec.GuestBinary == "" {
		return nil, errors.New("tiny image: no hpc-guest binary given (vmimages.FindGuestBinary finds the one `make build` puts in bin/)")
	}
	kver := spec.KernelVersion
	if kver == "" {
		var err error
		if kver, err = newestKernel(spec.BootDir, spec.ModulesRoot); err != nil {
			return nil, err
		}
	}
	p := &plan{spec: spec, kver: kver, kernel: filepath.Join(spec.BootDir, "vmlinuz-"+kver)}
	if _, err := os.Stat(p.kernel); err != nil {
		return nil, fmt.Errorf("tiny image: kernel: %w (install linux-image-amd64)", err)
	}
	modDir := filepath.Join(spec.ModulesRoot, kver)
	f, err := os.Open(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("tiny image: %w", err)
	}
	md, err := parseModulesDep(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	order, _ := md.resolve(spec.Modules)
	for _, m := range order {
		if !strings.HasSuffix(m, ".ko") {
			return nil, fmt.Errorf("tiny image: module %s is compressed; only plain .ko modules are supported", m)
		}
		p.modules = append(p.modules, filepath.Join(modDir, m))
	}
	out, err := exec.CommandContext(ctx, spec.Busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("tiny image: %s --list: %w (install busybox-static)", spec.Busybox, err)
	}
	p.applets = strings.Fields(string(out))
	return p, nil
}

// hash is the content hash of every input, so that a changed kernel,
// module, busybox or hpc-guest yields a new image.
func (p *plan) hash() (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n", builderVersion, TinyCmdline, p.kver)
	files := append([]string{p.kernel, p.spec.Busybox, p.spec.GuestBinary}, p.modules...)
	for _, f := range files {
		fmt.Fprintf(h, "file %s\n", filepath.Base(f))
		r, err := os.Open(f)
		if err != nil {
			return "", fmt.Errorf("hash inputs: %w", err)
		}
		_, err = io.Copy(h, r)
		r.Close()
		if err != nil {
			return "", fmt.Errorf("hash %s: %w", f, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// EnsureTiny returns the tiny image for spec from the store in storeDir,
// building it first when no image with the same input hash exists. Builds
// are written to a temporary directory and renamed into place, so
// concurrent callers never see a partial image.
func EnsureTiny(ctx context.Context, storeDir string, spec TinySpec, log *slog.Logger) (Image, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p, err := makePlan(ctx, spec)
	if err != nil {
		return Image{}, err
	}
	sum, err := p.hash()
	if err != nil {
		return Image{}, err
	}
	dir := filepath.Join(storeDir, "tiny-"+sum)
	if img, err := readImage(dir); err == nil {
		log.Debug("tiny image found", "dir", dir)
		return img, nil
	}
	if err := os.MkdirAll(storeDir, 0o755); err != nil {
		return Image{}, fmt.Errorf("image store: %w", err)
	}
	tmp, err := os.MkdirTemp(storeDir, ".build-tiny-")
	if err != nil {
		return Image{}, fmt.Errorf("image store: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return Image{}, fmt.Errorf("image store: %w", err)
	}
	// Prefer the uncompressed ELF kernel (PVH boot); fall back to the bzImage.
	kernelName := "vmlinux"
	if err := extractVmlinux(ctx, p.kernel, filepath.Join(tmp, kernelName)); err != nil {
		log.Info("booting the compressed kernel (slower under TCG)", "reason", err)
		_ = os.Remove(filepath.Join(tmp, kernelName))
		kernelName = "vmlinuz"
		if err := copyFile(p.kernel, filepath.Join(tmp, kernelName), 0o644); err != nil {
			return Image{}, err
		}
	}
	if err := p.writeInitrd(filepath.Join(tmp, "initrd.img")); err != nil {
		return Image{}, err
	}
	// config.json makes the store directory an image directory (the
	// contract imagestore.Push and OpenDebian share), so `hpc image push`
	// publishes it as public/tiny. It holds nothing host-specific: the
	// same inputs give the same bytes and so the same digest.
	cfg := DebianConfig{Ref: TinyRef, Base: "tiny", Cmdline: TinyCmdline, KernelVersion: p.kver,
		Provenance: Provenance{SpecHash: sum, Builder: builderVersion}}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return Image{}, fmt.Errorf("encode %s: %w", ConfigFile, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, ConfigFile), append(b, '\n'), 0o644); err != nil {
		return Image{}, fmt.Errorf("write %s: %w", ConfigFile, err)
	}
	img := Image{Name: "tiny", Hash: sum, Dir: dir, Kernel: filepath.Join(dir, kernelName),
		Initrd: filepath.Join(dir, "initrd.img"), Cmdline: TinyCmdline, KernelVersion: p.kver}
	if err := os.Rename(tmp, dir); err != nil {
		// Someone else built the same image meanwhile: use theirs.
		if img2, err2 := readImage(dir); err2 == nil {
			return img2, nil
		}
		return Image{}, fmt.Errorf("install image: %w", err)
	}
	log.Info("tiny image built", "dir", dir, "kernel_version", p.kver, "modules", len(p.modules))
	img.Built = true
	return img, nil
}

// TinyRef is the catalog name the tiny image is published under (`hpcd
// dev` does it at start; any cluster can with hpc image push).
const TinyRef = "public/tiny"

// readImage opens a tiny image in the store (its config.json is written
// last, so a directory that has one is complete).
func readImage(dir string) (Image, error) {
	d, err := OpenDebian(dir)
	if err != nil {
		return Image{}, err
	}
	return Image{Name: "tiny", Hash: d.Config.Provenance.SpecHash, Dir: d.Dir, Kernel: d.Kernel, Initrd: d.Initrd,
		Cmdline: d.Config.Cmdline, KernelVersion: d.Config.KernelVersion}, nil
}

func copyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}

// writeInitrd writes the gzipped newc initramfs:
//
//	/init                      hpc-guest
//	/bin/busybox, /bin/<applet> busybox-static and its applets as symlinks
//	/lib/modules/<kver>/...    the resolved modules
//	/lib/modules/load.list     their load order (read by hpc-guest)
//	/dev/console               so that /init has a console before devtmpfs
//	/proc /sys /run /tmp /jobshare /scratch /etc   empty mount points
//	/etc/passwd, /etc/group    root and the unprivileged "job" user (1000)
func (p *plan) writeInitrd(dst string) error {
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write initrd: %w", err)
	}
	defer f.Close()
	zw, err := gzip.NewWriterLevel(f, gzip.BestSpeed)
	if err != nil {
		return fmt.Errorf("gzip: %w", err)
	}
	cw := &cpioWriter{w: zw}
	dirs := []string{"bin", "sbin", "dev", "etc", "lib", "lib/modules", "proc", "sys", "run", "tmp", "jobshare", "scratch", "root"}
	modDirs := map[string]bool{}
	var list bytes.Buffer
	for _, m := range p.modules {
		rel, err := filepath.Rel(p.spec.ModulesRoot, m)
		if err != nil {
			return fmt.Errorf("module path: %w", err)
		}
		for d := filepath.Dir(filepath.Join("lib/modules", rel)); d != "lib/modules" && d != "."; d = filepath.Dir(d) {
			modDirs[d] = true
		}
		fmt.Fprintf(&list, "/lib/modules/%s\n", rel)
	}
	md := make([]string, 0, len(modDirs))
	for d := range modDirs {
		md = append(md, d)
	}
	sort.Strings(md) // parents sort before children
	dirs = append(dirs, md...)
	for _, d := range dirs {
		perm := uint32(0o755)
		if d == "tmp" {
			perm = 0o1777
		}
		if err := cw.add(cpioEntry{name: d, mode: cpioDir | perm}); err != nil {
			return fmt.Errorf("write initrd: %w", err)
		}
	}
	small := []cpioEntry{
		{name: "dev/console", mode: cpioCharDev | 0o600, rdevMaj: 5, rdevMin: 1},
		{name: "dev/null", mode: cpioCharDev | 0o666, rdevMaj: 1, rdevMin: 3},
		{name: "etc/passwd", mode: cpioFile | 0o644, data: []byte("root:x:0:0:root:/root:/bin/sh\njob:x:1000:1000:job:/jobshare/work:/bin/sh\n")},
		{name: "etc/group", mode: cpioFile | 0o644, data: []byte("root:x:0:\njob:x:1000:\n")},
		{name: "lib/modules/load.list", mode: cpioFile | 0o644, data: list.Bytes()},
	}
	applets := slices.Clone(p.applets)
	sort.Strings(applets)
	for _, a := range applets {
		if a == "busybox" || strings.ContainsAny(a, "/\x00") {
			continue
		}
		small = append(small, cpioEntry{name: "bin/" + a, mode: cpioSymlink | 0o777, data: []byte("busybox")})
	}
	for _, e := range small {
		if err := cw.add(e); err != nil {
			return fmt.Errorf("write initrd: %w", err)
		}
	}
	files := []struct {
		src, dst string
		perm     uint32
	}{
		{p.spec.GuestBinary, "init", 0o755},
		{p.spec.Busybox, "bin/busybox", 0o755},
	}
	for _, m := range p.modules {
		rel, _ := filepath.Rel(p.spec.ModulesRoot, m)
		files = append(files, struct {
			src, dst string
			perm     uint32
		}{m, filepath.Join("lib/modules", rel), 0o644})
	}
	for _, fl := range files {
		if err := addFile(cw, fl.src, fl.dst, fl.perm); err != nil {
			return err
		}
	}
	if err := cw.close(); err != nil {
		return fmt.Errorf("write initrd: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("write initrd: %w", err)
	}
	return f.Close()
}

func addFile(cw *cpioWriter, src, dst string, perm uint32) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("initrd: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("initrd: %w", err)
	}
	if err := cw.addReader(dst, perm, st.Size(), f); err != nil {
		return fmt.Errorf("initrd: add %s: %w", src, err)
	}
	return nil
}
