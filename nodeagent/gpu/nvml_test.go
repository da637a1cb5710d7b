//go:build cgo

package gpu

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
)

func openFake(t *testing.T) (*fakeBox, *NVML) {
	t.Helper()
	b := newFakeBox(t)
	n, err := New(b.srv, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := n.Shutdown(); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return b, n
}

func TestNVMLDevicesDGXH100(t *testing.T) {
	b, n := openFake(t)
	if ret, _ := b.srv.Devices[2].SetMigMode(nvml.DEVICE_MIG_ENABLE); ret != nvml.SUCCESS {
		t.Fatalf("SetMigMode: %v", ret)
	}
	devs, err := n.Devices()
	if err != nil {
		t.Fatalf("Devices: %v", err)
	}
	if len(devs) != 8 {
		t.Fatalf("got %d devices, want 8", len(devs))
	}
	for i, d := range devs {
		if d.Index != i || d.Model != "H100" || d.Name != "NVIDIA H100 80GB HBM3" || d.MemoryMiB != 81920 {
			t.Errorf("device %d: %+v", i, d)
		}
		if !strings.HasPrefix(d.UUID, "GPU-") || d.UUID != b.uuid(i) {
			t.Errorf("device %d uuid %q", i, d.UUID)
		}
		if !d.Healthy || d.HealthReason != "" {
			t.Errorf("device %d unhealthy: %q", i, d.HealthReason)
		}
		if d.MIGEnabled != (i == 2) {
			t.Errorf("device %d MIGEnabled=%v", i, d.MIGEnabled)
		}
		if !d.NVLinkSwitch {
			t.Errorf("device %d: want NVSwitch links", i)
		}
	}
	if got := devs[2].PCIBusID; got != "0000:3a:00.0" {
		t.Errorf("PCIBusID = %q, want 0000:3a:00.0 (normalised from 00000000:3A:00.0)", got)
	}
	if got := devs[0].NVLinkPeers; !slices.Equal(got, []string{"0000:2a:00.0"}) || devs[0].NVLinkLinks != 3 {
		t.Errorf("gpu0 peers %v links %d", got, devs[0].NVLinkLinks)
	}
	if got := devs[5].NVLinkPeers; len(got) != 0 || devs[5].NVLinkLinks != 2 {
		t.Errorf("gpu5 peers %v links %d", got, devs[5].NVLinkLinks)
	}
}

func TestNVMLSample(t *testing.T) {
	b, n := openFake(t)
	b.gpus[4].noCounters = true
	got, err := n.Sample()
	if err != nil {
		t.Fatalf("Sample: %v", err)
	}
	if len(got) != 8 {
		t.Fatalf("got %d samples", len(got))
	}
	s := got[3]
	want := Sample{
		UUID: b.uuid(3), PCIBusID: "0000:5d:00.0", Model: "H100", Time: s.Time,
		UtilizationPct: 30, MemoryUtilPct: 15,
		MemoryUsedBytes: 3 << 30, MemoryTotalBytes: 81920 << 20,
		TemperatureC: 43, PowerW: 103, SMClockMHz: 1980, MemClockMHz: 2619,
		ThrottleReasons: 1,
		ECCOK:           true, ECCCorrected: 3,
		PCIeRateOK: true, PCIeTxBytesPerSec: 1000 * 1024, PCIeRxBytesPerSec: 2000 * 1024,
		PCIeCountersOK: true, PCIeTxBytes: 1 << 20, PCIeRxBytes: 2 << 20,
		NVLinkOK: true, NVLinkTxBytes: 2 << 10, NVLinkRxBytes: 4 << 10,
	}
	if s != want {
		t.Errorf("sample 3:\n got %+v\nwant %+v", s, want)
	}
	if s.Time.IsZero() {
		t.Error("sample time is zero")
	}
	if g := got[4]; g.PCIeCountersOK || g.NVLinkOK || !g.PCIeRateOK {
		t.Errorf("gpu4 without field values: %+v", g)
	}
}

func TestNVMLXIDEventsDrain(t *testing.T) {
	b, n := openFake(t)
	devs, err := n.Devices()
	if err != nil {
		t.Fatal(err)
	}
	b.inject(3, 79)
	b.inject(5, 31) // page fault from a user's kernel: counted, not critical
	evs, err := n.Events(10 * time.Millisecond)
	if err != nil {
		t.Fatalf("Events: %v", err)
	}
	if len(evs) != 2 || evs[0].XID != 79 || evs[0].PCIBusID != "0000:5d:00.0" || evs[0].UUID != b.uuid(3) {
		t.Fatalf("events = %+v", evs)
	}
	b.gpus[6].mu.Lock()
	b.gpus[6].eccUncorrected = 2
	b.gpus[6].mu.Unlock()
	samples, err := n.Sample()
	if err != nil {
		t.Fatal(err)
	}
	if samples[3].XIDCount != 1 || samples[5].XIDCount != 1 || samples[0].XIDCount != 0 {
		t.Errorf("xid counts: %d %d %d", samples[3].XIDCount, samples[5].XIDCount, samples[0].XIDCount)
	}
	drains := EvaluateHealth(devs, samples, evs)
	want := []Drain{
		{UUID: b.uuid(3), PCIBusID: "0000:5d:00.0", Reason: "XID 79 (GPU has fallen off the bus)"},
		{UUID: b.uuid(6), PCIBusID: "0000:ba:00.0", Reason: "uncorrectable ECC errors: 2"},
	}
	if !slices.Equal(drains, want) {
		t.Errorf("drains:\n got %+v\nwant %+v", drains, want)
	}
	// Nothing queued: a timeout is no events and no error.
	if evs, err := n.Events(time.Millisecond); err != nil || len(evs) != 0 {
		t.Errorf("idle Events = %v, %v", evs, err)
	}
}

func TestNVMLLostGPU(t *testing.T) {
	b, n := openFake(t)
	devs, _ := n.Devices()
	b.gpus[7].lost = true
	samples, err := n.Sample()
	if err != nil {
		t.Fatal(err)
	}
	s := samples[7]
	if !s.Lost || s.UtilizationPct != 0 || s.PCIBusID != "0000:db:00.0" || !strings.Contains(s.Err, "LOST") {
		t.Errorf("lost sample: %+v", s)
	}
	d := EvaluateHealth(devs, samples, nil)
	if len(d) != 1 || d[0].PCIBusID != "0000:db:00.0" || !strings.Contains(d[0].Reason, "GPU lost") {
		t.Errorf("drains: %+v", d)
	}
}

func TestNewWithoutNVML(t *testing.T) {
	tests := []struct {
		name string
		ret  nvml.Return
	}{
		{"library missing", nvml.ERROR_LIBRARY_NOT_FOUND},
		{"driver not loaded", nvml.ERROR_DRIVER_NOT_LOADED},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := dgxh100.New()
			srv.InitFunc = func() nvml.Return { return tc.ret }
			_, err := New(srv, nil)
			if !errors.Is(err, ErrNoNVML) || !strings.Contains(err.Error(), tc.ret.Error()) {
				t.Errorf("err = %v, want ErrNoNVML with %s", err, tc.ret.Error())
			}
		})
	}
	t.Run("binding panics", func(t *testing.T) {
		srv := dgxh100.New()
		srv.InitFunc = nil // the mock panics on a nil func
		if _, err := New(srv, nil); !errors.Is(err, ErrNoNVML) {
			t.Errorf("err = %v, want ErrNoNVML", err)
		}
	})
}
