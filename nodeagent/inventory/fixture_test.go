package inventory

import (
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"testing/fstest"
)

// fakeHost is a compact description of a host; build turns it into the
// sysfs/procfs tree Scan reads, with symlinks where Linux has them.
type fakeHost struct {
	sockets, coresPerSocket, threads int
	offline                          []int // logical CPUs that are offline
	numaDirs                         bool  // false: no /sys/devices/system/node (single node)
	memPerNodeKiB                    int64
	hugepages2M, hugepages1G         int // per NUMA node
	iommu                            bool
	pci                              []fakePCI
}

// fakePCI is one PCI function.
type fakePCI struct {
	addr   string // 0000:3b:00.0
	vendor uint16
	device uint16
	class  uint32
	numa   int // -1 as the kernel writes it
	group  int
	driver string // "" = none
}

func gpuFn(addr string, numa, group int, driver string) fakePCI {
	return fakePCI{addr: addr, vendor: 0x10de, device: 0x2330, class: 0x030200, numa: numa, group: group, driver: driver}
}

func audioFn(addr string, numa, group int) fakePCI {
	return fakePCI{addr: addr, vendor: 0x10de, device: 0x22a3, class: 0x040300, numa: numa, group: group, driver: "snd_hda_intel"}
}

func (h fakeHost) cpuID(socket, core, thread int) int {
	return thread*h.sockets*h.coresPerSocket + socket*h.coresPerSocket + core
}

func (h fakeHost) build() fstest.MapFS {
	m := fstest.MapFS{}
	file := func(name, data string) { m[name] = &fstest.MapFile{Data: []byte(data + "\n"), Mode: 0o444} }
	link := func(name, target string) {
		m[name] = &fstest.MapFile{Data: []byte(target), Mode: fs.ModeSymlink | 0o777}
	}

	n := h.sockets * h.coresPerSocket * h.threads
	isOffline := func(id int) bool {
		for _, o := range h.offline {
			if o == id {
				return true
			}
		}
		return false
	}
	var online []string
	for id := range n {
		if !isOffline(id) {
			online = append(online, strconv.Itoa(id))
		}
	}
	file(cpuDir+"/online", strings.Join(online, ","))
	file(cpuDir+"/possible", fmt.Sprintf("0-%d", n-1))
	nodeCPUs := make([][]string, h.sockets)
	for s := range h.sockets {
		for c := range h.coresPerSocket {
			var sib []string
			for t := range h.threads {
				sib = append(sib, strconv.Itoa(h.cpuID(s, c, t)))
			}
			for t := range h.threads {
				id := h.cpuID(s, c, t)
				dir := fmt.Sprintf("%s/cpu%d", cpuDir, id)
				nodeCPUs[s] = append(nodeCPUs[s], strconv.Itoa(id))
				if isOffline(id) {
					file(dir+"/online", "0")
					continue
				}
				// Real core ids are sparse and repeat on every socket.
				file(dir+"/topology/core_id", strconv.Itoa(c*2))
				file(dir+"/topology/physical_package_id", strconv.Itoa(s))
				file(dir+"/topology/thread_siblings_list", strings.Join(sib, ","))
			}
		}
	}

	hp := func(dir string) {
		file(dir+"/hugepages-2048kB/nr_hugepages", strconv.Itoa(h.hugepages2M))
		file(dir+"/hugepages-1048576kB/nr_hugepages", strconv.Itoa(h.hugepages1G))
	}
	if h.numaDirs {
		for s := range h.sockets {
			dir := fmt.Sprintf("%s/node%d", nodeDir, s)
			file(dir+"/cpulist", strings.Join(nodeCPUs[s], ","))
			file(dir+"/meminfo", fmt.Sprintf("Node %d MemTotal:       %d kB\nNode %d MemFree:        1024 kB", s, h.memPerNodeKiB, s))
			hp(dir + "/hugepages")
		}
		file(nodeDir+"/online", fmt.Sprintf("0-%d", h.sockets-1))
	} else {
		file("proc/meminfo", fmt.Sprintf("MemTotal:       %d kB\nMemFree:         1024 kB", h.memPerNodeKiB))
		hp("sys/kernel/mm/hugepages")
	}

	for _, p := range h.pci {
		real := fmt.Sprintf("sys/devices/pci%s/%s", p.addr[:7], p.addr)
		file(real+"/vendor", fmt.Sprintf("0x%04x", p.vendor))
		file(real+"/device", fmt.Sprintf("0x%04x", p.device))
		file(real+"/class", fmt.Sprintf("0x%06x", p.class))
		file(real+"/numa_node", strconv.Itoa(p.numa))
		if p.driver != "" {
			link(real+"/driver", "../../../bus/pci/drivers/"+p.driver)
			m["sys/bus/pci/drivers/"+p.driver] = &fstest.MapFile{Mode: fs.ModeDir | 0o755}
		}
		link(path.Join(pciDir, p.addr), "../../../devices/pci"+p.addr[:7]+"/"+p.addr)
		if h.iommu {
			g := strconv.Itoa(p.group)
			link(real+"/iommu_group", "../../../kernel/iommu_groups/"+g)
			link(iommuDir+"/"+g+"/devices/"+p.addr, "../../../../devices/pci"+p.addr[:7]+"/"+p.addr)
		}
	}
	return m
}

// dgxLike is fixture (a): 2 sockets x 16 cores x 2 threads, 2 NUMA nodes,
// 8 H100s (4 per node), each with its audio function in its IOMMU group; one
// group also holds the PCIe switch port above the GPU. Plus the BMC's VGA
// (not NVIDIA) and a NIC in its own group.
func dgxLike() fakeHost {
	h := fakeHost{sockets: 2, coresPerSocket: 16, threads: 2, numaDirs: true,
		memPerNodeKiB: 256 << 20, hugepages2M: 1024, hugepages1G: 16, iommu: true}
	buses := []int{0x18, 0x2a, 0x3a, 0x5d, 0x9a, 0xab, 0xba, 0xdb}
	drivers := []string{"nvidia", "nvidia", "nvidia", "nvidia", "nvidia", "nvidia", "vfio-pci", ""}
	for i, b := range buses {
		numa, group := i/4, 20+i
		h.pci = append(h.pci,
			gpuFn(fmt.Sprintf("0000:%02x:00.0", b), numa, group, drivers[i]),
			audioFn(fmt.Sprintf("0000:%02x:00.1", b), numa, group))
	}
	h.pci = append(h.pci,
		fakePCI{addr: "0000:17:00.0", vendor: 0x8086, device: 0x352a, class: 0x060400, numa: 0, group: 20, driver: "pcieport"},
		fakePCI{addr: "0000:03:00.0", vendor: 0x1a03, device: 0x2000, class: 0x030000, numa: 0, group: 3, driver: "ast"},
		fakePCI{addr: "0000:4b:00.0", vendor: 0x15b3, device: 0x1021, class: 0x020000, numa: 0, group: 40, driver: "mlx5_core"},
	)
	return h
}

// sharedGroup is fixture (b): a one-socket workstation whose first GPU sits
// in IOMMU group 12 with an Ethernet controller, its firmware reporting
// numa_node -1; the second GPU is fine.
func sharedGroup() fakeHost {
	return fakeHost{sockets: 1, coresPerSocket: 8, threads: 1, numaDirs: true, memPerNodeKiB: 64 << 20, iommu: true,
		pci: []fakePCI{
			{addr: "0000:3a:00.0", vendor: 0x8086, device: 0x1533, class: 0x020000, numa: -1, group: 12, driver: "igb"},
			gpuFn("0000:3b:00.0", -1, 12, "nvidia"),
			audioFn("0000:3b:00.1", -1, 12),
			gpuFn("0000:af:00.0", -1, 13, "vfio-pci"),
		}}
}

// switchPair is fixture (d): a render box whose two GPUs sit behind one
// PCIe switch without ACS, so they (and their audio functions and the
// switch port) share IOMMU group 30.
func switchPair() fakeHost {
	return fakeHost{sockets: 1, coresPerSocket: 8, threads: 1, numaDirs: true, memPerNodeKiB: 64 << 20, iommu: true,
		pci: []fakePCI{
			{addr: "0000:3a:00.0", vendor: 0x10b5, device: 0x8747, class: 0x060400, numa: 0, group: 30, driver: "pcieport"},
			gpuFn("0000:3b:00.0", 0, 30, "nvidia"), audioFn("0000:3b:00.1", 0, 30),
			gpuFn("0000:3c:00.0", 0, 30, "nvidia"), audioFn("0000:3c:00.1", 0, 30),
			gpuFn("0000:af:00.0", 0, 31, "nvidia"),
		}}
}

// laptop is fixture (c): one socket, 4 cores x 2 threads, no NUMA
// directory, no IOMMU, no NVIDIA GPU (only the integrated Intel one).
func laptop() fakeHost {
	return fakeHost{sockets: 1, coresPerSocket: 4, threads: 2, memPerNodeKiB: 16 << 20, hugepages2M: 0,
		pci: []fakePCI{{addr: "0000:00:02.0", vendor: 0x8086, device: 0x9a49, class: 0x030000, numa: -1, driver: "i915"}}}
}
