//go:build cgo

package gpu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// NVML is the Source backed by the NVIDIA driver's NVML library. It is safe
// for concurrent use, except that Shutdown must not race with other calls.
type NVML struct {
	lib nvml.Interface
	log *slog.Logger
	now func() time.Time

	mu         sync.Mutex
	xids       map[string]uint64 // XID events seen, by UUID
	links      map[string][]int  // active NVLink links, by UUID (fixed at boot)
	set        nvml.EventSet     // created by the first Events call
	registered map[string]bool   // UUIDs registered with set
}

var _ Source = (*NVML)(nil)

// Open loads libnvidia-ml.so.1 at run time and initialises NVML. On a host
// without the NVIDIA driver the error wraps ErrNoNVML; the agent reports it
// as a state. Called once by the agent at start; pair with Shutdown.
func Open(log *slog.Logger) (*NVML, error) {
	return New(nvml.New(), log)
}

// New initialises NVML through lib: the real library (nvml.New()) or a mock
// server such as go-nvml's mock/dgxh100 in tests. A failed Init, or a panic
// inside the binding, is returned as an error wrapping ErrNoNVML.
func New(lib nvml.Interface, log *slog.Logger) (n *NVML, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	defer func() {
		if r := recover(); r != nil {
			n, err = nil, fmt.Errorf("%w: nvml init panicked: %v", ErrNoNVML, r)
		}
	}()
	if ret := lib.Init(); ret != nvml.SUCCESS {
		return nil, fmt.Errorf("%w: nvml init: %s (is the nvidia driver loaded and libnvidia-ml.so.1 installed?)", ErrNoNVML, ret.Error())
	}
	return &NVML{
		lib:        lib,
		log:        log,
		now:        time.Now,
		xids:       map[string]uint64{},
		links:      map[string][]int{},
		registered: map[string]bool{},
	}, nil
}

// Shutdown frees the event set and shuts NVML down. The agent calls it once
// on exit.
func (n *NVML) Shutdown() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.set != nil {
		if ret := n.set.Free(); ret != nvml.SUCCESS {
			n.log.Warn("nvml event set free failed", "error", ret.Error())
		}
		n.set = nil
	}
	if ret := n.lib.Shutdown(); ret != nvml.SUCCESS {
		return fmt.Errorf("nvml shutdown: %w", ret)
	}
	return nil
}

// handles returns the device handles the driver sees now.
func (n *NVML) handles() ([]nvml.Device, error) {
	count, ret := n.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("nvml device count: %w", ret)
	}
	devs := make([]nvml.Device, 0, count)
	for i := range count {
		d, ret := n.lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			return nil, fmt.Errorf("nvml device %d handle: %w", i, ret)
		}
		devs = append(devs, d)
	}
	return devs, nil
}

// Devices lists the GPUs the host driver sees, by index. A device that
// answers some queries with errors is still listed, with Healthy false and
// the reason; only a failure to enumerate is an error.
func (n *NVML) Devices() ([]DeviceInfo, error) {
	devs, err := n.handles()
	if err != nil {
		return nil, err
	}
	out := make([]DeviceInfo, 0, len(devs))
	for i, d := range devs {
		out = append(out, n.describe(i, d))
	}
	return out, nil
}

func (n *NVML) describe(index int, d nvml.Device) DeviceInfo {
	info := DeviceInfo{Index: index, Healthy: true}
	var problems []error
	note := func(what string, ret nvml.Return) {
		if ret != nvml.SUCCESS && ret != nvml.ERROR_NOT_SUPPORTED {
			problems = append(problems, fmt.Errorf("%s: %w", what, ret))
		}
	}
	var ret nvml.Return
	info.UUID, ret = d.GetUUID()
	note("uuid", ret)
	info.Name, ret = d.GetName()
	note("name", ret)
	info.Model = ModelFromName(info.Name)
	mem, ret := d.GetMemoryInfo()
	note("memory", ret)
	info.MemoryMiB = int64(mem.Total >> 20)
	pci, ret := d.GetPciInfo()
	note("pci", ret)
	info.PCIBusID = busID(pci)
	if cur, _, ret := d.GetMigMode(); ret == nvml.SUCCESS {
		info.MIGEnabled = cur == nvml.DEVICE_MIG_ENABLE
	} else {
		note("mig mode", ret)
	}
	links := n.activeLinks(info.UUID, d)
	info.NVLinkLinks = len(links)
	for _, l := range links {
		if t, ret := d.GetNvLinkRemoteDeviceType(l); ret == nvml.SUCCESS && t == nvml.NVLINK_DEVICE_TYPE_SWITCH {
			info.NVLinkSwitch = true
			continue
		}
		rp, ret := d.GetNvLinkRemotePciInfo(l)
		if ret != nvml.SUCCESS {
			continue
		}
		if p := busID(rp); p != "" && !slices.Contains(info.NVLinkPeers, p) {
			info.NVLinkPeers = append(info.NVLinkPeers, p)
		}
	}
	slices.Sort(info.NVLinkPeers)
	if ue, ret := d.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC); ret == nvml.SUCCESS && ue > 0 {
		info.Healthy, info.HealthReason = false, fmt.Sprintf("uncorrectable ECC errors: %d", ue)
	}
	if err := errors.Join(problems...); err != nil {
		info.Healthy = false
		info.HealthReason = joinReason(info.HealthReason, "nvml: "+err.Error())
		n.log.Warn("gpu query failed", "gpu_index", index, "pci_bus_id", info.PCIBusID, "error", err)
	}
	return info
}

func joinReason(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// activeLinks returns (and caches per UUID) the NVLink links that are up.
func (n *NVML) activeLinks(uuid string, d nvml.Device) []int {
	n.mu.Lock()
	l, ok := n.links[uuid]
	n.mu.Unlock()
	if ok {
		return l
	}
	l = []int{}
	for link := range nvml.NVLINK_MAX_LINKS {
		st, ret := d.GetNvLinkState(link)
		if ret != nvml.SUCCESS {
			// NOT_SUPPORTED: no NVLink; INVALID_ARGUMENT: past the last link.
			if ret == nvml.ERROR_NOT_SUPPORTED || ret == nvml.ERROR_INVALID_ARGUMENT {
				break
			}
			continue
		}
		if st == nvml.FEATURE_ENABLED {
			l = append(l, link)
		}
	}
	if uuid != "" {
		n.mu.Lock()
		n.links[uuid] = l
		n.mu.Unlock()
	}
	return l
}

// Sample reads every GPU the host driver sees. A GPU the driver reports lost
// gets a Sample with Lost set; unsupported counters leave their *OK flag
// false. Only a failure to enumerate is an error.
func (n *NVML) Sample() ([]Sample, error) {
	devs, err := n.handles()
	if err != nil {
		return nil, err
	}
	out := make([]Sample, 0, len(devs))
	for _, d := range devs {
		out = append(out, n.sampleOne(d))
	}
	return out, nil
}

func (n *NVML) sampleOne(d nvml.Device) Sample {
	s := Sample{Time: n.now()}
	var lost nvml.Return = nvml.SUCCESS
	check := func(ret nvml.Return) bool {
		if ret == nvml.ERROR_GPU_IS_LOST {
			lost = ret
		}
		return ret == nvml.SUCCESS
	}
	if u, ret := d.GetUUID(); check(ret) {
		s.UUID = u
	}
	if p, ret := d.GetPciInfo(); check(ret) {
		s.PCIBusID = busID(p)
	}
	if name, ret := d.GetName(); check(ret) {
		s.Model = ModelFromName(name)
	}
	if u, ret := d.GetUtilizationRates(); check(ret) {
		s.UtilizationPct, s.MemoryUtilPct = float64(u.Gpu), float64(u.Memory)
	}
	if m, ret := d.GetMemoryInfo(); check(ret) {
		s.MemoryUsedBytes, s.MemoryTotalBytes = m.Used, m.Total
	}
	if t, ret := d.GetTemperature(nvml.TEMPERATURE_GPU); check(ret) {
		s.TemperatureC = float64(t)
	}
	if p, ret := d.GetPowerUsage(); check(ret) {
		s.PowerW = float64(p) / 1000
	}
	if c, ret := d.GetClockInfo(nvml.CLOCK_SM); check(ret) {
		s.SMClockMHz = c
	}
	if c, ret := d.GetClockInfo(nvml.CLOCK_MEM); check(ret) {
		s.MemClockMHz = c
	}
	if r, ret := d.GetCurrentClocksEventReasons(); check(ret) {
		s.ThrottleReasons = r
	} else if ret == nvml.ERROR_FUNCTION_NOT_FOUND {
		// Drivers before r535 only have the older name.
		if r, ret := d.GetCurrentClocksThrottleReasons(); check(ret) {
			s.ThrottleReasons = r
		}
	}
	ce, ret1 := d.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_CORRECTED, nvml.VOLATILE_ECC)
	ue, ret2 := d.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC)
	if check(ret1) && check(ret2) {
		s.ECCOK, s.ECCCorrected, s.ECCUncorrected = true, ce, ue
	}
	tx, ret1 := d.GetPcieThroughput(nvml.PCIE_UTIL_TX_BYTES)
	rx, ret2 := d.GetPcieThroughput(nvml.PCIE_UTIL_RX_BYTES)
	if check(ret1) && check(ret2) {
		// NVML reports KB/s (1 KB = 1024 bytes) over a 20 ms window.
		s.PCIeRateOK, s.PCIeTxBytesPerSec, s.PCIeRxBytesPerSec = true, float64(tx)*1024, float64(rx)*1024
	}
	n.counters(d, &s)
	if lost != nvml.SUCCESS {
		s = Sample{UUID: s.UUID, PCIBusID: s.PCIBusID, Model: s.Model, Time: s.Time, Lost: true, Err: lost.Error()}
	}
	n.mu.Lock()
	s.XIDCount = n.xids[s.UUID]
	n.mu.Unlock()
	return s
}

// counters reads the cumulative PCIe and NVLink byte counters through one
// field-values call, where the device supports them.
func (n *NVML) counters(d nvml.Device, s *Sample) {
	fields := []nvml.FieldValue{
		{FieldId: nvml.FI_DEV_PCIE_COUNT_TX_BYTES},
		{FieldId: nvml.FI_DEV_PCIE_COUNT_RX_BYTES},
	}
	links := n.activeLinks(s.UUID, d)
	for _, l := range links {
		fields = append(fields,
			nvml.FieldValue{FieldId: nvml.FI_DEV_NVLINK_THROUGHPUT_DATA_TX, ScopeId: uint32(l)},
			nvml.FieldValue{FieldId: nvml.FI_DEV_NVLINK_THROUGHPUT_DATA_RX, ScopeId: uint32(l)})
	}
	if ret := d.GetFieldValues(fields); ret != nvml.SUCCESS {
		return
	}
	if a, ok := fieldUint(fields[0]); ok {
		if b, ok := fieldUint(fields[1]); ok {
			s.PCIeCountersOK, s.PCIeTxBytes, s.PCIeRxBytes = true, a, b
		}
	}
	if len(links) == 0 {
		return
	}
	s.NVLinkOK = true
	for i := 2; i+1 < len(fields); i += 2 {
		tx, ok1 := fieldUint(fields[i])
		rx, ok2 := fieldUint(fields[i+1])
		if !ok1 || !ok2 {
			s.NVLinkOK, s.NVLinkTxBytes, s.NVLinkRxBytes = false, 0, 0
			return
		}
		// NVLink throughput fields count KiB.
		s.NVLinkTxBytes += tx << 10
		s.NVLinkRxBytes += rx << 10
	}
}

func fieldUint(f nvml.FieldValue) (uint64, bool) {
	if nvml.Return(f.NvmlReturn) != nvml.SUCCESS {
		return 0, false
	}
	switch nvml.ValueType(f.ValueType) {
	case nvml.VALUE_TYPE_UNSIGNED_LONG_LONG, nvml.VALUE_TYPE_SIGNED_LONG_LONG:
		return binary.NativeEndian.Uint64(f.Value[:]), true
	case nvml.VALUE_TYPE_UNSIGNED_INT, nvml.VALUE_TYPE_UNSIGNED_LONG, nvml.VALUE_TYPE_SIGNED_INT:
		return uint64(binary.NativeEndian.Uint32(f.Value[:4])), true
	}
	return 0, false
}

// Events waits up to timeout for XID events on any GPU and returns the ones
// that arrived (none on timeout). The first call registers every GPU; GPUs
// that appear later (a GPU given back by a guest) are registered on the next
// call. The agent calls it in a loop from one goroutine and feeds the result
// to EvaluateHealth; each XID also counts in Sample.XIDCount.
func (n *NVML) Events(timeout time.Duration) ([]Event, error) {
	set, err := n.register()
	if err != nil {
		return nil, err
	}
	var out []Event
	wait := uint32(max(timeout.Milliseconds(), 0))
	for {
		data, ret := set.Wait(wait)
		switch ret {
		case nvml.SUCCESS:
		case nvml.ERROR_TIMEOUT:
			return out, nil
		default:
			return out, fmt.Errorf("nvml event wait: %w", ret)
		}
		wait = 0 // drain what is queued, then return
		if data.EventType&nvml.EventTypeXidCriticalError == 0 || data.Device == nil {
			continue
		}
		ev := Event{XID: data.EventData, Time: n.now()}
		if u, ret := data.Device.GetUUID(); ret == nvml.SUCCESS {
			ev.UUID = u
		}
		if p, ret := data.Device.GetPciInfo(); ret == nvml.SUCCESS {
			ev.PCIBusID = busID(p)
		}
		n.mu.Lock()
		n.xids[ev.UUID]++
		n.mu.Unlock()
		meaning, critical := CriticalXID(ev.XID)
		n.log.Warn("gpu xid", "xid", ev.XID, "meaning", meaning, "critical", critical, "gpu_uuid", ev.UUID, "pci_bus_id", ev.PCIBusID)
		out = append(out, ev)
	}
}

// register creates the event set once and registers every GPU not yet in it
// for XID events.
func (n *NVML) register() (nvml.EventSet, error) {
	devs, err := n.handles()
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.set == nil {
		set, ret := n.lib.EventSetCreate()
		if ret != nvml.SUCCESS {
			return nil, fmt.Errorf("nvml event set create: %w", ret)
		}
		n.set = set
	}
	for _, d := range devs {
		uuid, ret := d.GetUUID()
		if ret != nvml.SUCCESS || n.registered[uuid] {
			continue
		}
		mask := uint64(nvml.EventTypeXidCriticalError)
		if sup, ret := d.GetSupportedEventTypes(); ret == nvml.SUCCESS {
			mask &= sup
		}
		if mask == 0 {
			n.log.Info("gpu does not report xid events", "gpu_uuid", uuid)
			n.registered[uuid] = true
			continue
		}
		if ret := d.RegisterEvents(mask, n.set); ret != nvml.SUCCESS {
			n.log.Warn("gpu xid event registration failed", "gpu_uuid", uuid, "error", ret.Error())
			continue
		}
		n.registered[uuid] = true
	}
	return n.set, nil
}

// busID extracts and normalises the PCI bus id NVML reports, or "".
func busID(p nvml.PciInfo) string {
	raw := cString(p.BusId[:])
	if raw == "" {
		raw = cString(p.BusIdLegacy[:])
	}
	if raw == "" {
		return ""
	}
	s, err := NormalizePCIBusID(raw)
	if err != nil {
		return raw
	}
	return s
}

func cString[T ~int8 | ~uint8](b []T) string {
	buf := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		buf = append(buf, byte(c))
	}
	return string(buf)
}
