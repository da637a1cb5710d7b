package inventory

import (
	"errors"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"vhpc/nodeagent/gpu"
	"vhpc/scheduler/model"
)

func scan(t *testing.T, h fakeHost) *Inventory {
	t.Helper()
	inv, err := Scan(Options{Root: h.build()})
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return inv
}

func TestScanFixtures(t *testing.T) {
	noIOMMU := dgxLike()
	noIOMMU.iommu = false
	withOffline := laptop()
	withOffline.offline = []int{2, 7} // one thread of cores 2 and 3

	tests := []struct {
		name        string
		host        fakeHost
		cpus        int // online logical CPUs
		physCores   int
		numa        []model.NUMANode
		gpus        int
		passthrough []string // GPUs that may be passed through
		notes       []string // substrings, one note each
	}{
		{
			name: "dgx-like 2 sockets", host: dgxLike(), cpus: 64, physCores: 32,
			numa: []model.NUMANode{{ID: 0, MemoryMiB: 256 << 10, HugepagesMiB: 2048 + 16384}, {ID: 1, MemoryMiB: 256 << 10, HugepagesMiB: 2048 + 16384}},
			gpus: 8, passthrough: []string{"0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0", "0000:5d:00.0", "0000:9a:00.0", "0000:ab:00.0", "0000:ba:00.0", "0000:db:00.0"},
		},
		{
			name: "gpu shares group with nic", host: sharedGroup(), cpus: 8, physCores: 8,
			numa: []model.NUMANode{{ID: 0, MemoryMiB: 64 << 10}},
			gpus: 2, passthrough: []string{"0000:af:00.0"},
			notes: []string{"GPU 0000:3b:00.0: NUMA node unknown", "GPU 0000:af:00.0: NUMA node unknown"},
		},
		{
			name: "laptop without numa or gpus", host: laptop(), cpus: 8, physCores: 4,
			numa:  []model.NUMANode{{ID: 0, MemoryMiB: 16 << 10}},
			notes: []string{"no NUMA information"},
		},
		{
			name: "laptop with offline cpus", host: withOffline, cpus: 6, physCores: 4,
			numa:  []model.NUMANode{{ID: 0, MemoryMiB: 16 << 10}},
			notes: []string{"no NUMA information"},
		},
		{
			name: "iommu off", host: noIOMMU, cpus: 64, physCores: 32,
			numa: []model.NUMANode{{ID: 0, MemoryMiB: 256 << 10, HugepagesMiB: 2048 + 16384}, {ID: 1, MemoryMiB: 256 << 10, HugepagesMiB: 2048 + 16384}},
			gpus: 8, notes: []string{"IOMMU is off"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv := scan(t, tc.host)
			n := inv.ToNode("n1")
			if len(n.Cores) != tc.cpus {
				t.Errorf("cores = %d, want %d", len(n.Cores), tc.cpus)
			}
			phys := map[int]bool{}
			for _, c := range n.Cores {
				phys[c.PhysicalCore] = true
			}
			if len(phys) != tc.physCores {
				t.Errorf("physical cores = %d, want %d", len(phys), tc.physCores)
			}
			if !slices.Equal(n.NUMA, tc.numa) {
				t.Errorf("numa = %+v, want %+v", n.NUMA, tc.numa)
			}
			if len(n.GPUs) != tc.gpus {
				t.Errorf("gpus = %d, want %d", len(n.GPUs), tc.gpus)
			}
			var ok []string
			for _, g := range inv.GPUs {
				if g.Passthrough {
					ok = append(ok, g.Address)
				} else if g.Reason == "" {
					t.Errorf("GPU %s refused without a reason", g.Address)
				}
			}
			if !slices.Equal(ok, tc.passthrough) {
				t.Errorf("passthrough ok = %v, want %v", ok, tc.passthrough)
			}
			if len(inv.Notes) != len(tc.notes) {
				t.Errorf("notes = %q, want %d", inv.Notes, len(tc.notes))
			}
			for _, want := range tc.notes {
				if !slices.ContainsFunc(inv.Notes, func(s string) bool { return strings.Contains(s, want) }) {
					t.Errorf("no note containing %q in %q", want, inv.Notes)
				}
			}
		})
	}
}

func TestDGXTopology(t *testing.T) {
	inv := scan(t, dgxLike())
	n := inv.ToNode("dgx01")
	byID := map[int]model.Core{}
	for _, c := range n.Cores {
		byID[c.ID] = c
	}
	// cpu5 (socket 0, core 5) and cpu37 are SMT siblings; cpu21 is core 5
	// of socket 1: same core_id, different physical core.
	if byID[5].PhysicalCore != byID[37].PhysicalCore {
		t.Errorf("siblings 5 and 37: %+v %+v", byID[5], byID[37])
	}
	if byID[5].PhysicalCore == byID[21].PhysicalCore {
		t.Errorf("cpu5 and cpu21 are on different sockets but share PhysicalCore %d", byID[5].PhysicalCore)
	}
	if byID[5].NUMA != 0 || byID[21].NUMA != 1 || byID[53].NUMA != 1 {
		t.Errorf("numa of cpus 5/21/53: %d %d %d", byID[5].NUMA, byID[21].NUMA, byID[53].NUMA)
	}
	if c := inv.CPUs[37]; !slices.Equal(c.Threads, []int{5, 37}) || c.Package != 0 || c.CoreID != 10 {
		t.Errorf("cpu37 = %+v", c)
	}

	want := []model.GPU{}
	for i, b := range []string{"18", "2a", "3a", "5d", "9a", "ab", "ba", "db"} {
		want = append(want, model.GPU{PCIAddress: "0000:" + b + ":00.0", Model: "H100", MemoryMiB: 81920, NUMA: i / 4, IOMMUGroup: 20 + i})
	}
	if !slices.Equal(n.GPUs, want) {
		t.Errorf("gpus:\n got %+v\nwant %+v", n.GPUs, want)
	}

	g0 := inv.GPUs[0]
	var members []string
	for _, m := range g0.GroupMembers {
		members = append(members, m.Address+" "+m.ClassName+" "+m.Driver)
	}
	wantMembers := []string{"0000:17:00.0 PCI bridge pcieport", "0000:18:00.0 3D controller nvidia", "0000:18:00.1 audio device snd_hda_intel"}
	if !slices.Equal(members, wantMembers) {
		t.Errorf("group members of GPU 0: %q, want %q", members, wantMembers)
	}
	if d := []string{inv.GPUs[6].Driver, inv.GPUs[7].Driver}; !slices.Equal(d, []string{"vfio-pci", ""}) {
		t.Errorf("drivers of GPUs 6, 7 = %q", d)
	}
	if !inv.IOMMU {
		t.Error("IOMMU should be on")
	}
}

func TestPassthroughRefusals(t *testing.T) {
	noIOMMU := dgxLike()
	noIOMMU.iommu = false
	tests := []struct {
		name    string
		host    fakeHost
		gpu     string
		reason  string
		drained string
	}{
		{
			name: "shares group with ethernet", host: sharedGroup(), gpu: "0000:3b:00.0",
			reason: "GPU 0000:3b:00.0 shares IOMMU group 12 with 0000:3a:00.0 (ethernet controller); passthrough would give the guest that device too",
		},
		{
			name: "iommu off", host: noIOMMU, gpu: "0000:5d:00.0",
			reason: "GPU 0000:5d:00.0 cannot be passed through: the IOMMU is off (no /sys/kernel/iommu_groups); enable VT-d/AMD-Vi in firmware and boot with intel_iommu=on iommu=pt",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv := scan(t, tc.host)
			i := slices.IndexFunc(inv.GPUs, func(g GPU) bool { return g.Address == tc.gpu })
			if i < 0 {
				t.Fatalf("GPU %s not found", tc.gpu)
			}
			g := inv.GPUs[i]
			if g.Passthrough || g.Reason != tc.reason {
				t.Errorf("passthrough=%v reason:\n got %q\nwant %q", g.Passthrough, g.Reason, tc.reason)
			}
			if d := inv.ToNode("n").GPUs[i].Drained; d != tc.reason {
				t.Errorf("model.GPU.Drained = %q", d)
			}
		})
	}
}

// TestGPUsSharingAGroup: GPUs whose IOMMU group holds only GPUs, their
// functions and bridges can be passed through (together); the node tells
// the scheduler which ones share.
func TestGPUsSharingAGroup(t *testing.T) {
	inv := scan(t, switchPair())
	node := inv.ToNode("n")
	want := map[string]bool{"0000:3b:00.0": true, "0000:3c:00.0": true, "0000:af:00.0": false}
	for i, g := range inv.GPUs {
		if !g.Passthrough || g.Reason != "" {
			t.Errorf("GPU %s: passthrough %v (%s), want allowed", g.Address, g.Passthrough, g.Reason)
		}
		if mg := node.GPUs[i]; mg.IOMMUShared != want[g.Address] || mg.Drained != "" {
			t.Errorf("node GPU %s: shared %v drained %q, want shared %v", mg.PCIAddress, mg.IOMMUShared, mg.Drained, want[g.Address])
		}
	}
	if len(inv.GPUs) != 3 {
		t.Fatalf("%d GPUs, want 3", len(inv.GPUs))
	}
}

func TestAddNVML(t *testing.T) {
	inv := scan(t, dgxLike())
	inv.AddNVML([]gpu.DeviceInfo{
		{UUID: "GPU-0", PCIBusID: "00000000:18:00.0", Model: "H100", MemoryMiB: 81559, Healthy: true},
		{UUID: "GPU-1", PCIBusID: "0000:2a:00.0", Model: "H100", MemoryMiB: 81559, HealthReason: "uncorrectable ECC errors: 1"},
		{UUID: "GPU-x", PCIBusID: "0000:99:00.0", Model: "H100", Healthy: true},
	})
	n := inv.ToNode("n")
	if g := n.GPUs[0]; g.UUID != "GPU-0" || g.MemoryMiB != 81559 || g.Drained != "" {
		t.Errorf("gpu0 = %+v", g)
	}
	if g := n.GPUs[1]; g.UUID != "GPU-1" || g.Drained != "uncorrectable ECC errors: 1" {
		t.Errorf("gpu1 = %+v", g)
	}
	if g := n.GPUs[6]; g.UUID != "" || g.MemoryMiB != 81920 {
		t.Errorf("vfio-bound gpu6 keeps table values: %+v", g)
	}
	if len(inv.Notes) != 1 || !strings.Contains(inv.Notes[0], "0000:99:00.0") {
		t.Errorf("notes = %q", inv.Notes)
	}
}

func TestScratch(t *testing.T) {
	tests := []struct {
		name      string
		statfs    func(string) (DiskSpace, error)
		wantMiB   int64
		wantTotal int64
		wantErr   bool
	}{
		{name: "fake 1 TiB, 600 GiB free", statfs: func(string) (DiskSpace, error) {
			return DiskSpace{TotalBytes: 1 << 40, AvailBytes: 600 << 30}, nil
		}, wantMiB: 600 << 10, wantTotal: 1 << 20},
		{name: "statfs fails", statfs: func(string) (DiskSpace, error) { return DiskSpace{}, os.ErrNotExist }, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv, err := Scan(Options{Root: laptop().build(), ScratchDir: "/srv/scratch", Statfs: tc.statfs})
			if tc.wantErr {
				if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "/srv/scratch") {
					t.Errorf("err = %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if inv.ScratchMiB != tc.wantMiB || inv.ScratchTotalMiB != tc.wantTotal || inv.ToNode("n").ScratchMiB != tc.wantMiB {
				t.Errorf("scratch = %d/%d MiB", inv.ScratchMiB, inv.ScratchTotalMiB)
			}
		})
	}
}

func TestScanErrors(t *testing.T) {
	tests := []struct {
		name    string
		breakFS func(m map[string]*fstest.MapFile)
		want    string
	}{
		{name: "no cpu dir", want: "cpu topology", breakFS: func(m map[string]*fstest.MapFile) {
			for k := range m {
				if strings.HasPrefix(k, cpuDir) {
					delete(m, k)
				}
			}
		}},
		{name: "online cpu without topology", want: "cpu0", breakFS: func(m map[string]*fstest.MapFile) {
			delete(m, cpuDir+"/cpu0/topology/core_id")
		}},
		{name: "no meminfo", want: "meminfo", breakFS: func(m map[string]*fstest.MapFile) { delete(m, "proc/meminfo") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := laptop().build()
			tc.breakFS(m)
			if _, err := Scan(Options{Root: m}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestParseList(t *testing.T) {
	tests := []struct {
		name, in string
		want     []int
		err      bool
	}{
		{name: "ranges", in: "0-3,8-9", want: []int{0, 1, 2, 3, 8, 9}},
		{name: "single", in: "5", want: []int{5}},
		{name: "empty", in: "", want: nil},
		{name: "newline", in: "0-1\n", want: []int{0, 1}},
		{name: "backwards", in: "3-1", err: true},
		{name: "junk", in: "a-b", err: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseList(tc.in)
			if (err != nil) != tc.err || !slices.Equal(got, tc.want) {
				t.Errorf("parseList(%q) = %v, %v", tc.in, got, err)
			}
		})
	}
}

// TestRealHost reads this machine's /sys and /proc.
func TestRealHost(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("inventory reads Linux sysfs")
	}
	inv, err := Scan(Options{ScratchDir: t.TempDir()})
	if err != nil {
		t.Fatalf("Scan of the real host: %v", err)
	}
	n := inv.ToNode("self")
	t.Logf("cores=%d numa=%d memory=%dMiB gpus=%d iommu=%v scratch=%dMiB notes=%q",
		len(n.Cores), len(n.NUMA), n.MemoryMiB(), len(n.GPUs), inv.IOMMU, n.ScratchMiB, inv.Notes)
	if len(n.Cores) == 0 || n.MemoryMiB() <= 0 || n.ScratchMiB <= 0 {
		t.Errorf("implausible inventory: %d cores, %d MiB, %d MiB scratch", len(n.Cores), n.MemoryMiB(), n.ScratchMiB)
	}
	if len(n.Cores) != runtime.NumCPU() {
		t.Logf("note: %d online cores, runtime.NumCPU()=%d (CPU affinity may differ)", len(n.Cores), runtime.NumCPU())
	}
	for _, g := range inv.GPUs {
		t.Logf("gpu %s model=%s numa=%d group=%d driver=%q passthrough=%v %s", g.Address, g.Model, g.NUMA, g.IOMMUGroup, g.Driver, g.Passthrough, g.Reason)
	}
}
