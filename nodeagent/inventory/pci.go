package inventory

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"vhpc/nodeagent/gpu"
)

const (
	pciDir   = "sys/bus/pci/devices"
	iommuDir = "sys/kernel/iommu_groups"

	vendorNVIDIA = 0x10de
)

// classNames names the PCI classes (class code >> 8) that show up next to
// GPUs. Immutable table.
var classNames = map[uint32]string{
	0x0100: "SCSI controller",
	0x0104: "RAID controller",
	0x0106: "SATA controller",
	0x0108: "non-volatile memory controller",
	0x0200: "ethernet controller",
	0x0207: "infiniband controller",
	0x0280: "network controller",
	0x0300: "VGA compatible controller",
	0x0302: "3D controller",
	0x0403: "audio device",
	0x0600: "host bridge",
	0x0604: "PCI bridge",
	0x0880: "system peripheral",
	0x0c03: "USB controller",
	0x0c80: "serial bus controller",
}

// nvidiaModels gives the model and nominal memory of NVIDIA device ids, for
// GPUs the host driver cannot see (bound to vfio-pci). NVML's figures replace
// them through AddNVML. Immutable table.
var nvidiaModels = map[uint16]struct {
	model     string
	memoryMiB int64
}{
	0x20b0: {"A100", 40960}, // A100-SXM4-40GB
	0x20b2: {"A100", 81920}, // A100-SXM4-80GB
	0x20b5: {"A100", 81920}, // A100 80GB PCIe
	0x20f1: {"A100", 40960}, // A100-PCIE-40GB
	0x2330: {"H100", 81920}, // H100 SXM5 80GB
	0x2331: {"H100", 81920}, // H100 PCIe
	0x2335: {"H200", 143360},
	0x26b9: {"L40S", 46068},
	0x2684: {"RTX4090", 24564},
}

func className(class uint32) string {
	if n, ok := classNames[class>>8]; ok {
		return n
	}
	return fmt.Sprintf("class 0x%04x", class>>8)
}

// pciDevice reads one function under /sys/bus/pci/devices.
func (r reader) pciDevice(addr string) (PCIDevice, error) {
	dir := path.Join(pciDir, addr)
	d := PCIDevice{Address: addr}
	v, err1 := r.readHex(path.Join(dir, "vendor"))
	dev, err2 := r.readHex(path.Join(dir, "device"))
	class, err3 := r.readHex(path.Join(dir, "class"))
	for _, err := range []error{err1, err2, err3} {
		if err != nil {
			return d, fmt.Errorf("pci device %s: %w", addr, err)
		}
	}
	d.Vendor, d.Device, d.Class = uint16(v), uint16(dev), uint32(class)
	d.ClassName = className(d.Class)
	if target, err := fs.ReadLink(r.fsys, path.Join(dir, "driver")); err == nil {
		d.Driver = path.Base(target)
	}
	return d, nil
}

func (r reader) readHex(name string) (uint64, error) {
	s, err := r.readString(name)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 32)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return v, nil
}

// isGPU reports whether d is an NVIDIA VGA (0x0300xx) or 3D (0x0302xx)
// controller.
func isGPU(d PCIDevice) bool {
	c := d.Class >> 8
	return d.Vendor == vendorNVIDIA && (c == 0x0300 || c == 0x0302)
}

// gpus fills inv.GPUs and inv.IOMMU from the PCI bus and the IOMMU groups.
func (r reader) gpus(inv *Inventory) error {
	groups, _ := fs.ReadDir(r.fsys, iommuDir)
	inv.IOMMU = len(groups) > 0
	ents, err := fs.ReadDir(r.fsys, pciDir)
	if err != nil {
		inv.Notes = append(inv.Notes, fmt.Sprintf("no PCI bus in sysfs (/%s: %v): no GPUs", pciDir, err))
		return nil
	}
	for _, e := range ents {
		d, err := r.pciDevice(e.Name())
		if err != nil {
			r.log.Warn("pci device unreadable", "pci_address", e.Name(), "error", err)
			continue
		}
		if !isGPU(d) {
			continue
		}
		g, note, err := r.gpu(d, inv.IOMMU)
		if err != nil {
			return err
		}
		if note != "" {
			inv.Notes = append(inv.Notes, note)
		}
		inv.GPUs = append(inv.GPUs, g)
	}
	slices.SortFunc(inv.GPUs, func(a, b GPU) int { return strings.Compare(a.Address, b.Address) })
	if !inv.IOMMU && len(inv.GPUs) > 0 {
		inv.Notes = append(inv.Notes, "IOMMU is off (no /"+iommuDir+"): no GPU can be passed through; enable VT-d/AMD-Vi in firmware and boot with intel_iommu=on iommu=pt")
	}
	return nil
}

// gpu gathers the NUMA node, IOMMU group and passthrough verdict of d, and
// a note for Inventory.Notes when the NUMA node had to be guessed.
func (r reader) gpu(d PCIDevice, iommu bool) (g GPU, note string, err error) {
	g = GPU{PCIDevice: d, IOMMUGroup: -1}
	if m, ok := nvidiaModels[d.Device]; ok {
		g.Model, g.MemoryMiB = m.model, m.memoryMiB
	} else {
		g.Model = fmt.Sprintf("10de:%04x", d.Device)
	}
	dir := path.Join(pciDir, d.Address)
	if n, err := r.readInt(path.Join(dir, "numa_node")); err == nil && n >= 0 {
		g.NUMA = n
	} else {
		// Single-socket hosts and some firmware say -1: treat the GPU as
		// local to node 0 and say so.
		note = fmt.Sprintf("GPU %s: NUMA node unknown (numa_node -1 or missing); assuming NUMA node 0", d.Address)
	}

	if !iommu {
		g.Reason = fmt.Sprintf("GPU %s cannot be passed through: the IOMMU is off (no /%s); enable VT-d/AMD-Vi in firmware and boot with intel_iommu=on iommu=pt", d.Address, iommuDir)
		return g, note, nil
	}
	target, err := fs.ReadLink(r.fsys, path.Join(dir, "iommu_group"))
	if err != nil {
		g.Reason = fmt.Sprintf("GPU %s cannot be passed through: it has no IOMMU group", d.Address)
		return g, note, nil
	}
	group, err := strconv.Atoi(path.Base(target))
	if err != nil {
		return g, note, fmt.Errorf("gpu %s: iommu_group link %q: %w", d.Address, target, err)
	}
	g.IOMMUGroup = group
	members, err := fs.ReadDir(r.fsys, path.Join(iommuDir, strconv.Itoa(group), "devices"))
	if err != nil {
		return g, note, fmt.Errorf("gpu %s: iommu group %d: %w", d.Address, group, err)
	}
	for _, m := range members {
		md, err := r.pciDevice(m.Name())
		if err != nil {
			md = PCIDevice{Address: m.Name(), ClassName: "unreadable device"}
		}
		g.GroupMembers = append(g.GroupMembers, md)
	}
	// Other NVIDIA GPUs in the group (GPUs behind one PCIe switch without
	// ACS) and their functions are allowed: the scheduler gives such GPUs
	// to one guest together. Anything else would go to the guest as well.
	var gpuSlots []string
	for _, md := range g.GroupMembers {
		if isGPU(md) {
			gpuSlots = append(gpuSlots, md.Address)
		}
	}
	var foreign []string
	for _, md := range g.GroupMembers {
		if md.Class>>8 == 0x0604 || slices.ContainsFunc(gpuSlots, func(a string) bool { return a == md.Address || sameSlot(a, md.Address) }) {
			continue
		}
		foreign = append(foreign, fmt.Sprintf("%s (%s)", md.Address, md.ClassName))
	}
	slices.SortFunc(g.GroupMembers, func(a, b PCIDevice) int { return strings.Compare(a.Address, b.Address) })
	if len(foreign) > 0 {
		what := "that device"
		if len(foreign) > 1 {
			what = "those devices"
		}
		g.Reason = fmt.Sprintf("GPU %s shares IOMMU group %d with %s; passthrough would give the guest %s too",
			d.Address, group, strings.Join(foreign, ", "), what)
		return g, note, nil
	}
	g.Passthrough = true
	return g, note, nil
}

// sameSlot reports whether two PCI addresses are functions of one device
// ("0000:3b:00.0" and "0000:3b:00.1").
func sameSlot(a, b string) bool {
	sa, _, okA := strings.Cut(a, ".")
	sb, _, okB := strings.Cut(b, ".")
	return okA && okB && sa == sb
}

// normalizePCI spells an address the way sysfs and model.GPU do.
func normalizePCI(s string) string {
	if n, err := gpu.NormalizePCIBusID(s); err == nil {
		return n
	}
	return s
}
