// Package gpu is the node agent's view of the NVIDIA GPUs that the host
// driver can see: what they are (Devices), how they are doing (Sample), and
// what went wrong (Events, XIDs). The real implementation (NVML) loads
// libnvidia-ml.so.1 at run time through go-nvml; a host without the driver
// gets ErrNoNVML from Open, never a crash.
//
// GPUs bound to vfio-pci and passed through to a guest are invisible to the
// host driver; their samples come from hpc-guest instead (guestproto's
// GPUSample, turned into a Sample by gpumetrics.ParseGuestSample), so
// gpumetrics and the health logic treat both alike. hpc-guest itself never
// imports this package: it would link go-nvml and cgo into a binary that
// must be static.
//
// Imports: go-nvml only (no other vhpc package).
package gpu

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrNoNVML is wrapped by Open when the NVIDIA driver or its NVML library is
// missing or cannot be initialised. The agent reports it as an inventory
// state ("no NVIDIA driver/NVML on this host: ...") and carries on without
// host-side GPU metrics.
var ErrNoNVML = errors.New("no NVIDIA driver/NVML on this host")

// Source is what the node agent needs from the GPUs of its host. NVML
// implements it; tests use NVML over go-nvml's mock servers.
type Source interface {
	// Devices lists the GPUs the host driver sees now, ordered by index.
	Devices() ([]DeviceInfo, error)
	// Sample reads the current counters of every GPU the host driver sees.
	Sample() ([]Sample, error)
	// Events waits up to timeout for GPU events (XIDs) and returns those seen.
	Events(timeout time.Duration) ([]Event, error)
	// Shutdown releases the library; no other method may be called after it.
	Shutdown() error
}

// DeviceInfo is what one GPU is. Its PCIBusID ("0000:3b:00.0") is the key the
// inventory and the scheduler use.
type DeviceInfo struct {
	Index     int    // NVML index on this host
	UUID      string // "GPU-8c3f..."
	Name      string // as NVML reports it: "NVIDIA H100 80GB HBM3"
	Model     string // normalised, see ModelFromName: "H100"
	MemoryMiB int64
	PCIBusID  string // normalised, see NormalizePCIBusID
	// MIGEnabled is the current MIG mode. A GPU in MIG mode is not passed
	// through whole by vhpc.
	MIGEnabled bool
	// NVLinkLinks is the number of active NVLink links.
	NVLinkLinks int
	// NVLinkPeers are the PCI bus ids of the GPUs at the other end of an
	// active link, sorted, without duplicates. Links to an NVSwitch are
	// counted in NVLinkSwitch instead (every GPU on the switch is a peer).
	NVLinkPeers  []string
	NVLinkSwitch bool
	// Healthy is false when the GPU must not be used; HealthReason says why.
	Healthy      bool
	HealthReason string
}

// Sample is one reading of one GPU, from host NVML or converted from
// hpc-guest's samples (gpumetrics.ParseGuestSample). Fields that a device
// does not support are zero and the matching *OK flag is false.
type Sample struct {
	UUID string
	// PCIBusID is the GPU's address on the host. hpc-guest sees its own
	// (virtual) address; the agent rewrites it to the host's before use.
	PCIBusID string
	Model    string // as in DeviceInfo.Model
	Time     time.Time

	// Lost is true when the driver reports the GPU gone (fallen off the bus);
	// Err then says what NVML answered. All counters are zero.
	Lost bool
	Err  string

	UtilizationPct    float64 // 0..100, GPU busy over the last sample period
	MemoryUtilPct     float64 // 0..100, memory controller busy
	MemoryUsedBytes   uint64
	MemoryTotalBytes  uint64
	TemperatureC      float64
	PowerW            float64
	SMClockMHz        uint32
	MemClockMHz       uint32
	ThrottleReasons   uint64 // NVML clocks event reasons bitmask
	ECCOK             bool
	ECCCorrected      uint64 // volatile (since driver load)
	ECCUncorrected    uint64 // volatile (since driver load)
	XIDCount          uint64 // XID events seen by this source since it started
	PCIeRateOK        bool
	PCIeTxBytesPerSec float64
	PCIeRxBytesPerSec float64
	PCIeCountersOK    bool
	PCIeTxBytes       uint64 // cumulative since driver load
	PCIeRxBytes       uint64
	NVLinkOK          bool
	NVLinkTxBytes     uint64 // cumulative over all links
	NVLinkRxBytes     uint64
}

// Event is one GPU event, today an XID error reported by the driver.
type Event struct {
	UUID     string
	PCIBusID string
	XID      uint64
	Time     time.Time
}

// NormalizePCIBusID turns an NVML or sysfs PCI address ("00000000:3B:00.0",
// "0000:3b:00.0", "3b:00.0") into the form vhpc uses everywhere:
// four-digit domain, lower case ("0000:3b:00.0").
func NormalizePCIBusID(s string) (string, error) {
	s = strings.TrimSpace(strings.TrimRight(s, "\x00"))
	parts := strings.Split(s, ":")
	var dom, bus, devfn string
	switch len(parts) {
	case 3:
		dom, bus, devfn = parts[0], parts[1], parts[2]
	case 2:
		dom, bus, devfn = "0", parts[0], parts[1]
	default:
		return "", fmt.Errorf("pci address %q: want domain:bus:device.function", s)
	}
	dev, fn, ok := strings.Cut(devfn, ".")
	if !ok {
		return "", fmt.Errorf("pci address %q: want domain:bus:device.function", s)
	}
	d, err1 := strconv.ParseUint(dom, 16, 32)
	b, err2 := strconv.ParseUint(bus, 16, 8)
	v, err3 := strconv.ParseUint(dev, 16, 5)
	f, err4 := strconv.ParseUint(fn, 16, 3)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return "", fmt.Errorf("pci address %q: %w", s, err)
	}
	return fmt.Sprintf("%04x:%02x:%02x.%x", d, b, v, f), nil
}

// ModelFromName turns an NVML product name into the short model name users
// write in job.yaml (gpuModel) and the scheduler matches on:
// "NVIDIA H100 80GB HBM3" -> "H100", "NVIDIA A100-SXM4-80GB" -> "A100",
// "NVIDIA GeForce RTX 4090" -> "RTX4090", "NVIDIA RTX A6000" -> "A6000".
func ModelFromName(name string) string {
	f := strings.Fields(name)
	for len(f) > 0 {
		switch strings.ToLower(f[0]) {
		case "nvidia", "tesla", "geforce", "quadro":
			f = f[1:]
			continue
		}
		break
	}
	if len(f) == 0 {
		return strings.TrimSpace(name)
	}
	if strings.EqualFold(f[0], "RTX") && len(f) > 1 {
		next := strings.SplitN(f[1], "-", 2)[0]
		if next != "" && next[0] >= '0' && next[0] <= '9' {
			return "RTX" + next
		}
		return next
	}
	return strings.SplitN(f[0], "-", 2)[0]
}
