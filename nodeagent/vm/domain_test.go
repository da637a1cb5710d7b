package vm

import (
	"encoding/xml"
	"flag"
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
		{"no boot source", func(t *Template, _ *Spec) { t.Kernel = "" }, "exactly one"},
		{"both boot sources", func(t *Template, _ *Spec) { t.BaseDisk = "/b.qcow2" }, "exactly one"},
		{"overlay missing", func(t *Template, _ *Spec) { t.Kernel, t.BaseDisk = "", "/b.qcow2" }, "overlay"},
		{"no cores", func(_ *Template, s *Spec) { s.Cores = nil }, "no cores"},
		{"duplicate core", func(_ *Template, s *Spec) { s.Cores = []int{1, 1} }, "duplicate"},
		{"tiny memory", func(_ *Template, s *Spec) { s.MemoryMiB = 16 }, "memory"},
		{"bad access mode", func(_ *Template, s *Spec) { s.ShareAccessMode = "squash" }, "access mode"},
		{"no share", func(_ *Template, s *Spec) { s.ShareDir = "" }, "share dir"},
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
