package vm

import (
	"encoding/xml"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"libvirt.org/go/libvirtxml"
)

var update = flag.Bool("update", false, "rewrite testdata/*.xml golden files")

func tinyTemplate(hv string) Template {
	return Template{Name: "tiny", Hypervisor: hv, Kernel: "/var/lib/vhpc/images/tiny-0123/vmlinux",
		Initrd: "/var/lib/vhpc/images/tiny-0123/initrd.img", Cmdline: "console=ttyS0 panic=-1 rdinit=/init"}
}

func baseSpec() Spec {
	return Spec{
		AllocID: "7.0.0", Attempt: 1, Job: 7, Task: 0, Rank: 0,
		Cores: []int{2, 3}, MemoryMiB: 512,
		ShareDir:    "/var/lib/vhpc/jobs/7.0.0/share",
		ScratchPath: "/var/lib/vhpc/jobs/7.0.0/scratch.img",
		ConsoleLog:  "/var/lib/vhpc/logs/7.0.0.console.log",
	}
}

func TestGolden(t *testing.T) {
	tests := []struct {
		name string
		t    Template
		s    func() Spec
	}{
		{"tiny-2vcpu", tinyTemplate("tcg"), baseSpec},
		{"pinned-4core", tinyTemplate("kvm"), func() Spec {
			s := baseSpec()
			s.AllocID, s.Job, s.Task, s.Rank = "12.3.1", 12, 3, 1
			s.Cores = []int{8, 9, 10, 11}
			s.HousekeepingCores = []int{0, 1}
			s.MemoryMiB = 4096
			s.VirtioSerial = true
			return s
		}},
		{"debian-image", Template{Name: "public/python:1", Hypervisor: "tcg", CPUModel: "Skylake-Client",
			Kernel: "/var/lib/vhpc/images/public-python-1-0123/kernel", Initrd: "/var/lib/vhpc/images/public-python-1-0123/initrd",
			Cmdline:  "root=/dev/vda rootfstype=ext4 rw console=ttyS0 panic=-1 init=/usr/sbin/hpc-guest",
			BaseDisk: "/var/lib/vhpc/images/public-python-1-0123/root.qcow2"}, func() Spec {
			s := baseSpec()
			s.OverlayPath = "/var/lib/vhpc/jobs/7.0.0/root.qcow2"
			return s
		}},
		{"own-identity", Template{Name: "public/python:1", Hypervisor: "kvm",
			Kernel: "/var/lib/vhpc/jobs/7.0.0/boot/kernel", Initrd: "/var/lib/vhpc/jobs/7.0.0/boot/initrd",
			Cmdline:  "root=/dev/vda rootfstype=ext4 rw console=ttyS0 panic=-1 init=/usr/sbin/hpc-guest",
			BaseDisk: "/var/lib/vhpc/images/public-python-1-0123/root.qcow2"}, func() Spec {
			s := baseSpec()
			s.OverlayPath = "/var/lib/vhpc/jobs/7.0.0/root.qcow2"
			s.DACLabel = "+600007:+64055"
			return s
		}},
		{"multinode-nic", tinyTemplate("kvm"), func() Spec {
			s := baseSpec()
			s.AllocID, s.Job, s.Rank, s.Namespace = "31.0.1", 31, 1, "0123abcd"
			s.NICs = []NIC{{Bridge: "vb3f5d99d68d46f", MAC: "52:54:00:77:00:02", MTU: 1450}}
			return s
		}},
		{"datasets", tinyTemplate("tcg"), func() Spec {
			s := baseSpec()
			s.Datasets = []string{"/var/lib/vhpc/dataset-cache/aa11", "/var/lib/vhpc/dataset-cache/bb22"}
			return s
		}},
		{"qcow2-overlay", Template{Name: "dept-physics", Hypervisor: "kvm", Machine: "q35", BaseDisk: "/var/lib/vhpc/images/physics.qcow2"}, func() Spec {
			s := baseSpec()
			s.OverlayPath = "/var/lib/vhpc/jobs/7.0.0/root.qcow2"
			s.ShareAccessMode = "passthrough"
			return s
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Build(tc.t, tc.s())
			if err != nil {
				t.Fatal(err)
			}
			got, err := d.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.name+".xml")
			if *update {
				if err := os.WriteFile(path, []byte(got+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got+"\n" != string(want) {
				t.Errorf("domain XML differs from %s (run with -update if intended):\n%s", path, got)
			}
			// The XML must round-trip through libvirtxml.
			var back libvirtxml.Domain
			if err := back.Unmarshal(got); err != nil {
				t.Fatalf("unmarshal own XML: %v", err)
			}
			if back.Name != d.Name {
				t.Errorf("round trip name %q != %q", back.Name, d.Name)
			}
		})
	}
}

// TestNoXMLInjection: an allocation id full of markup (the only
// user-influenced string that reaches a definition) stays character data.
func TestNoXMLInjection(t *testing.T) {
	for _, id := range []string{`<x/>`, `"><devices><hostdev/></devices><x a="`, "]]><!--", "&amp;\x00"} {
		s := baseSpec()
		s.AllocID = id
		d, err := Build(tinyTemplate("tcg"), s)
		if err != nil {
			t.Fatal(err)
		}
		out, err := d.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, "<x/>") || strings.Contains(out, "<hostdev") {
			t.Fatalf("id %q injected markup:\n%s", id, out)
		}
		var back libvirtxml.Domain
		if err := back.Unmarshal(out); err != nil {
			t.Fatalf("id %q: XML no longer parses: %v", id, err)
		}
		if back.Name != "vhpc-7-0-0" {
			t.Errorf("name changed: %q", back.Name)
		}
		m, err := ParseMetadata(&back)
		if err != nil {
			t.Fatal(err)
		}
		// encoding/xml replaces invalid characters (NUL) with U+FFFD.
		want := strings.ToValidUTF8(strings.ReplaceAll(id, "\x00", "\uFFFD"), "")
		if m.ID != want {
			t.Errorf("metadata id = %q, want %q", m.ID, want)
		}
		if len(back.Devices.Hostdevs) != 0 {
			t.Errorf("hostdev injected")
		}
	}
}

func TestBuildRejects(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Template, *Spec)
		want string
	}{
		{"bad hypervisor", func(t *Template, _ *Spec) { t.Hypervisor = "xen" }, "hypervisor"},
		{"no boot source", func(t *Template, _ *Spec) { t.Kernel = "" }, "set a kernel"},
		{"kernel and base disk without overlay", func(t *Template, _ *Spec) { t.BaseDisk = "/b.qcow2" }, "overlay"},
		{"overlay missing", func(t *Template, _ *Spec) { t.Kernel, t.BaseDisk = "", "/b.qcow2" }, "overlay"},
		{"no cores", func(_ *Template, s *Spec) { s.Cores = nil }, "no cores"},
		{"duplicate core", func(_ *Template, s *Spec) { s.Cores = []int{1, 1} }, "duplicate"},
		{"tiny memory", func(_ *Template, s *Spec) { s.MemoryMiB = 16 }, "memory"},
		{"bad access mode", func(_ *Template, s *Spec) { s.ShareAccessMode = "squash" }, "access mode"},
		{"no share", func(_ *Template, s *Spec) { s.ShareDir = "" }, "share dir"},
		{"NIC without bridge", func(_ *Template, s *Spec) { s.NICs = []NIC{{MAC: "52:54:00:77:00:01"}} }, "bridge"},
		{"NIC bridge too long", func(_ *Template, s *Spec) { s.NICs = []NIC{{Bridge: "vb0123456789abcd", MAC: "52:54:00:77:00:01"}} }, "bridge"},
		{"NIC bridge with slash", func(_ *Template, s *Spec) { s.NICs = []NIC{{Bridge: "br/0", MAC: "52:54:00:77:00:01"}} }, "bridge"},
		{"NIC bridge with quote", func(_ *Template, s *Spec) { s.NICs = []NIC{{Bridge: `br"`, MAC: "52:54:00:77:00:01"}} }, "bridge"},
		{"NIC bridge dotdot", func(_ *Template, s *Spec) { s.NICs = []NIC{{Bridge: "..", MAC: "52:54:00:77:00:01"}} }, "bridge"},
		{"NIC bad MAC", func(_ *Template, s *Spec) { s.NICs = []NIC{{Bridge: "vb1", MAC: "52:54:00:77:00"}} }, "MAC"},
		{"NIC long MAC", func(_ *Template, s *Spec) { s.NICs = []NIC{{Bridge: "vb1", MAC: "52:54:00:77:00:01:02:03"}} }, "MAC"},
		{"NIC multicast MAC", func(_ *Template, s *Spec) { s.NICs = []NIC{{Bridge: "vb1", MAC: "01:00:5e:00:00:01"}} }, "MAC"},
		{"NIC zero MAC", func(_ *Template, s *Spec) { s.NICs = []NIC{{Bridge: "vb1", MAC: "00:00:00:00:00:00"}} }, "MAC"},
		{"NIC MAC twice", func(_ *Template, s *Spec) {
			s.NICs = []NIC{{Bridge: "vb1", MAC: "52:54:00:77:00:01"}, {Bridge: "vb2", MAC: "52:54:00:77:00:01"}}
		}, "twice"},
		{"DAC label by name", func(_ *Template, s *Spec) { s.DACLabel = "root:root" }, "DAC label"},
		{"DAC label with markup", func(_ *Template, s *Spec) { s.DACLabel = "+1:+1</label>" }, "DAC label"},
		{"NIC MTU", func(_ *Template, s *Spec) { s.NICs = []NIC{{Bridge: "vb1", MAC: "52:54:00:77:00:01", MTU: 67}} }, "MTU"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tp, s := tinyTemplate("tcg"), baseSpec()
			tc.mod(&tp, &s)
			_, err := Build(tp, s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestCPUSet(t *testing.T) {
	tests := []struct {
		in   []int
		want string
	}{
		{[]int{0}, "0"},
		{[]int{3, 1, 2, 0}, "0-3"},
		{[]int{0, 1, 4, 6, 7, 8}, "0-1,4,6-8"},
		{[]int{5, 5}, "5"},
		{nil, ""},
	}
	for _, tc := range tests {
		if got := CPUSet(tc.in); got != tc.want {
			t.Errorf("CPUSet(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestName(t *testing.T) {
	if got := Name("", 18446744073709551615, -1, 3); got != "vhpc-18446744073709551615--1-3" {
		t.Errorf("got %q", got)
	}
	if !strings.HasPrefix(Name("ab1", 1, 0, 0), NamePrefix+"ab1-") {
		t.Error("prefix")
	}
}

func TestParseName(t *testing.T) {
	tests := []struct {
		ns, name string
		job      uint64
		task     int64
		rank     int
		ok       bool
	}{
		{"ab1", Name("ab1", 7, 0, 2), 7, 0, 2, true},
		{"ab1", Name("ab1", 18446744073709551615, 3, 0), 18446744073709551615, 3, 0, true},
		{"", Name("", 9, 1, 1), 9, 1, 1, true},
		{"ab1", Name("ab2", 7, 0, 2), 0, 0, 0, false},
		{"", Name("ab1", 7, 0, 2), 0, 0, 0, false},
		{"ab1", "vhpc-ab1-7-0", 0, 0, 0, false},
		{"ab1", "vhpc-ab1-7-0-1-2", 0, 0, 0, false},
		{"ab1", "vhpc-ab1-07-0-1", 0, 0, 0, false},
		{"ab1", "vhpc-ab1-x-0-1", 0, 0, 0, false},
		{"ab1", "other", 0, 0, 0, false},
	}
	for _, tc := range tests {
		job, task, rank, ok := ParseName(tc.ns, tc.name)
		if ok != tc.ok || job != tc.job || task != tc.task || rank != tc.rank {
			t.Errorf("ParseName(%q, %q) = %d %d %d %v, want %d %d %d %v", tc.ns, tc.name, job, task, rank, ok, tc.job, tc.task, tc.rank, tc.ok)
		}
	}
}

// FuzzBuild: any alloc id yields well-formed XML with the fixed name.
func FuzzBuild(f *testing.F) {
	f.Add("1.0.0")
	f.Add("<x/>")
	f.Add("\xff\xfe")
	f.Fuzz(func(t *testing.T, id string) {
		s := baseSpec()
		s.AllocID = id
		d, err := Build(tinyTemplate("tcg"), s)
		if err != nil {
			t.Fatal(err)
		}
		out, err := d.Marshal()
		if err != nil {
			return // encoding/xml refuses some invalid input: fine, never injected
		}
		if err := xml.Unmarshal([]byte(out), new(libvirtxml.Domain)); err != nil {
			t.Fatalf("invalid XML for %q: %v", id, err)
		}
	})
}

// h100 is a GPU at addr on host NUMA node numa whose IOMMU group holds the
// GPU and the extra members.
func h100(addr string, numa int, extra ...PCIFunction) GPU {
	return GPU{Address: addr, NUMA: numa, Group: append([]PCIFunction{{Address: addr, Class: 0x030200}}, extra...)}
}

func audio(addr string) PCIFunction  { return PCIFunction{Address: addr, Class: 0x040300} }
func bridge(addr string) PCIFunction { return PCIFunction{Address: addr, Class: 0x060400} }

func seq(from, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = from + i
	}
	return out
}

func repeat(v, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// gpuSpec is one rank of job 21 on a DGX-like host.
func gpuSpec() Spec {
	s := baseSpec()
	s.AllocID, s.Job = "21.0.0", 21
	s.ShareDir = "/var/lib/vhpc/jobs/21.0.0/share"
	s.ScratchPath = "/var/lib/vhpc/jobs/21.0.0/scratch.img"
	s.ConsoleLog = "/var/lib/vhpc/logs/21.0.0.console.log"
	s.IOThread = true
	return s
}

func TestGoldenGPU(t *testing.T) {
	tests := []struct {
		name string
		t    Template
		s    func() Spec
	}{
		// 8 H100s, 4 on each socket, each with its audio function; the
		// first group also holds the PCIe switch port above the GPU.
		// 32 cores (16 per node), 128 GiB, all of it 1 GiB hugepages.
		{"gpu-8x-2socket-hugepages", tinyTemplate("kvm"), func() Spec {
			s := gpuSpec()
			s.Cores = append(seq(0, 16), seq(16, 16)...)
			s.CoreNUMA = append(repeat(0, 16), repeat(1, 16)...)
			s.HousekeepingCores = []int{32, 48}
			s.MemoryMiB = 131072
			s.NUMA = []NUMACell{{HostNode: 0, MemoryMiB: 65536, HugepagesMiB: 65536}, {HostNode: 1, MemoryMiB: 65536, HugepagesMiB: 65536}}
			s.HugepageSizeKiB = 1 << 20
			for i, bus := range []string{"18", "2a", "3a", "5d", "9a", "ab", "ba", "db"} {
				g := h100("0000:"+bus+":00.0", i/4, audio("0000:"+bus+":00.1"))
				if i == 0 {
					g.Group = append(g.Group, bridge("0000:17:00.0"))
				}
				s.GPUs = append(s.GPUs, g)
			}
			return s
		}},
		// One GPU alone in its group, 8 cores and the memory of node 1.
		{"gpu-1x-single-node", tinyTemplate("kvm"), func() Spec {
			s := gpuSpec()
			s.Cores, s.CoreNUMA = seq(16, 8), repeat(1, 8)
			s.HousekeepingCores = []int{1}
			s.MemoryMiB = 16384
			s.NUMA = []NUMACell{{HostNode: 1, MemoryMiB: 16384}}
			s.GPUs = []GPU{h100("0000:9a:00.0", 1)}
			return s
		}},
		// A GPU whose group holds its HDMI audio function (listed first)
		// and a bridge, on a qcow2 image with a versioned q35 machine.
		{"gpu-audio-function", Template{Name: "dept-ml", Hypervisor: "kvm", Machine: "pc-q35-7.2", BaseDisk: "/var/lib/vhpc/images/ml.qcow2"}, func() Spec {
			s := gpuSpec()
			s.OverlayPath = "/var/lib/vhpc/jobs/21.0.0/root.qcow2"
			s.Cores, s.CoreNUMA = []int{4, 5, 6, 7}, repeat(0, 4)
			s.MemoryMiB = 8192
			s.NUMA = []NUMACell{{HostNode: 0, MemoryMiB: 8192}}
			s.GPUs = []GPU{{Address: "0000:3b:00.0", NUMA: 0, Group: []PCIFunction{
				audio("0000:3b:00.1"), bridge("0000:3a:00.0"), {Address: "0000:3b:00.0", Class: 0x030000},
			}}}
			return s
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Build(tc.t, tc.s())
			if err != nil {
				t.Fatal(err)
			}
			got, err := d.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.name+".xml")
			if *update {
				if err := os.WriteFile(path, []byte(got+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got+"\n" != string(want) {
				t.Errorf("domain XML differs from %s (run with -update if intended):\n%s", path, got)
			}
			var back libvirtxml.Domain
			if err := back.Unmarshal(got); err != nil {
				t.Fatalf("unmarshal own XML: %v", err)
			}
			checkGPULayout(t, tc.s(), &back)
		})
	}
}

// checkGPULayout checks the golden files' promises independently of their
// text: one managed hostdev per passed function and nothing else (no
// bridge), each GPU behind its own root port under an expander bus in the
// guest cell of its host node, functions keeping their numbers.
func checkGPULayout(t *testing.T, s Spec, d *libvirtxml.Domain) {
	t.Helper()
	ctrl := map[uint]libvirtxml.DomainController{}
	for _, c := range d.Devices.Controllers {
		if c.Index != nil && c.Type == "pci" {
			ctrl[*c.Index] = c
		}
	}
	hosts := map[string]libvirtxml.DomainAddressPCI{}
	for _, h := range d.Devices.Hostdevs {
		if h.Managed != "yes" || h.SubsysPCI == nil {
			t.Fatalf("hostdev not a managed PCI device: %+v", h)
		}
		a := h.SubsysPCI.Source.Address
		hosts[fmt.Sprintf("%04x:%02x:%02x.%x", *a.Domain, *a.Bus, *a.Slot, *a.Function)] = *h.Address.PCI
	}
	n := 0
	for _, g := range s.GPUs {
		fns, err := PassedFunctions(g)
		if err != nil {
			t.Fatal(err)
		}
		n += len(fns)
		for _, f := range fns {
			guest, ok := hosts[f]
			if !ok {
				t.Fatalf("function %s not passed through", f)
			}
			if want := f[len(f)-1:]; fmt.Sprintf("%x", *guest.Function) != want {
				t.Errorf("%s: guest function %d", f, *guest.Function)
			}
			port := ctrl[*guest.Bus]
			pxb := ctrl[*port.Address.PCI.Bus]
			if port.Model != "pcie-root-port" || pxb.Model != "pcie-expander-bus" {
				t.Fatalf("%s: behind %q under %q", f, port.Model, pxb.Model)
			}
			cell := *pxb.PCI.Target.NUMANode
			if s.NUMA[cell].HostNode != g.NUMA {
				t.Errorf("%s: expander bus in guest cell %d (host node %d), GPU on host node %d", f, cell, s.NUMA[cell].HostNode, g.NUMA)
			}
		}
	}
	if len(hosts) != n {
		t.Errorf("%d hostdevs, want %d", len(hosts), n)
	}
	if d.OS.Type.Machine == "pc" {
		t.Error("GPU domain on machine pc")
	}
}

func TestBuildRejectsGPU(t *testing.T) {
	oneGPU := func(s *Spec) {
		s.Cores, s.CoreNUMA, s.MemoryMiB = []int{2, 3}, []int{0, 0}, 512
		s.NUMA = []NUMACell{{HostNode: 0, MemoryMiB: 512}}
		s.GPUs = []GPU{h100("0000:3b:00.0", 0, audio("0000:3b:00.1"))}
	}
	tests := []struct {
		name string
		mod  func(*Template, *Spec)
		want string
	}{
		{"foreign device in group", func(_ *Template, s *Spec) {
			s.GPUs[0].Group = append(s.GPUs[0].Group, PCIFunction{Address: "0000:3a:00.0", Class: 0x020000})
		}, "0000:3a:00.0 (class 0x020000), which is neither a function of the GPU nor a PCI bridge"},
		{"second GPU behind a switch without ACS", func(_ *Template, s *Spec) {
			s.GPUs[0].Group = append(s.GPUs[0].Group, PCIFunction{Address: "0000:3c:00.0", Class: 0x030200})
		}, "neither a function of the GPU"},
		{"group mate not given to the guest", func(_ *Template, s *Spec) {
			s.GPUs[0].Group = append(s.GPUs[0].Group, PCIFunction{Address: "0000:3c:00.0", Class: 0x030200})
			s.GPUs[0].Mates = []string{"0000:3c:00.0"}
		}, "shares its IOMMU group with gpu 0000:3c:00.0, which this guest does not get"},
		{"tcg", func(t *Template, _ *Spec) { t.Hypervisor = "tcg" }, "needs KVM"},
		{"machine pc", func(t *Template, _ *Spec) { t.Machine = "pc" }, "need q35"},
		{"no NUMA cells", func(_ *Template, s *Spec) { s.NUMA, s.CoreNUMA = nil, nil }, "GPUs need NUMA cells"},
		{"GPU node outside the placement", func(_ *Template, s *Spec) { s.GPUs[0].NUMA = 1 }, "gpu 0000:3b:00.0 is on host NUMA node 1"},
		{"function passed twice", func(_ *Template, s *Spec) { s.GPUs = append(s.GPUs, h100("0000:3b:00.0", 0)) }, "already passed through"},
		{"no function 0", func(_ *Template, s *Spec) { s.GPUs[0] = h100("0000:3b:00.1", 0) }, "function 0"},
		{"bad address", func(_ *Template, s *Spec) { s.GPUs[0].Address = "3b:00.0" }, "sysfs form"},
		{"bad member address", func(_ *Template, s *Spec) { s.GPUs[0].Group[1].Address = "0000:3b:00.8" }, "sysfs form"},
		{"too many GPUs", func(_ *Template, s *Spec) {
			for i := range 12 {
				s.GPUs = append(s.GPUs, h100(fmt.Sprintf("0000:%02x:00.0", 0x40+i), 0))
			}
		}, "at most 12"},
		{"partial hugepages", func(_ *Template, s *Spec) { s.NUMA[0].HugepagesMiB = 256 }, "entirely or not at all"},
		{"cells short of memory", func(_ *Template, s *Spec) { s.NUMA[0].MemoryMiB = 256 }, "NUMA cells hold 256 MiB"},
		{"core NUMA missing", func(_ *Template, s *Spec) { s.CoreNUMA = []int{0} }, "one per core"},
		{"core outside the cells", func(_ *Template, s *Spec) { s.CoreNUMA[1] = 1 }, "core 3 is on host NUMA node 1"},
		{"duplicate cell", func(_ *Template, s *Spec) {
			s.NUMA = []NUMACell{{HostNode: 0, MemoryMiB: 256}, {HostNode: 0, MemoryMiB: 256}}
		}, "duplicate host node"},
		{"mixed hugepage cells", func(_ *Template, s *Spec) {
			s.NUMA = []NUMACell{{HostNode: 0, MemoryMiB: 256, HugepagesMiB: 256}, {HostNode: 1, MemoryMiB: 256}}
		}, "all or none"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tp, s := tinyTemplate("kvm"), baseSpec()
			oneGPU(&s)
			if _, err := Build(tp, s); err != nil {
				t.Fatalf("valid base spec: %v", err)
			}
			tc.mod(&tp, &s)
			_, err := Build(tp, s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// TestNUMAVCPUOrder: interleaved host cores (SMT siblings numbered after
// all cores, as on most two-socket hosts) give vCPUs numbered cell by
// cell, each pinned to its own core, and a memory-only cell for a host
// node the placement took memory but no cores from.
// TestGPUsSharingAGroupBuildTogether: two GPUs behind one switch without
// ACS (one IOMMU group) build into one domain, each GPU's functions once.
func TestGPUsSharingAGroupBuildTogether(t *testing.T) {
	group := []PCIFunction{{Address: "0000:3b:00.0", Class: 0x030200}, audio("0000:3b:00.1"),
		{Address: "0000:3c:00.0", Class: 0x030200}, audio("0000:3c:00.1"), bridge("0000:3a:00.0")}
	s := baseSpec()
	s.Cores, s.CoreNUMA, s.MemoryMiB = []int{2, 3}, []int{0, 0}, 512
	s.NUMA = []NUMACell{{HostNode: 0, MemoryMiB: 512}}
	s.GPUs = []GPU{
		{Address: "0000:3b:00.0", NUMA: 0, Group: group, Mates: []string{"0000:3c:00.0"}},
		{Address: "0000:3c:00.0", NUMA: 0, Group: group, Mates: []string{"0000:3b:00.0"}},
	}
	d, err := Build(tinyTemplate("kvm"), s)
	if err != nil {
		t.Fatal(err)
	}
	x, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range []string{"3b:00.0", "3b:00.1", "3c:00.0", "3c:00.1"} {
		src := fmt.Sprintf(`<address domain="0x0000" bus="0x%s" slot="0x%s" function="0x%s">`, fn[:2], fn[3:5], fn[6:])
		if n := strings.Count(x, src); n != 1 {
			t.Errorf("host function %s appears %d times as a hostdev source, want once", fn, n)
		}
	}
	if strings.Contains(x, `bus="0x3a"`) {
		t.Error("the PCIe bridge was passed through")
	}
}

func TestNUMAVCPUOrder(t *testing.T) {
	s := baseSpec()
	s.Cores = []int{0, 1, 16, 17, 32, 33, 48, 49}
	s.CoreNUMA = []int{0, 0, 1, 1, 0, 0, 1, 1}
	s.MemoryMiB = 3072
	s.NUMA = []NUMACell{{HostNode: 0, MemoryMiB: 1024}, {HostNode: 1, MemoryMiB: 1024}, {HostNode: 2, MemoryMiB: 1024}}
	d, err := Build(tinyTemplate("tcg"), s)
	if err != nil {
		t.Fatal(err)
	}
	var pins []string
	for _, p := range d.CPUTune.VCPUPin {
		pins = append(pins, fmt.Sprintf("%d:%s", p.VCPU, p.CPUSet))
	}
	if got, want := strings.Join(pins, " "), "0:0 1:1 2:32 3:33 4:16 5:17 6:48 7:49"; got != want {
		t.Errorf("pins %s, want %s", got, want)
	}
	var cells []string
	for _, c := range d.CPU.Numa.Cell {
		cells = append(cells, fmt.Sprintf("%d:[%s]:%d", *c.ID, c.CPUs, c.Memory))
	}
	if got, want := strings.Join(cells, " "), "0:[0-3]:1024 1:[4-7]:1024 2:[]:1024"; got != want {
		t.Errorf("cells %s, want %s", got, want)
	}
	if d.NUMATune.Memory.Nodeset != "0-2" || len(d.NUMATune.MemNodes) != 3 || d.NUMATune.MemNodes[2].Nodeset != "2" {
		t.Errorf("numatune %+v", d.NUMATune)
	}
	if d.MemoryBacking != nil || d.OS.Type.Machine != "pc" || len(d.Devices.Hostdevs) != 0 {
		t.Error("a GPU-less domain without hugepages changed machine, backing or devices")
	}
}

func TestPassedFunctions(t *testing.T) {
	tests := []struct {
		name string
		g    GPU
		want string
	}{
		{"alone", h100("0000:3b:00.0", 0), "0000:3b:00.0"},
		{"group mate's functions stay with the mate", GPU{Address: "0000:3b:00.0", Mates: []string{"0000:3c:00.0"}, Group: []PCIFunction{
			{Address: "0000:3b:00.0", Class: 0x030200}, audio("0000:3b:00.1"), {Address: "0000:3c:00.0", Class: 0x030200}, audio("0000:3c:00.1"),
		}}, "0000:3b:00.0 0000:3b:00.1"},
		{"audio and bridge", h100("0000:3b:00.0", 0, bridge("0000:3a:00.0"), audio("0000:3b:00.1")), "0000:3b:00.0 0000:3b:00.1"},
		{"GPU not listed, four functions", GPU{Address: "0000:af:00.0", Group: []PCIFunction{
			{Address: "0000:af:00.3", Class: 0x0c8000}, {Address: "0000:af:00.2", Class: 0x0c0330}, audio("0000:af:00.1"),
		}}, "0000:af:00.0 0000:af:00.1 0000:af:00.2 0000:af:00.3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PassedFunctions(tc.g)
			if err != nil || strings.Join(got, " ") != tc.want {
				t.Fatalf("got %v %v, want %s", got, err, tc.want)
			}
		})
	}
}

// TestGuestGPUIndex: the guest addresses the GPU layout gives (each GPU
// behind its own expander's root port) map back to the GPU's index, for
// every function; other addresses belong to no GPU.
func TestGuestGPUIndex(t *testing.T) {
	for i := range maxGPUs {
		if got, ok := GuestGPUIndex(GuestGPUAddress(i)); !ok || got != i {
			t.Errorf("GuestGPUIndex(GuestGPUAddress(%d) = %s) = %d, %v", i, GuestGPUAddress(i), got, ok)
		}
	}
	for _, tc := range []struct {
		addr string
		want int
		ok   bool
	}{
		{"0000:ff:00.0", 0, true},
		{"0000:ff:00.1", 0, true}, // the GPU's audio function
		{"0000:fd:00.0", 1, true},
		{"0000:fe:00.0", 0, false}, // GPU 0's root port
		{"0000:01:00.0", 0, false},
		{"0001:ff:00.0", 0, false},
		{"0000:ff:01.0", 0, false},
		{"0000:e5:00.0", 0, false}, // would be GPU 13, past maxGPUs
		{"ff:00.0", 0, false},
	} {
		if got, ok := GuestGPUIndex(tc.addr); ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("GuestGPUIndex(%s) = %d, %v; want %d, %v", tc.addr, got, ok, tc.want, tc.ok)
		}
	}
}
