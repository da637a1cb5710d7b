// Package vm turns a guest template and one allocation into a libvirt
// domain definition. It is pure: no I/O, no clock, no libvirt connection.
// The runner (nodeagent/runner) calls Build and hands the result to
// nodeagent/libvirt.
//
// A domain is built in small ordered steps (identity, CPUs + pinning,
// memory, guest NUMA + numatune + hugepages, boot, disks, job share,
// console, NICs, GPU passthrough, lifecycle), each a function of the inputs, and tested as golden XML (testdata/*.xml; regenerate with
// `go test ./nodeagent/vm -update`). Nothing here formats XML by hand:
// every value goes through encoding/xml via libvirtxml, so no user string
// can inject XML; and the only user-chosen string that reaches the
// definition at all is the allocation id, inside escaped metadata.
package vm

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"libvirt.org/go/libvirtxml"

	"vhpc/guestproto"
)

// NamePrefix starts the name of every domain vhpc owns. Runners list
// domains by this prefix; nothing else on the host may use it.
const NamePrefix = "vhpc-"

// MetadataNS is the XML namespace of vhpc's <metadata> element.
const MetadataNS = "https://vhpc.dev/xmlns/alloc/1"

// Template is the guest image a domain boots, as resolved on this host.
// At least one of Kernel and BaseDisk must be set: Kernel alone is the
// tiny image (initramfs only), BaseDisk alone boots the disk's own
// bootloader, and both together are a Debian image (vmimages.OpenDebian):
// direct kernel boot of the image's kernel and initrd, whose command line
// mounts the overlay on BaseDisk as the root (the first virtio disk, vda).
type Template struct {
	// Name of the image ("tiny", a department image name); informational.
	Name string
	// Hypervisor is "kvm" or "tcg" (libvirt domain type "kvm" or "qemu").
	Hypervisor string
	// Machine is the QEMU machine type ("pc", "q35"); "" = "pc".
	Machine string
	// CPUModel is a libvirt CPU model for TCG guests ("" = QEMU's
	// default); KVM guests always get host-passthrough.
	CPUModel string
	// Direct kernel boot (the tiny image, Debian images).
	Kernel, Initrd, Cmdline string
	// BaseDisk is a qcow2 template; the domain boots a per-allocation
	// overlay (Spec.OverlayPath) backed by it, never the template itself.
	BaseDisk string
}

// Spec is one allocation on this host, with every host path already
// chosen by the runner/staging (the vm package never invents paths).
type Spec struct {
	// AllocID is recorded in the domain's metadata (escaped by
	// encoding/xml) so that a restarted agent can map domains back to
	// allocations; it never becomes part of the name.
	AllocID string
	Attempt uint64
	// Namespace separates the domains of different agents on one host
	// (see Name); "" for none.
	Namespace string
	Job       uint64
	Task      int64
	Rank      int
	// Cores are the host CPUs the vCPUs are pinned to, 1:1, in order
	// (with NUMA cells: in order within each cell, cell by cell).
	Cores []int
	// HousekeepingCores run QEMU's emulator threads; empty = not pinned.
	HousekeepingCores []int
	MemoryMiB         int64
	// ShareDir is the host directory exported as the 9p job share.
	ShareDir string
	// Datasets are host directories exported read-only as 9p shares with
	// tags guestproto.DatasetTag(i), in order.
	Datasets []string
	// ShareAccessMode is "mapped" (default: QEMU runs unprivileged, guest
	// ownership kept in xattrs) or "passthrough".
	ShareAccessMode string
	// ScratchPath is a raw sparse file attached as a virtio disk with
	// serial "vhpc-scratch"; "" = no scratch disk.
	ScratchPath string
	// OverlayPath is the qcow2 overlay on Template.BaseDisk.
	OverlayPath string
	// ConsoleLog receives the guest's serial console.
	ConsoleLog string
	// VirtioSerial adds a virtio-serial controller (for later agents).
	VirtioSerial bool

	// IOThread gives the disks one QEMU iothread, pinned (like the
	// emulator threads) to HousekeepingCores, so disk I/O never runs on
	// the job's cores. The runner sets it for GPU tasks.
	IOThread bool
	// NUMA is the guest NUMA topology, one cell per host NUMA node of the
	// placement (the runner builds it from model.Placement.NUMA and
	// MemoryShares); nil = no guest NUMA topology and no numatune, as for
	// the GPU-less domains so far. With cells, CoreNUMA is required.
	NUMA []NUMACell
	// CoreNUMA is the host NUMA node of each of Cores (same order); each
	// vCPU goes to the guest cell mirroring its core's node.
	CoreNUMA []int
	// HugepageSizeKiB is the host hugepage size backing hugepage cells;
	// 0 = the host's default size.
	HugepageSizeKiB int64
	// GPUs are passed through, each on its own guest PCIe expander bus in
	// the guest cell of its host NUMA node. They need KVM, NUMA cells and
	// machine q35 (chosen when Template.Machine is empty).
	GPUs []GPU
	// NICs are virtio-net interfaces on host bridges (a multi-node job's
	// network, nodeagent/netplane); libvirt creates and removes their taps.
	NICs []NIC
	// DACLabel is the guest's own host identity, "+UID:+GID"
	// (nodeagent/guestid): QEMU runs as it and libvirt hands the guest's
	// own files (overlay, scratch, kernel and initrd copies, devices) to
	// it. "" = libvirt's qemu.conf user, shared by every guest. The base
	// disk is never relabelled either way: it is shared read-only by the
	// guests of an image and stays root's.
	DACLabel string
}

// NIC is one guest network interface on an existing host bridge.
type NIC struct {
	// Bridge is the host bridge's name (1..15 of [A-Za-z0-9_.-]).
	Bridge string
	// MAC is the interface's unicast address ("52:54:00:77:00:01"); the
	// guest finds the interface by it.
	MAC string
	// MTU of the tap and, advertised by virtio-net, of the guest's
	// interface; 0 = the bridge's.
	MTU int
}

// ScratchSerial is the virtio-blk serial the guest looks the scratch disk up by.
const ScratchSerial = "vhpc-scratch"

// Name returns the domain name of an allocation:
// vhpc-<namespace>-<job>-<task>-<rank>, or vhpc-<job>-<task>-<rank> with no
// namespace. The namespace keeps two agents (two clusters, or a test beside
// a dev cluster) on one libvirtd apart; CheckNamespace limits it to
// [a-z0-9], and the rest is numbers, so the name needs no sanitizing.
func Name(namespace string, job uint64, task int64, rank int) string {
	return Prefix(namespace) + strconv.FormatUint(job, 10) + "-" + strconv.FormatInt(task, 10) + "-" + strconv.Itoa(rank)
}

// ParseName reverses Name for a domain of namespace: ok is false for a
// name of another namespace or not made by Name. The runner uses it at
// start-up to learn which jobs still have guests.
func ParseName(namespace, name string) (job uint64, task int64, rank int, ok bool) {
	rest, found := strings.CutPrefix(name, Prefix(namespace))
	if !found {
		return 0, 0, 0, false
	}
	f := strings.Split(rest, "-")
	if len(f) != 3 {
		return 0, 0, 0, false
	}
	job, err1 := strconv.ParseUint(f[0], 10, 64)
	task, err2 := strconv.ParseInt(f[1], 10, 64)
	rank, err3 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil || err3 != nil || Name(namespace, job, task, rank) != name {
		return 0, 0, 0, false
	}
	return job, task, rank, true
}

// Prefix is the name prefix of every domain in a namespace; runners list
// their domains by it.
func Prefix(namespace string) string {
	if namespace == "" {
		return NamePrefix
	}
	return NamePrefix + namespace + "-"
}

// CheckNamespace accepts 1..16 lower-case letters and digits.
func CheckNamespace(ns string) error {
	if ns == "" || len(ns) > 16 {
		return fmt.Errorf("domain namespace %q: want 1..16 characters", ns)
	}
	for _, r := range ns {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return fmt.Errorf("domain namespace %q: only a-z and 0-9 are allowed", ns)
		}
	}
	return nil
}

// Metadata is vhpc's element inside the domain's <metadata>.
type Metadata struct {
	XMLName xml.Name `xml:"https://vhpc.dev/xmlns/alloc/1 alloc"`
	ID      string   `xml:"id,attr"`
	Attempt uint64   `xml:"attempt,attr"`
}

// ParseMetadata extracts vhpc's metadata from a domain definition.
func ParseMetadata(d *libvirtxml.Domain) (Metadata, error) {
	var m Metadata
	if d.Metadata == nil || !strings.Contains(d.Metadata.XML, MetadataNS) {
		return m, errors.New("domain has no vhpc metadata")
	}
	dec := xml.NewDecoder(strings.NewReader(d.Metadata.XML))
	for {
		tok, err := dec.Token()
		if err != nil {
			return m, fmt.Errorf("domain metadata: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Space == MetadataNS && se.Name.Local == "alloc" {
			if err := dec.DecodeElement(&m, &se); err != nil {
				return m, fmt.Errorf("domain metadata: %w", err)
			}
			return m, nil
		}
	}
}

// Build returns the domain for spec booting template t. It validates its
// inputs and returns an error naming the bad field; it never panics.
func Build(t Template, s Spec) (*libvirtxml.Domain, error) {
	if err := validate(t, s); err != nil {
		return nil, err
	}
	d := &libvirtxml.Domain{}
	steps := []func(*libvirtxml.Domain, Template, Spec) error{
		identity, seclabel, cpus, memory, numa, boot, disks, share, console, nics, gpus, lifecycle,
	}
	for _, step := range steps {
		if err := step(d, t, s); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func validate(t Template, s Spec) error {
	switch t.Hypervisor {
	case "kvm", "tcg":
	default:
		return fmt.Errorf("template hypervisor %q: want kvm or tcg", t.Hypervisor)
	}
	if t.Kernel == "" && t.BaseDisk == "" {
		return errors.New("template: set a kernel (direct boot), a base disk (qcow2), or both")
	}
	if t.BaseDisk != "" && s.OverlayPath == "" {
		return errors.New("spec: a base disk template needs an overlay path")
	}
	if len(s.Cores) == 0 {
		return errors.New("spec: no cores in the placement")
	}
	seen := map[int]bool{}
	for _, c := range s.Cores {
		if c < 0 || seen[c] {
			return fmt.Errorf("spec: bad or duplicate core %d in %v", c, s.Cores)
		}
		seen[c] = true
	}
	for _, c := range s.HousekeepingCores {
		if c < 0 {
			return fmt.Errorf("spec: bad housekeeping core %d", c)
		}
	}
	if s.MemoryMiB < 64 {
		return fmt.Errorf("spec: memory %d MiB is below the 64 MiB a guest needs", s.MemoryMiB)
	}
	if s.ShareDir == "" || s.ConsoleLog == "" {
		return errors.New("spec: share dir and console log paths are required")
	}
	switch s.ShareAccessMode {
	case "", "mapped", "passthrough":
	default:
		return fmt.Errorf("spec: share access mode %q: want mapped or passthrough", s.ShareAccessMode)
	}
	if s.HugepageSizeKiB < 0 {
		return fmt.Errorf("spec: hugepage size %d KiB is negative", s.HugepageSizeKiB)
	}
	if s.DACLabel != "" && !dacLabel.MatchString(s.DACLabel) {
		return fmt.Errorf("spec: DAC label %q: want +UID:+GID", s.DACLabel)
	}
	if err := validateNUMA(s); err != nil {
		return err
	}
	if err := validateNICs(s.NICs); err != nil {
		return err
	}
	return validateGPUs(t, s)
}

// validateNICs checks bridge names (interface names: 1..15 characters of
// [A-Za-z0-9_.-], not "." or "..") and MACs (unicast, not zero, distinct).
func validateNICs(nics []NIC) error {
	seen := map[string]bool{}
	for i, n := range nics {
		if n.Bridge == "" || len(n.Bridge) > 15 || n.Bridge == "." || n.Bridge == ".." ||
			strings.IndexFunc(n.Bridge, func(r rune) bool {
				return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-')
			}) >= 0 {
			return fmt.Errorf("spec: NIC %d: bridge %q: want 1..15 of A-Z a-z 0-9 _ . -", i, n.Bridge)
		}
		hw, err := net.ParseMAC(n.MAC)
		if err != nil || len(hw) != 6 || hw[0]&1 != 0 || bytes.Equal(hw, make([]byte, 6)) {
			return fmt.Errorf("spec: NIC %d: MAC %q: want a unicast address like 52:54:00:77:00:01", i, n.MAC)
		}
		if seen[hw.String()] {
			return fmt.Errorf("spec: NIC %d: MAC %s given twice", i, hw)
		}
		seen[hw.String()] = true
		if n.MTU != 0 && (n.MTU < 68 || n.MTU > 65535) {
			return fmt.Errorf("spec: NIC %d: MTU %d: want 68..65535, or 0 for the bridge's", i, n.MTU)
		}
	}
	return nil
}

// identity: type, name, metadata.
func identity(d *libvirtxml.Domain, t Template, s Spec) error {
	d.Type = "qemu"
	if t.Hypervisor == "kvm" {
		d.Type = "kvm"
	}
	d.Name = Name(s.Namespace, s.Job, s.Task, s.Rank)
	b, err := xml.Marshal(Metadata{ID: s.AllocID, Attempt: s.Attempt})
	if err != nil {
		return fmt.Errorf("domain metadata: %w", err)
	}
	d.Metadata = &libvirtxml.DomainMetadata{XML: string(b)}
	return nil
}

// dacLabel is a numeric DAC label, as nodeagent/guestid writes it.
var dacLabel = regexp.MustCompile(`^\+[0-9]{1,10}:\+[0-9]{1,10}$`)

// seclabel: the guest's own DAC identity, when it has one. libvirt's
// security drivers with a MAC model (SELinux, AppArmor) keep their default
// dynamic label per domain beside it.
func seclabel(d *libvirtxml.Domain, _ Template, s Spec) error {
	if s.DACLabel != "" {
		d.SecLabel = []libvirtxml.DomainSecLabel{{Type: "static", Model: "dac", Relabel: "yes", Label: s.DACLabel}}
	}
	return nil
}

// cpus: one vCPU per placement core, pinned 1:1 (numbered cell by cell
// when there are NUMA cells); emulator threads and the disk iothread on
// the housekeeping cores; host CPU model under KVM, with the host's
// physical address width when GPUs (large BARs) are passed through.
func cpus(d *libvirtxml.Domain, t Template, s Spec) error {
	cores, _ := vcpuCores(s)
	d.VCPU = &libvirtxml.DomainVCPU{Placement: "static", Value: uint(len(cores))}
	tune := &libvirtxml.DomainCPUTune{}
	for i, c := range cores {
		tune.VCPUPin = append(tune.VCPUPin, libvirtxml.DomainCPUTuneVCPUPin{VCPU: uint(i), CPUSet: strconv.Itoa(c)})
	}
	if s.IOThread {
		d.IOThreads = 1
	}
	if len(s.HousekeepingCores) > 0 {
		tune.EmulatorPin = &libvirtxml.DomainCPUTuneEmulatorPin{CPUSet: CPUSet(s.HousekeepingCores)}
		if s.IOThread {
			tune.IOThreadPin = []libvirtxml.DomainCPUTuneIOThreadPin{{IOThread: 1, CPUSet: CPUSet(s.HousekeepingCores)}}
		}
	}
	d.CPUTune = tune
	if t.Hypervisor == "tcg" && t.CPUModel != "" {
		d.CPU = &libvirtxml.DomainCPU{Mode: "custom", Match: "exact", Check: "none",
			Model: &libvirtxml.DomainCPUModel{Value: t.CPUModel, Fallback: "forbid"}}
	}
	if t.Hypervisor == "kvm" {
		d.CPU = &libvirtxml.DomainCPU{Mode: "host-passthrough", Check: "none"}
		if len(s.GPUs) > 0 {
			d.CPU.MaxPhysAddr = &libvirtxml.DomainCPUMaxPhysAddr{Mode: "passthrough"}
		}
	}
	return nil
}

// CPUSet formats cores as a libvirt cpuset ("0-3,8"), sorted, ranges merged.
func CPUSet(cores []int) string {
	c := slices.Clone(cores)
	slices.Sort(c)
	c = slices.Compact(c)
	var parts []string
	for i := 0; i < len(c); {
		j := i
		for j+1 < len(c) && c[j+1] == c[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, strconv.Itoa(c[i]))
		} else {
			parts = append(parts, strconv.Itoa(c[i])+"-"+strconv.Itoa(c[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

func memory(d *libvirtxml.Domain, _ Template, s Spec) error {
	d.Memory = &libvirtxml.DomainMemory{Value: uint(s.MemoryMiB), Unit: "MiB"}
	d.CurrentMemory = &libvirtxml.DomainCurrentMemory{Value: uint(s.MemoryMiB), Unit: "MiB"}
	return nil
}

// machine is the QEMU machine type: the template's, else q35 for GPU
// domains (pcie-expander-bus) and pc for the others.
func machine(t Template, s Spec) string {
	switch {
	case t.Machine != "":
		return t.Machine
	case len(s.GPUs) > 0:
		return "q35"
	default:
		return "pc"
	}
}

func boot(d *libvirtxml.Domain, t Template, s Spec) error {
	d.OS = &libvirtxml.DomainOS{
		Type: &libvirtxml.DomainOSType{Arch: "x86_64", Machine: machine(t, s), Type: "hvm"},
	}
	if t.Kernel != "" {
		d.OS.Kernel, d.OS.Initrd, d.OS.Cmdline = t.Kernel, t.Initrd, t.Cmdline
	} else {
		d.OS.BootDevices = []libvirtxml.DomainBootDevice{{Dev: "hd"}}
	}
	// ACPI lets the host's graceful shutdown reach the guest as a power
	// button press.
	d.Features = &libvirtxml.DomainFeatureList{ACPI: &libvirtxml.DomainFeature{}, APIC: &libvirtxml.DomainFeatureAPIC{}}
	d.Devices = &libvirtxml.DomainDeviceList{
		// No balloon, no USB, no graphics: a batch guest needs none.
		MemBalloon: &libvirtxml.DomainMemBalloon{Model: "none"},
		Controllers: []libvirtxml.DomainController{
			{Type: "usb", Model: "none"},
		},
	}
	return nil
}

// disks: the root overlay (qcow2 templates) as vda, then scratch; both on
// the iothread when Spec.IOThread is set. The root comes first so that it
// is probed first and is /dev/vda in the guest (a Debian image's
// root=/dev/vda); the scratch disk is found by its serial.
func disks(d *libvirtxml.Domain, t Template, s Spec) error {
	next := 'a'
	dev := func() string { n := "vd" + string(next); next++; return n }

	if t.BaseDisk != "" {
		d.Devices.Disks = append(d.Devices.Disks, libvirtxml.DomainDisk{
			Device: "disk",
			Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "qcow2", Discard: "unmap"},
			Source: &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: s.OverlayPath}},
			BackingStore: &libvirtxml.DomainDiskBackingStore{
				Format: &libvirtxml.DomainDiskFormat{Type: "qcow2"},
				// Shared read-only by every guest of the image: libvirt
				// must not hand it to one guest's user (it would stay
				// theirs, writable, after the guest is gone).
				Source: &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: t.BaseDisk,
					SecLabel: []libvirtxml.DomainDeviceSecLabel{{Model: "dac", Relabel: "no"}}}},
			},
			Target: &libvirtxml.DomainDiskTarget{Dev: dev(), Bus: "virtio"},
			Serial: "vhpc-root",
		})
	}
	if s.ScratchPath != "" {
		// Scratch dies with the job, so flushes buy nothing: cache=unsafe.
		d.Devices.Disks = append(d.Devices.Disks, libvirtxml.DomainDisk{
			Device: "disk",
			Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "raw", Cache: "unsafe", Discard: "unmap"},
			Source: &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: s.ScratchPath}},
			Target: &libvirtxml.DomainDiskTarget{Dev: dev(), Bus: "virtio"},
			Serial: ScratchSerial,
		})
	}
	if s.IOThread {
		for i := range d.Devices.Disks {
			one := uint(1)
			d.Devices.Disks[i].Driver.IOThread = &one
		}
	}
	return nil
}

// share: the job directory as 9p (virtio-9p-pci), mount tag "jobshare";
// each dataset read-only, mount tags vhpcds0, vhpcds1, ...
func share(d *libvirtxml.Domain, _ Template, s Spec) error {
	mode := s.ShareAccessMode
	if mode == "" {
		mode = "mapped"
	}
	d.Devices.Filesystems = append(d.Devices.Filesystems, libvirtxml.DomainFilesystem{
		AccessMode: mode,
		Driver:     &libvirtxml.DomainFilesystemDriver{Type: "path", WRPolicy: "immediate"},
		Source:     &libvirtxml.DomainFilesystemSource{Mount: &libvirtxml.DomainFilesystemSourceMount{Dir: s.ShareDir}},
		Target:     &libvirtxml.DomainFilesystemTarget{Dir: "jobshare"},
	})
	for i, dir := range s.Datasets {
		d.Devices.Filesystems = append(d.Devices.Filesystems, libvirtxml.DomainFilesystem{
			AccessMode: mode,
			ReadOnly:   &libvirtxml.DomainFilesystemReadOnly{},
			Driver:     &libvirtxml.DomainFilesystemDriver{Type: "path"},
			Source:     &libvirtxml.DomainFilesystemSource{Mount: &libvirtxml.DomainFilesystemSourceMount{Dir: dir}},
			Target:     &libvirtxml.DomainFilesystemTarget{Dir: guestproto.DatasetTag(i)},
		})
	}
	return nil
}

// console: serial port 0 to a log file; optional virtio-serial controller.
func console(d *libvirtxml.Domain, _ Template, s Spec) error {
	port := uint(0)
	d.Devices.Serials = append(d.Devices.Serials, libvirtxml.DomainSerial{
		Source: &libvirtxml.DomainChardevSource{File: &libvirtxml.DomainChardevSourceFile{Path: s.ConsoleLog, Append: "on"}},
		Target: &libvirtxml.DomainSerialTarget{Port: &port},
	})
	if s.VirtioSerial {
		d.Devices.Controllers = append(d.Devices.Controllers, libvirtxml.DomainController{Type: "virtio-serial"})
	}
	return nil
}

// nics: one virtio-net interface per NIC on its host bridge (libvirt makes
// the tap and adds it to the bridge), with the MTU when given.
func nics(d *libvirtxml.Domain, _ Template, s Spec) error {
	for _, n := range s.NICs {
		hw, _ := net.ParseMAC(n.MAC) // checked by validate
		iface := libvirtxml.DomainInterface{
			Source: &libvirtxml.DomainInterfaceSource{Bridge: &libvirtxml.DomainInterfaceSourceBridge{Bridge: n.Bridge}},
			MAC:    &libvirtxml.DomainInterfaceMAC{Address: hw.String()},
			Model:  &libvirtxml.DomainInterfaceModel{Type: "virtio"},
		}
		if n.MTU > 0 {
			iface.MTU = &libvirtxml.DomainInterfaceMTU{Size: uint(n.MTU)}
		}
		d.Devices.Interfaces = append(d.Devices.Interfaces, iface)
	}
	return nil
}

// lifecycle: every way the guest can end stops the domain; the runner
// sees the stop and collects exit.json (or reports the crash).
func lifecycle(d *libvirtxml.Domain, _ Template, _ Spec) error {
	d.OnPoweroff, d.OnReboot, d.OnCrash = "destroy", "destroy", "destroy"
	return nil
}
