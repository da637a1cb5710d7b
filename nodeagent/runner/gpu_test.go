package runner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"libvirt.org/go/libvirtxml"

	"vhpc/nodeagent/gpureset"
	"vhpc/nodeagent/inventory"
	"vhpc/nodeagent/libvirt"
	"vhpc/nodeagent/vm"
	"vhpc/scheduler/model"
)

const (
	tGPU   = "0000:3b:00.0"
	tAudio = "0000:3b:00.1"
	tPort  = "0000:3a:00.0" // the switch port above the GPU, in its group
	tNIC   = "0000:3c:00.0"
)

// gpuHost is a fixture sysfs: 6 CPUs (0-2 on NUMA node 0, 3-5 on node 1)
// and an H100 on node 1 whose IOMMU group 12 holds its audio function and
// a PCI bridge, plus, with nicInGroup, an Ethernet controller.
func gpuHost(iommu, nicInGroup bool) fstest.MapFS {
	m := fstest.MapFS{}
	file := func(name, data string) { m[name] = &fstest.MapFile{Data: []byte(data + "\n"), Mode: 0o444} }
	link := func(name, target string) {
		m[name] = &fstest.MapFile{Data: []byte(target), Mode: fs.ModeSymlink | 0o777}
	}
	file("sys/devices/system/cpu/online", "0-5")
	for id := range 6 {
		dir := fmt.Sprintf("sys/devices/system/cpu/cpu%d/topology/", id)
		file(dir+"core_id", fmt.Sprint(id%3))
		file(dir+"physical_package_id", fmt.Sprint(id/3))
		file(dir+"thread_siblings_list", fmt.Sprint(id))
	}
	for n := range 2 {
		dir := fmt.Sprintf("sys/devices/system/node/node%d/", n)
		file(dir+"cpulist", fmt.Sprintf("%d-%d", 3*n, 3*n+2))
		file(dir+"meminfo", fmt.Sprintf("Node %d MemTotal:       16777216 kB", n))
	}
	type fn struct {
		addr   string
		vendor uint16
		class  uint32
		driver string
	}
	fns := []fn{{tGPU, 0x10de, 0x030200, "nvidia"}, {tAudio, 0x10de, 0x040300, "snd_hda_intel"}, {tPort, 0x8086, 0x060400, "pcieport"}}
	if nicInGroup {
		fns = append(fns, fn{tNIC, 0x8086, 0x020000, "igb"})
	}
	for _, f := range fns {
		dir := "sys/bus/pci/devices/" + f.addr + "/"
		file(dir+"vendor", fmt.Sprintf("0x%04x", f.vendor))
		file(dir+"device", "0x2330")
		file(dir+"class", fmt.Sprintf("0x%06x", f.class))
		file(dir+"numa_node", "1")
		link(dir+"driver", "../../../bus/pci/drivers/"+f.driver)
		if iommu {
			link(dir+"iommu_group", "../../../kernel/iommu_groups/12")
			m["sys/kernel/iommu_groups/12/devices/"+f.addr] = &fstest.MapFile{Mode: fs.ModeDir | 0o755}
		}
	}
	return m
}

// resolvedGPUs resolves the fixture's GPU as the agent would.
func resolvedGPUs(t *testing.T, host fs.FS) []vm.GPU {
	t.Helper()
	inv, err := inventory.Scan(inventory.Options{Root: host})
	if err != nil {
		t.Fatal(err)
	}
	g, err := ResolveGPUs(inv, []string{tGPU})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func gpuTask(alloc string, gpus []vm.GPU) Task {
	tk := fakeTask(alloc)
	tk.Placement = model.Placement{Cores: []int{4, 5}, NUMA: []int{1}, GPUs: []string{tGPU}, MemoryMiB: 1024}
	tk.GPUs = gpus
	return tk
}

// gpuRunner is fakeRunner on the fixture host, under KVM, with housekeeping
// cores on both nodes and a fake sysfs for the reset. The returned record
// says whether any sysfs write happened while the domain still existed.
func gpuRunner(t *testing.T, guestFn func(*libvirt.Fake, *libvirtxml.Domain), host fs.FS) (*Runner, *libvirt.Fake, *gpureset.Fake, *domRecord) {
	t.Helper()
	r, f := fakeRunner(t, nil)
	rec := &domRecord{}
	f.OnStart = func(d *libvirtxml.Domain) {
		rec.set(d)
		if guestFn != nil {
			guestFn(f, d)
		}
	}
	r.hv, r.hostFS = "kvm", host
	r.cfg.HousekeepingCores = []int{0, 3}
	sys := gpureset.NewFake(map[string]string{tGPU: "nvidia", tAudio: "snd_hda_intel"})
	sys.OnWrite = func(name, _ string) {
		if st, _ := f.State(context.Background(), "vhpc-t-9-0-0"); st != libvirt.StateAbsent {
			rec.mu.Lock()
			rec.earlyWrites = append(rec.earlyWrites, name)
			rec.mu.Unlock()
		}
	}
	if err := r.setPCI(sys); err != nil {
		t.Fatal(err)
	}
	return r, f, sys, rec
}

type domRecord struct {
	mu          sync.Mutex
	def         *libvirtxml.Domain
	earlyWrites []string
}

func (d *domRecord) set(x *libvirtxml.Domain) { d.mu.Lock(); d.def = x; d.mu.Unlock() }
func (d *domRecord) get() *libvirtxml.Domain  { d.mu.Lock(); defer d.mu.Unlock(); return d.def }

func hostdevAddrs(d *libvirtxml.Domain) []string {
	var out []string
	for _, h := range d.Devices.Hostdevs {
		a := h.SubsysPCI.Source.Address
		out = append(out, fmt.Sprintf("%04x:%02x:%02x.%x", *a.Domain, *a.Bus, *a.Slot, *a.Function))
	}
	return out
}

var resetWrites = []string{"bus/pci/devices/" + tGPU + "/reset=1", "bus/pci/devices/" + tAudio + "/reset=1"}

// TestRunGPU: a GPU task's domain passes the GPU and its audio function
// (not the bridge) on q35, pinned next to the GPU; whatever way the guest
// ends, both functions are reset, and only after the domain is gone.
func TestRunGPU(t *testing.T) {
	tests := []struct {
		name      string
		guest     func(*libvirt.Fake, *libvirtxml.Domain)
		failReset bool
		wantState model.AllocState
		wantErr   bool
	}{
		{name: "completed", guest: exitWith(0, ""), wantState: model.AllocCompleted},
		{name: "job failed", guest: exitWith(2, ""), wantState: model.AllocFailed},
		{name: "guest crashed", guest: func(f *libvirt.Fake, d *libvirtxml.Domain) { f.Stop(d.Name) }, wantState: model.AllocFailed},
		{name: "reset fails", guest: exitWith(0, ""), failReset: true, wantState: model.AllocFailed, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			host := gpuHost(true, false)
			r, _, sys, rec := gpuRunner(t, tc.guest, host)
			if tc.failReset {
				sys.Fail["bus/pci/devices/"+tGPU+"/reset"] = errors.New("device busy")
			}
			res, err := r.Run(context.Background(), gpuTask("9.0.0", resolvedGPUs(t, host)), nil)
			var ge *gpureset.Error
			if tc.wantErr != (err != nil) || (tc.wantErr && !errors.As(err, &ge)) || res.State != tc.wantState {
				t.Fatalf("res %+v err %v, want state %s, error %v", res, err, tc.wantState, tc.wantErr)
			}
			if tc.wantErr && (!slices.Equal(ge.Addresses, []string{tGPU}) || !strings.Contains(res.Reason, "device busy")) {
				t.Errorf("reset failure: %v, reason %q", ge.Addresses, res.Reason)
			}
			d := rec.get()
			if got := hostdevAddrs(d); !slices.Equal(got, []string{tGPU, tAudio}) {
				t.Errorf("hostdevs %v, want the GPU and its audio function", got)
			}
			if d.OS.Type.Machine != "q35" || d.NUMATune.Memory.Nodeset != "1" || d.CPUTune.EmulatorPin.CPUSet != "3" || d.IOThreads != 1 {
				t.Errorf("machine %s, numatune %s, emulatorpin %s, iothreads %d", d.OS.Type.Machine, d.NUMATune.Memory.Nodeset, d.CPUTune.EmulatorPin.CPUSet, d.IOThreads)
			}
			if c := d.CPU.Numa.Cell; len(c) != 1 || c[0].CPUs != "0-1" || c[0].Memory != 1024 {
				t.Errorf("guest NUMA %+v", c)
			}
			if w := sys.Writes(); tc.failReset && !slices.Equal(w, resetWrites[1:]) || !tc.failReset && !slices.Equal(w, resetWrites) {
				t.Errorf("sysfs writes %q", w)
			}
			if len(rec.earlyWrites) > 0 {
				t.Errorf("sysfs written while the domain existed: %v", rec.earlyWrites)
			}
		})
	}
}

// TestRunGPUCancelResets: cancelling a GPU task destroys the guest, then
// resets its GPU.
func TestRunGPUCancelResets(t *testing.T) {
	host := gpuHost(true, false)
	booted := make(chan struct{})
	r, _, sys, rec := gpuRunner(t, func(*libvirt.Fake, *libvirtxml.Domain) { close(booted) }, host)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-booted; cancel() }()
	res, err := r.Run(ctx, gpuTask("9.0.1", resolvedGPUs(t, host)), nil)
	if err != nil || res.State != model.AllocCancelled {
		t.Fatalf("res %+v err %v", res, err)
	}
	if !slices.Equal(sys.Writes(), resetWrites) || len(rec.earlyWrites) > 0 {
		t.Errorf("writes %q, early %q", sys.Writes(), rec.earlyWrites)
	}
}

// TestRunGPURejects: a GPU task the host cannot run as resolved is refused
// before any domain exists, and nothing is written to sysfs.
func TestRunGPURejects(t *testing.T) {
	tests := []struct {
		name string
		host fstest.MapFS
		mod  func(r *Runner, tk *Task)
		want string
	}{
		{"IOMMU off", gpuHost(false, false), nil, "IOMMU is off"},
		{"foreign device in the group", gpuHost(true, true), nil, "shares IOMMU group 12 with 0000:3c:00.0 (ethernet controller)"},
		{"group changed since resolving", gpuHost(true, false), func(_ *Runner, tk *Task) { tk.GPUs[0].Group = tk.GPUs[0].Group[:1] }, "changed since the task was resolved"},
		{"NUMA node changed", gpuHost(true, false), func(_ *Runner, tk *Task) { tk.GPUs[0].NUMA = 0 }, "changed since"},
		{"GPUs not resolved", gpuHost(true, false), func(_ *Runner, tk *Task) { tk.GPUs = nil }, "runner.ResolveGPUs"},
		{"GPU not in the placement", gpuHost(true, false), func(_ *Runner, tk *Task) { tk.Placement.GPUs = nil }, "runner.ResolveGPUs"},
		{"GPU not on the host", gpuHost(true, false), func(_ *Runner, tk *Task) {
			tk.GPUs[0].Address, tk.Placement.GPUs = "0000:5d:00.0", []string{"0000:5d:00.0"}
		}, "not an NVIDIA GPU on this host"},
		{"tcg", gpuHost(true, false), func(r *Runner, _ *Task) { r.hv, r.hvReason = "tcg", "forced" }, "needs KVM"},
		{"core not on the host", gpuHost(true, false), func(_ *Runner, tk *Task) { tk.Placement.Cores = []int{4, 9} }, "core 9"},
		{"partial hugepages", gpuHost(true, false), func(_ *Runner, tk *Task) { tk.Placement.Hugepages = 512 }, "entirely or not at all"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, f, sys, _ := gpuRunner(t, exitWith(0, ""), tc.host)
			tk := gpuTask("9.1.0", resolvedGPUs(t, gpuHost(true, false)))
			if tc.mod != nil {
				tc.mod(r, &tk)
			}
			res, err := r.Run(context.Background(), tk, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) || res.State != model.AllocFailed {
				t.Fatalf("err %v res %+v, want %q", err, res, tc.want)
			}
			if f.Starts("vhpc-t-9-0-0") != 0 || len(sys.Writes()) != 0 {
				t.Errorf("starts %d, writes %q", f.Starts("vhpc-t-9-0-0"), sys.Writes())
			}
		})
	}
}

// TestRunGPUStartFailureNoReset: a domain that never started never had the
// GPU, which may be another guest's: no reset.
func TestRunGPUStartFailureNoReset(t *testing.T) {
	host := gpuHost(true, false)
	r, f, sys, _ := gpuRunner(t, nil, host)
	f.FailStart = errors.New("vfio: group busy")
	if _, err := r.Run(context.Background(), gpuTask("9.0.3", resolvedGPUs(t, host)), nil); err == nil || !strings.Contains(err.Error(), "group busy") {
		t.Fatalf("err %v", err)
	}
	if len(sys.Writes()) != 0 {
		t.Errorf("writes %q", sys.Writes())
	}
}

// TestGPULessTaskTouchesNoSysfs: a GPU-less task reads no host sysfs (the
// fixture here cannot even be scanned), writes none, and keeps its domain
// as before: machine pc, no hostdevs, no NUMA, no iothread.
func TestGPULessTaskTouchesNoSysfs(t *testing.T) {
	r, _, sys, rec := gpuRunner(t, exitWith(0, ""), fstest.MapFS{})
	res, err := r.Run(context.Background(), fakeTask("9.0.4"), nil)
	if err != nil || res.State != model.AllocCompleted {
		t.Fatalf("res %+v err %v", res, err)
	}
	d := rec.get()
	if len(sys.Writes()) != 0 || d.OS.Type.Machine != "pc" || len(d.Devices.Hostdevs) != 0 || d.NUMATune != nil || d.IOThreads != 0 || d.CPUTune.EmulatorPin.CPUSet != "0,3" {
		t.Errorf("writes %q, machine %s, hostdevs %d, numatune %v, iothreads %d", sys.Writes(), d.OS.Type.Machine, len(d.Devices.Hostdevs), d.NUMATune, d.IOThreads)
	}
}

// TestAdoptAndRemoveGPU: after an agent restart, Adopt resets the GPU once
// the guest it collects is gone; Remove of a running GPU domain too.
func TestAdoptAndRemoveGPU(t *testing.T) {
	host := gpuHost(true, false)
	r, f, sys, rec := gpuRunner(t, nil, host)
	tk := gpuTask("9.0.5", resolvedGPUs(t, host))
	if _, err := r.start(context.Background(), tk, nil); err != nil {
		t.Fatal(err)
	}
	d, _ := f.XML(context.Background(), "vhpc-t-9-0-0")
	exitWith(0, "")(f, d)
	if res, err := r.Adopt(context.Background(), tk, nil); err != nil || res.State != model.AllocCompleted {
		t.Fatalf("adopt: %+v %v", res, err)
	}
	if !slices.Equal(sys.Writes(), resetWrites) {
		t.Errorf("after Adopt: writes %q", sys.Writes())
	}
	if _, err := r.start(context.Background(), tk, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Remove(context.Background(), tk); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sys.Writes(), append(slices.Clone(resetWrites), resetWrites...)) || len(rec.earlyWrites) > 0 {
		t.Errorf("after Remove: writes %q, early %q", sys.Writes(), rec.earlyWrites)
	}
}

func TestGPUReturnDriverConfig(t *testing.T) {
	r, _ := fakeRunner(t, nil)
	r.cfg.GPUReturnDriver = "nouveau"
	if err := r.setPCI(gpureset.NewFake(nil)); err == nil || !strings.Contains(err.Error(), "vfio-pci") {
		t.Fatalf("err %v", err)
	}
}
