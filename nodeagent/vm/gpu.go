package vm

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"libvirt.org/go/libvirtxml"
)

// GPU is one GPU to pass through to the guest, resolved by the caller (the
// runner, from nodeagent/inventory). Build never reads sysfs: what it
// passes through is exactly what this value says, checked again here as
// defence in depth (the inventory refuses such GPUs first).
type GPU struct {
	// Address is the GPU's host PCI address, "0000:3b:00.0".
	Address string
	// NUMA is the host NUMA node the GPU hangs off. The GPU's guest
	// expander bus is attached to the guest cell mirroring that node, so
	// the guest's /sys/bus/pci/devices/*/numa_node is right.
	NUMA int
	// Group is every PCI function of the GPU's IOMMU group, the GPU itself
	// included or not (inventory.GPU.GroupMembers). Functions of the GPU's
	// own slot (the HDMI audio function .1) are passed through with it, PCI
	// bridges stay on the host, and anything else makes Build fail: it
	// would have to be given to the guest too.
	Group []PCIFunction
	// Mates are the other GPUs of the same IOMMU group (GPUs behind one
	// PCIe switch without ACS). They must be passed to the same guest, each
	// with its own functions; Build fails when one is missing.
	Mates []string
}

// PCIFunction is one host PCI function of an IOMMU group.
type PCIFunction struct {
	Address string
	// Class is the 24-bit PCI class code: 0x030200 3D controller,
	// 0x040300 audio device, 0x060400 PCI bridge.
	Class uint32
}

// NUMACell is one guest NUMA cell; it mirrors one host NUMA node of the
// placement, and its memory is bound to that node (numatune memnode).
type NUMACell struct {
	// HostNode is the host NUMA node the cell's memory comes from.
	HostNode int
	// MemoryMiB is the cell's memory, hugepages included; the cells'
	// memory adds up to Spec.MemoryMiB.
	MemoryMiB int64
	// HugepagesMiB is 0 or MemoryMiB: a guest cell is backed by hugepages
	// entirely or not at all.
	HugepagesMiB int64
}

// maxGPUs bounds the GPUs of one domain: each takes a pcie-root slot from
// gpuSlot0 on, and 0x1c..0x1f stay free for the q35 chipset.
const (
	maxGPUs  = 12
	gpuSlot0 = 0x10
)

// pciAddr is a parsed host PCI address.
type pciAddr struct{ domain, bus, slot, function uint }

// parsePCI accepts exactly the sysfs spelling "0000:3b:00.1".
func parsePCI(s string) (pciAddr, error) {
	var a pciAddr
	bad := fmt.Errorf("PCI address %q: want the sysfs form dddd:bb:ss.f (hex)", s)
	dom, rest, ok1 := strings.Cut(s, ":")
	bus, rest, ok2 := strings.Cut(rest, ":")
	slot, fn, ok3 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || !ok3 || len(dom) != 4 || len(bus) != 2 || len(slot) != 2 || len(fn) != 1 {
		return a, bad
	}
	for _, f := range []struct {
		s   string
		max uint64
		out *uint
	}{{dom, 0xffff, &a.domain}, {bus, 0xff, &a.bus}, {slot, 0x1f, &a.slot}, {fn, 7, &a.function}} {
		v, err := strconv.ParseUint(f.s, 16, 16)
		if err != nil || v > f.max {
			return a, bad
		}
		*f.out = uint(v)
	}
	return a, nil
}

func (a pciAddr) sameSlot(b pciAddr) bool {
	return a.domain == b.domain && a.bus == b.bus && a.slot == b.slot
}

// isBridge: PCI-to-PCI bridges (switch ports) in a GPU's group stay on
// the host, as in the inventory's passthrough rule.
func isBridge(class uint32) bool { return class>>8 == 0x0604 }

// PassedFunctions returns the host functions passed through for g, sorted
// by function number: the GPU and every other function of its slot in its
// IOMMU group. It fails when the group holds a device that is neither a
// function of the GPU nor a PCI bridge, or when function 0 of the slot is
// not among them (the guest would not enumerate the device). The runner
// calls it to know which functions to reset after the guest is gone.
func PassedFunctions(g GPU) ([]string, error) {
	fns, err := passedFunctions(g)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(fns))
	for i, f := range fns {
		out[i] = fmt.Sprintf("%04x:%02x:%02x.%x", f.domain, f.bus, f.slot, f.function)
	}
	return out, nil
}

func passedFunctions(g GPU) ([]pciAddr, error) {
	gpu, err := parsePCI(g.Address)
	if err != nil {
		return nil, fmt.Errorf("gpu: %w", err)
	}
	fns := []pciAddr{gpu}
	for _, m := range g.Group {
		a, err := parsePCI(m.Address)
		if err != nil {
			return nil, fmt.Errorf("gpu %s: iommu group member: %w", g.Address, err)
		}
		switch {
		case a == gpu:
		case a.sameSlot(gpu):
			fns = append(fns, a)
		case isBridge(m.Class):
		case slices.ContainsFunc(g.Mates, func(mate string) bool { ma, err := parsePCI(mate); return err == nil && ma.sameSlot(a) }):
			// passed through with its own GPU
		default:
			return nil, fmt.Errorf("gpu %s: its IOMMU group holds %s (class 0x%06x), which is neither a function of the GPU nor a PCI bridge; passing the GPU through would give the guest that device too: refusing (the inventory should have drained this GPU)",
				g.Address, m.Address, m.Class)
		}
	}
	slices.SortFunc(fns, func(a, b pciAddr) int { return int(a.function) - int(b.function) })
	fns = slices.Compact(fns)
	if fns[0].function != 0 {
		return nil, fmt.Errorf("gpu %s: function 0 of its slot is not in its IOMMU group; the guest could not enumerate the device", g.Address)
	}
	return fns, nil
}

// validateGPUs checks what gpus needs: KVM, q35, NUMA cells for every
// GPU's node, and no host function passed twice.
func validateGPUs(t Template, s Spec) error {
	if len(s.GPUs) == 0 {
		return nil
	}
	if t.Hypervisor != "kvm" {
		return fmt.Errorf("spec: GPU passthrough needs KVM; the template's hypervisor is %s", t.Hypervisor)
	}
	if m := machine(t, s); !strings.Contains(m, "q35") {
		return fmt.Errorf("template machine %q: GPU domains need q35 (pcie-expander-bus); leave the machine empty or set q35", m)
	}
	if len(s.GPUs) > maxGPUs {
		return fmt.Errorf("spec: %d GPUs; at most %d per domain", len(s.GPUs), maxGPUs)
	}
	if len(s.NUMA) == 0 {
		return fmt.Errorf("spec: GPUs need NUMA cells, so that the guest knows each GPU's NUMA node")
	}
	owner := map[pciAddr]string{}
	for _, g := range s.GPUs {
		for _, mate := range g.Mates {
			if !slices.ContainsFunc(s.GPUs, func(o GPU) bool { return o.Address == mate }) {
				return fmt.Errorf("spec: gpu %s shares its IOMMU group with gpu %s, which this guest does not get; such GPUs can only be passed through together", g.Address, mate)
			}
		}
		fns, err := passedFunctions(g)
		if err != nil {
			return fmt.Errorf("spec: %w", err)
		}
		for _, f := range fns {
			if o, dup := owner[f]; dup {
				return fmt.Errorf("spec: gpu %s: function %04x:%02x:%02x.%x is already passed through with gpu %s", g.Address, f.domain, f.bus, f.slot, f.function, o)
			}
			owner[f] = g.Address
		}
		if cellOf(s, g.NUMA) < 0 {
			return fmt.Errorf("spec: gpu %s is on host NUMA node %d, which is not among the placement's NUMA nodes %v", g.Address, g.NUMA, hostNodes(s))
		}
	}
	return nil
}

// gpus: each GPU on its own pcie-expander-bus (pxb-pcie) in pcie-root slot
// 0x10+i, attached to the guest cell mirroring the GPU's host NUMA node,
// with one pcie-root-port under it; the GPU's functions sit in slot 0 of
// that port's bus and keep their host function numbers. Controller
// indexes, bus numbers and addresses are all fixed, so the guest sees the
// same layout on every host and every run: GPU i's expander has
// controller index 1+2i and guest bus number 254-2i, its root port index
// 2+2i. Devices are managed: libvirt binds them to vfio-pci at
// start and back to the host driver at stop.
func gpus(d *libvirtxml.Domain, _ Template, s Spec) error {
	if len(s.GPUs) == 0 {
		return nil
	}
	root := uint(0)
	d.Devices.Controllers = append(d.Devices.Controllers, libvirtxml.DomainController{Type: "pci", Index: &root, Model: "pcie-root"})
	for i, g := range s.GPUs {
		fns, err := passedFunctions(g)
		if err != nil {
			return fmt.Errorf("spec: %w", err)
		}
		pxb, port := uint(1+2*i), uint(2+2*i)
		busNr, cell, slot, zero := expanderBus(i), uint(cellOf(s, g.NUMA)), uint(gpuSlot0+i), uint(0)
		d.Devices.Controllers = append(d.Devices.Controllers,
			libvirtxml.DomainController{
				Type: "pci", Index: &pxb, Model: "pcie-expander-bus",
				PCI: &libvirtxml.DomainControllerPCI{
					Model:  &libvirtxml.DomainControllerPCIModel{Name: "pxb-pcie"},
					Target: &libvirtxml.DomainControllerPCITarget{BusNr: &busNr, NUMANode: &cell},
				},
				Address: guestPCI(root, slot, 0, false),
			},
			libvirtxml.DomainController{
				Type: "pci", Index: &port, Model: "pcie-root-port",
				PCI: &libvirtxml.DomainControllerPCI{
					Model:  &libvirtxml.DomainControllerPCIModel{Name: "pcie-root-port"},
					Target: &libvirtxml.DomainControllerPCITarget{Chassis: &port, Port: &zero},
				},
				Address: guestPCI(pxb, 0, 0, false),
			})
		for _, f := range fns {
			host := f
			d.Devices.Hostdevs = append(d.Devices.Hostdevs, libvirtxml.DomainHostdev{
				Managed: "yes",
				SubsysPCI: &libvirtxml.DomainHostdevSubsysPCI{
					Driver: &libvirtxml.DomainHostdevSubsysPCIDriver{Name: "vfio"},
					Source: &libvirtxml.DomainHostdevSubsysPCISource{Address: &libvirtxml.DomainAddressPCI{
						Domain: &host.domain, Bus: &host.bus, Slot: &host.slot, Function: &host.function,
					}},
				},
				Address: guestPCI(port, 0, f.function, f.function == 0 && len(fns) > 1),
			})
		}
	}
	return nil
}

// expanderBus is the guest bus number of GPU i's pcie-expander-bus. The
// expander's root port is on that bus and the GPU behind the port on the
// next one, which is why the numbers step by two.
func expanderBus(i int) uint { return uint(254 - 2*i) }

// GuestGPUAddress is the PCI address GPU i of a domain (Spec.GPUs[i], the
// allocation's order) has inside the guest: slot 0 of the bus behind its
// expander's root port. Fixed by the layout gpus builds.
func GuestGPUAddress(i int) string {
	return fmt.Sprintf("0000:%02x:00.0", expanderBus(i)+1)
}

// GuestGPUIndex is the inverse of GuestGPUAddress for any function of the
// GPU: which of the domain's GPUs a PCI address seen in the guest belongs
// to. The agent maps in-guest GPU samples to host GPUs with it.
func GuestGPUIndex(guestPCI string) (int, bool) {
	a, err := parsePCI(guestPCI)
	if err != nil || a.domain != 0 || a.slot != 0 || a.bus > expanderBus(0)+1 {
		return 0, false
	}
	i := int(expanderBus(0)+1-a.bus) / 2
	if i >= maxGPUs || expanderBus(i)+1 != a.bus {
		return 0, false
	}
	return i, true
}

// guestPCI is a guest PCI address on the bus of controller index bus.
func guestPCI(bus, slot, function uint, multifunction bool) *libvirtxml.DomainAddress {
	dom := uint(0)
	a := &libvirtxml.DomainAddressPCI{Domain: &dom, Bus: &bus, Slot: &slot, Function: &function}
	if multifunction {
		a.MultiFunction = "on"
	}
	return &libvirtxml.DomainAddress{PCI: a}
}
