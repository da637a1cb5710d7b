package inventory

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

const (
	cpuDir  = "sys/devices/system/cpu"
	nodeDir = "sys/devices/system/node"
)

// cpus fills inv.CPUs from /sys/devices/system/cpu.
func (r reader) cpus(inv *Inventory) error {
	ents, err := fs.ReadDir(r.fsys, cpuDir)
	if err != nil {
		return fmt.Errorf("cpu topology: %w", err)
	}
	var online []int
	if s, err := r.readString(path.Join(cpuDir, "online")); err == nil {
		if online, err = parseList(s); err != nil {
			return fmt.Errorf("cpu topology: %s/online: %w", cpuDir, err)
		}
	}
	for _, e := range ents {
		id, ok := numbered(e.Name(), "cpu")
		if !ok {
			continue
		}
		top := path.Join(cpuDir, e.Name(), "topology")
		c := CPU{ID: id}
		core, err1 := r.readInt(path.Join(top, "core_id"))
		pkg, err2 := r.readInt(path.Join(top, "physical_package_id"))
		if err := errors.Join(err1, err2); err != nil {
			// Offline CPUs have no topology directory.
			if online == nil || !slices.Contains(online, id) {
				inv.CPUs = append(inv.CPUs, c)
				continue
			}
			return fmt.Errorf("cpu topology of online cpu%d: %w", id, err)
		}
		c.Online = online == nil || slices.Contains(online, id)
		c.CoreID, c.Package = core, pkg
		if s, err := r.readString(path.Join(top, "thread_siblings_list")); err == nil {
			c.Threads, _ = parseList(s)
		}
		if len(c.Threads) == 0 {
			c.Threads = []int{id}
		}
		inv.CPUs = append(inv.CPUs, c)
	}
	slices.SortFunc(inv.CPUs, func(a, b CPU) int { return a.ID - b.ID })
	if !slices.ContainsFunc(inv.CPUs, func(c CPU) bool { return c.Online }) {
		return fmt.Errorf("cpu topology: no online cpu with a topology under /%s", cpuDir)
	}
	return nil
}

// numa fills inv.NUMA and each CPU's NUMA node. Without a node directory the
// host is one node 0 with the memory of /proc/meminfo.
func (r reader) numa(inv *Inventory) error {
	ents, _ := fs.ReadDir(r.fsys, nodeDir)
	for _, e := range ents {
		id, ok := numbered(e.Name(), "node")
		if !ok {
			continue
		}
		dir := path.Join(nodeDir, e.Name())
		n := NUMANode{ID: id}
		if s, err := r.readString(path.Join(dir, "cpulist")); err == nil {
			var err error
			if n.CPUs, err = parseList(s); err != nil {
				return fmt.Errorf("numa node %d cpulist: %w", id, err)
			}
		}
		kib, err := r.memTotalKiB(path.Join(dir, "meminfo"))
		if err != nil {
			return fmt.Errorf("numa node %d: %w", id, err)
		}
		n.MemoryMiB = kib >> 10
		n.Hugepages = r.hugepages(path.Join(dir, "hugepages"))
		inv.NUMA = append(inv.NUMA, n)
	}
	if len(inv.NUMA) == 0 {
		inv.Notes = append(inv.Notes, "no NUMA information in /sys/devices/system/node: treating the host as one NUMA node 0")
		kib, err := r.memTotalKiB("proc/meminfo")
		if err != nil {
			return fmt.Errorf("memory: %w", err)
		}
		n := NUMANode{ID: 0, MemoryMiB: kib >> 10, Hugepages: r.hugepages("sys/kernel/mm/hugepages")}
		for _, c := range inv.CPUs {
			n.CPUs = append(n.CPUs, c.ID)
		}
		inv.NUMA = []NUMANode{n}
	}
	slices.SortFunc(inv.NUMA, func(a, b NUMANode) int { return a.ID - b.ID })
	for i := range inv.NUMA {
		n := &inv.NUMA[i]
		for _, p := range n.Hugepages {
			n.HugepagesMiB += p.SizeKiB * p.Count >> 10
		}
		for j := range inv.CPUs {
			if slices.Contains(n.CPUs, inv.CPUs[j].ID) {
				inv.CPUs[j].NUMA = n.ID
			}
		}
	}
	return nil
}

// hugepages reads the pools under dir ("hugepages-2048kB/nr_hugepages").
func (r reader) hugepages(dir string) []HugepagePool {
	ents, _ := fs.ReadDir(r.fsys, dir)
	var out []HugepagePool
	for _, e := range ents {
		size, ok := strings.CutPrefix(e.Name(), "hugepages-")
		if !ok {
			continue
		}
		kib, err := strconv.ParseInt(strings.TrimSuffix(size, "kB"), 10, 64)
		if err != nil {
			continue
		}
		count, err := r.readInt(path.Join(dir, e.Name(), "nr_hugepages"))
		if err != nil {
			r.log.Warn("hugepage pool unreadable", "dir", dir, "size_kib", kib, "error", err)
			continue
		}
		out = append(out, HugepagePool{SizeKiB: kib, Count: int64(count)})
	}
	slices.SortFunc(out, func(a, b HugepagePool) int { return int(a.SizeKiB - b.SizeKiB) })
	return out
}

// memTotalKiB reads MemTotal from /proc/meminfo or a node's meminfo
// ("Node 0 MemTotal:  6121688 kB").
func (r reader) memTotalKiB(name string) (int64, error) {
	f, err := r.fsys.Open(name)
	if err != nil {
		return 0, fmt.Errorf("meminfo: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		for i, w := range fields {
			if w == "MemTotal:" && i+1 < len(fields) {
				v, err := strconv.ParseInt(fields[i+1], 10, 64)
				if err != nil {
					return 0, fmt.Errorf("%s: MemTotal: %w", name, err)
				}
				return v, nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return 0, fmt.Errorf("%s: no MemTotal line", name)
}

func (r reader) readString(name string) (string, error) {
	b, err := fs.ReadFile(r.fsys, name)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func (r reader) readInt(name string) (int, error) {
	s, err := r.readString(name)
	if err != nil {
		return 0, err
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return v, nil
}

// numbered parses "cpu12" with prefix "cpu" into 12.
func numbered(name, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok || rest == "" {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil && n >= 0
}

// parseList parses a kernel CPU list: "0-15,32-47", "3", "" (empty).
func parseList(s string) ([]int, error) {
	var out []int
	for part := range strings.SplitSeq(strings.TrimSpace(s), ",") {
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("cpu list %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return nil, fmt.Errorf("cpu list %q: %w", s, err)
			}
		}
		if b < a {
			return nil, fmt.Errorf("cpu list %q: range %d-%d runs backwards", s, a, b)
		}
		for i := a; i <= b; i++ {
			out = append(out, i)
		}
	}
	return out, nil
}
