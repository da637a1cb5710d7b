//go:build cgo

package gpu

import (
	"encoding/binary"
	"fmt"
	"sync"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

// dgxBuses are the GPU bus numbers of a real DGX H100.
var dgxBuses = []int{0x18, 0x2a, 0x3a, 0x5d, 0x9a, 0xab, 0xba, 0xdb}

// fakeGPU is the mutable state behind one mock device; tests change it to
// inject faults.
type fakeGPU struct {
	mu             sync.Mutex
	eccUncorrected uint64
	lost           bool
	noCounters     bool // GetFieldValues not supported
}

// fakeBox is go-nvml's dgxh100 mock server with the methods vhpc calls
// filled in, plus an event queue for XID injection.
type fakeBox struct {
	srv    *server.Server
	gpus   []*fakeGPU
	mu     sync.Mutex
	events []nvml.EventData
}

// inject queues an XID event for device i; the next Events call returns it.
func (b *fakeBox) inject(i int, xid uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.events = append(b.events, nvml.EventData{Device: b.srv.Devices[i], EventType: nvml.EventTypeXidCriticalError, EventData: xid})
}

func (b *fakeBox) uuid(i int) string { return b.srv.Devices[i].(*server.Device).UUID }

func newFakeBox(t *testing.T) *fakeBox {
	t.Helper()
	b := &fakeBox{srv: dgxh100.New()}
	b.srv.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) {
		return &mock.EventSet{
			FreeFunc: func() nvml.Return { return nvml.SUCCESS },
			WaitFunc: func(uint32) (nvml.EventData, nvml.Return) {
				b.mu.Lock()
				defer b.mu.Unlock()
				if len(b.events) == 0 {
					return nvml.EventData{}, nvml.ERROR_TIMEOUT
				}
				e := b.events[0]
				b.events = b.events[1:]
				return e, nvml.SUCCESS
			},
		}, nvml.SUCCESS
	}
	for i, nd := range b.srv.Devices {
		d := nd.(*server.Device)
		d.PciBusID = fmt.Sprintf("0000:%02x:00.0", dgxBuses[i])
		d.MemoryInfo.Used = uint64(i) << 30
		g := &fakeGPU{}
		b.gpus = append(b.gpus, g)
		lostOr := func(r nvml.Return) nvml.Return {
			g.mu.Lock()
			defer g.mu.Unlock()
			if g.lost {
				return nvml.ERROR_GPU_IS_LOST
			}
			return r
		}
		pciOf := func(bus int) nvml.PciInfo {
			var p nvml.PciInfo
			// NVML's own spelling: 8-digit domain, upper case.
			for j, c := range fmt.Sprintf("00000000:%02X:00.0", bus) {
				p.BusId[j] = int8(c)
			}
			p.Bus, p.PciDeviceId = uint32(bus), d.Config.PciDeviceId
			return p
		}
		d.GetPciInfoFunc = func() (nvml.PciInfo, nvml.Return) { return pciOf(dgxBuses[i]), nvml.SUCCESS }
		d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
			return nvml.Utilization{Gpu: uint32(10 * i), Memory: uint32(5 * i)}, lostOr(nvml.SUCCESS)
		}
		d.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return uint32(40 + i), lostOr(nvml.SUCCESS) }
		d.GetPowerUsageFunc = func() (uint32, nvml.Return) { return uint32(100000 + 1000*i), lostOr(nvml.SUCCESS) }
		d.GetClockInfoFunc = func(c nvml.ClockType) (uint32, nvml.Return) {
			if c == nvml.CLOCK_SM {
				return 1980, lostOr(nvml.SUCCESS)
			}
			return 2619, lostOr(nvml.SUCCESS)
		}
		d.GetCurrentClocksEventReasonsFunc = func() (uint64, nvml.Return) { return uint64(i % 2), lostOr(nvml.SUCCESS) }
		d.GetTotalEccErrorsFunc = func(t nvml.MemoryErrorType, _ nvml.EccCounterType) (uint64, nvml.Return) {
			g.mu.Lock()
			defer g.mu.Unlock()
			if t == nvml.MEMORY_ERROR_TYPE_CORRECTED {
				return uint64(i), nvml.SUCCESS
			}
			return g.eccUncorrected, nvml.SUCCESS
		}
		d.GetPcieThroughputFunc = func(c nvml.PcieUtilCounter) (uint32, nvml.Return) {
			if c == nvml.PCIE_UTIL_TX_BYTES {
				return 1000, lostOr(nvml.SUCCESS)
			}
			return 2000, lostOr(nvml.SUCCESS)
		}
		d.GetFieldValuesFunc = func(fv []nvml.FieldValue) nvml.Return {
			g.mu.Lock()
			defer g.mu.Unlock()
			if g.noCounters {
				return nvml.ERROR_NOT_SUPPORTED
			}
			for j := range fv {
				fv[j].ValueType = uint32(nvml.VALUE_TYPE_UNSIGNED_LONG_LONG)
				fv[j].NvmlReturn = uint32(nvml.SUCCESS)
				var v uint64
				switch fv[j].FieldId {
				case nvml.FI_DEV_PCIE_COUNT_TX_BYTES:
					v = 1 << 20
				case nvml.FI_DEV_PCIE_COUNT_RX_BYTES:
					v = 2 << 20
				case nvml.FI_DEV_NVLINK_THROUGHPUT_DATA_TX:
					v = 1 // KiB per link
				case nvml.FI_DEV_NVLINK_THROUGHPUT_DATA_RX:
					v = 2
				}
				binary.NativeEndian.PutUint64(fv[j].Value[:], v)
			}
			return nvml.SUCCESS
		}
		// GPUs 0 and 1 are wired to each other on link 0; every GPU has
		// links 1-2 to an NVSwitch; 3 links in all.
		d.GetNvLinkStateFunc = func(link int) (nvml.EnableState, nvml.Return) {
			if link >= 3 {
				return 0, nvml.ERROR_INVALID_ARGUMENT
			}
			if link == 0 && i > 1 {
				return nvml.FEATURE_DISABLED, nvml.SUCCESS
			}
			return nvml.FEATURE_ENABLED, nvml.SUCCESS
		}
		d.GetNvLinkRemoteDeviceTypeFunc = func(link int) (nvml.IntNvLinkDeviceType, nvml.Return) {
			if link == 0 {
				return nvml.NVLINK_DEVICE_TYPE_GPU, nvml.SUCCESS
			}
			return nvml.NVLINK_DEVICE_TYPE_SWITCH, nvml.SUCCESS
		}
		d.GetNvLinkRemotePciInfoFunc = func(link int) (nvml.PciInfo, nvml.Return) {
			return pciOf(dgxBuses[1-i]), nvml.SUCCESS
		}
		d.GetSupportedEventTypesFunc = func() (uint64, nvml.Return) {
			return nvml.EventTypeXidCriticalError | nvml.EventTypeDoubleBitEccError, nvml.SUCCESS
		}
		d.RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return { return nvml.SUCCESS }
	}
	return b
}
