// Package inventory reads what a compute host has, from the host itself:
// logical CPUs with their NUMA node and SMT siblings, memory and hugepages
// per NUMA node, NVIDIA GPUs on the PCI bus with their IOMMU groups and
// drivers, and the capacity of the local scratch directory. The agent calls
// Scan at start (and again when it re-registers) and sends ToNode's result to
// the master.
//
// Everything is read through an fs.FS rooted at "/" (os.DirFS("/") by
// default), so tests run on fixture trees built in memory.
//
// Imports: scheduler/model (output type) and nodeagent/gpu (NVML facts, PCI
// address spelling).
package inventory

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
)

// Options says where to read from. The zero value reads the real host and
// reports no scratch capacity.
type Options struct {
	// Root is the file system the paths "sys/..." and "proc/..." are read
	// from. nil means os.DirFS("/").
	Root fs.FS
	// ScratchDir is the directory the agent creates job scratch disks in.
	// "" means no scratch: Inventory.ScratchMiB is 0.
	ScratchDir string
	// Statfs reports the space of the file system holding a directory.
	// nil means the statfs(2) system call.
	Statfs func(dir string) (DiskSpace, error)
	// Logger receives notes about odd hardware; nil discards them.
	Logger *slog.Logger
}

// DiskSpace is the size of one file system, as statfs reports it.
type DiskSpace struct {
	TotalBytes uint64
	// AvailBytes is what an unprivileged writer may still use.
	AvailBytes uint64
}

// Inventory is what Scan found on the host.
type Inventory struct {
	CPUs []CPU      // every logical CPU, online or not, by ID
	NUMA []NUMANode // by ID; one node (0) on hosts without NUMA in sysfs
	GPUs []GPU      // NVIDIA display/3D controllers, by PCI address
	// IOMMU is true when the kernel has IOMMU groups (intel_iommu=on,
	// amd_iommu on); without it no GPU can be passed through.
	IOMMU           bool
	ScratchDir      string
	ScratchTotalMiB int64
	ScratchMiB      int64 // available for job scratch disks
	// Notes are facts a person should know: a GPU whose NUMA node was
	// unknown, a host without NUMA information, IOMMU off. The agent logs
	// them at registration.
	Notes []string
}

// CPU is one logical CPU (hardware thread).
type CPU struct {
	ID      int // N in /sys/devices/system/cpu/cpuN
	Online  bool
	NUMA    int
	Package int   // physical_package_id (socket)
	CoreID  int   // core_id, unique only within a package
	Threads []int // thread_siblings_list: logical CPUs of the same core, this one included
}

// NUMANode is the memory of one NUMA node.
type NUMANode struct {
	ID           int
	CPUs         []int
	MemoryMiB    int64 // MemTotal, hugepages included
	HugepagesMiB int64 // all pools together
	Hugepages    []HugepagePool
}

// HugepagePool is one hugepage size on one NUMA node.
type HugepagePool struct {
	SizeKiB int64
	Count   int64
}

// PCIDevice is one PCI function, as seen in an IOMMU group.
type PCIDevice struct {
	Address   string // 0000:3b:00.1
	Vendor    uint16
	Device    uint16
	Class     uint32 // 24-bit class code: 0x030200 = 3D controller
	ClassName string // "3D controller", "audio device", "ethernet controller"
	Driver    string // bound driver, "" if none
}

// GPU is one NVIDIA GPU on the PCI bus, with the facts passthrough needs.
type GPU struct {
	PCIDevice
	NUMA       int
	IOMMUGroup int // -1 when the GPU has no group (IOMMU off)
	// GroupMembers is every device in the GPU's IOMMU group, the GPU
	// included, by address.
	GroupMembers []PCIDevice
	// Model and MemoryMiB come from the PCI device id table, or from NVML
	// via AddNVML when the host driver sees the GPU. UUID only from NVML.
	Model     string
	MemoryMiB int64
	UUID      string
	// Passthrough says whether the GPU can be given to a guest alone;
	// Reason says why not.
	Passthrough bool
	Reason      string
	// Unhealthy is set by AddNVML when the driver reports the GPU unfit.
	Unhealthy string
}

// Scan reads the host described by opts. It fails only when the CPU topology
// or the memory size cannot be read, or the configured scratch directory
// cannot be examined; missing NUMA, PCI or IOMMU information is reported in
// the result (Notes, GPU.Reason).
func Scan(opts Options) (*Inventory, error) {
	r := reader{fsys: opts.Root, log: opts.Logger}
	if r.fsys == nil {
		r.fsys = os.DirFS("/")
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	inv := &Inventory{}
	if err := r.cpus(inv); err != nil {
		return nil, err
	}
	if err := r.numa(inv); err != nil {
		return nil, err
	}
	if err := r.gpus(inv); err != nil {
		return nil, err
	}
	if opts.ScratchDir != "" {
		stat := opts.Statfs
		if stat == nil {
			stat = statfs
		}
		sp, err := stat(opts.ScratchDir)
		if err != nil {
			return nil, fmt.Errorf("scratch directory %s: %w", opts.ScratchDir, err)
		}
		inv.ScratchDir = opts.ScratchDir
		inv.ScratchTotalMiB = int64(sp.TotalBytes >> 20)
		inv.ScratchMiB = int64(sp.AvailBytes >> 20)
	}
	for _, n := range inv.Notes {
		r.log.Info("inventory note", "note", n)
	}
	return inv, nil
}

// reader holds what every part of Scan needs.
type reader struct {
	fsys fs.FS
	log  *slog.Logger
}
