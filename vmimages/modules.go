package vmimages

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"strings"
)

// DefaultModules are the kernel modules the tiny image loads: virtio
// transport and devices (virtio_net for multi-node job networks), the 9p
// job share, ext4 for scratch, crc32c for
// ext4's metadata checksums, and the ACPI power button + evdev so that a
// host-side ACPI shutdown reaches hpc-guest. Their dependencies are
// resolved from modules.dep; a module missing from modules.dep is assumed
// built into the kernel.
var DefaultModules = []string{
	"virtio_pci", "virtio_blk", "virtio_console", "virtio_net",
	"9pnet_virtio", "9p",
	"crc32c_generic", "ext4",
	"button", "evdev",
}

// moduleDeps is the parsed modules.dep: module path -> dependency paths,
// and module name -> path.
type moduleDeps struct {
	deps   map[string][]string
	byName map[string]string
}

// moduleName turns "kernel/fs/9p/9p.ko" (or .ko.xz) into "9p"; like
// modprobe it treats '-' and '_' alike.
func moduleName(p string) string {
	b := path.Base(p)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

func parseModulesDep(r io.Reader) (*moduleDeps, error) {
	md := &moduleDeps{deps: map[string][]string{}, byName: map[string]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		mod, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		mod = strings.TrimSpace(mod)
		md.deps[mod] = strings.Fields(rest)
		md.byName[moduleName(mod)] = mod
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read modules.dep: %w", err)
	}
	return md, nil
}

// resolve returns the module paths to load for names, dependencies first,
// each once, in a deterministic order. Names not in modules.dep are
// returned in builtin (the kernel has them built in, or lacks them: the
// guest then fails visibly when it mounts).
func (md *moduleDeps) resolve(names []string) (order, builtin []string) {
	seen := map[string]bool{}
	var visit func(p string)
	visit = func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		// modules.dep lists all transitive dependencies; visiting each
		// one's own line first yields a valid load order.
		for _, d := range md.deps[p] {
			visit(d)
		}
		order = append(order, p)
	}
	for _, n := range names {
		p, ok := md.byName[strings.ReplaceAll(n, "-", "_")]
		if !ok {
			builtin = append(builtin, n)
			continue
		}
		visit(p)
	}
	return order, builtin
}
