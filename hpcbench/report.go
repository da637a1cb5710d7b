// Package hpcbench is the floating-point harness's common part: the
// workload catalogue, the JSON report, the human table, timing and
// validation helpers. The CPU workloads live in hpcbench/cpubench, the CUDA
// ones in hpcbench/gpubench, the roofline picture in hpcbench/roofline.
package hpcbench

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Schema names the version of the JSON report below.
const Schema = "hpcbench/v1"

// Units a Result is reported in.
const (
	// UnitGFLOPS is billions of floating-point operations per second.
	UnitGFLOPS = "GFLOP/s"
	// UnitGBs is billions of bytes moved to or from memory per second.
	UnitGBs = "GB/s"
)

// Report is one run of hpcbench: what `hpcbench --json` prints and what
// `hpcbench --plot` reads.
type Report struct {
	Schema    string    `json:"schema"`
	Started   time.Time `json:"started"`
	Host      Host      `json:"host"`
	Device    Device    `json:"device"`
	Workloads []Result  `json:"workloads"`
}

// Host is the machine (or guest) the run happened on.
type Host struct {
	Hostname  string `json:"hostname"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go_version"`
}

// Device is what ran the workloads, and its theoretical peaks, each computed
// from the device's own attributes (see cuda.Peaks and cpubench.Peaks).
type Device struct {
	// Kind is "gpu" or "cpu".
	Kind string `json:"kind"`
	// Index is the CUDA device ordinal (GPU only).
	Index int    `json:"index"`
	Name  string `json:"name"`
	// ComputeCapability is "9.0" and so on (GPU only).
	ComputeCapability string `json:"compute_capability,omitempty"`
	// Units is the SM count of a GPU or the cores used on a CPU.
	Units int `json:"units"`
	// ClockMHz is the SM (or core) clock the peaks are computed at.
	ClockMHz float64 `json:"clock_mhz"`
	// MemClockMHz and BusWidthBits give the memory peak (GPU only).
	MemClockMHz  float64 `json:"mem_clock_mhz,omitempty"`
	BusWidthBits int     `json:"bus_width_bits,omitempty"`
	MemoryBytes  uint64  `json:"memory_bytes,omitempty"`
	Driver       string  `json:"driver,omitempty"`
	// PCIBusID is the GPU's PCI address ("0000:3b:00.0"; GPU only).
	PCIBusID string `json:"pci_bus_id,omitempty"`
	// Peaks; 0 means unknown (a CPU's memory bandwidth unless given).
	PeakFP32GFLOPS   float64 `json:"peak_fp32_gflops"`
	PeakFP64GFLOPS   float64 `json:"peak_fp64_gflops"`
	PeakTensorGFLOPS float64 `json:"peak_tensor_gflops"`
	PeakMemGBs       float64 `json:"peak_mem_gbs"`
	// PeakNote says how the peaks were computed.
	PeakNote string `json:"peak_note,omitempty"`
}

// Result is one workload's measurement.
type Result struct {
	// Name is the catalogue name (sgemm, stream-triad, ...).
	Name string `json:"name"`
	// Unit is UnitGFLOPS or UnitGBs; Value, Peak and VendorValue are in it.
	Unit  string  `json:"unit"`
	Value float64 `json:"value"`
	Peak  float64 `json:"peak"`
	// PercentOfPeak is 100*Value/Peak, 0 when Peak is unknown.
	PercentOfPeak float64 `json:"percent_of_peak"`
	// Vendor names the library timed side by side (cuBLAS, gonum, ...).
	Vendor      string  `json:"vendor,omitempty"`
	VendorValue float64 `json:"vendor_value"`
	// RatioToVendor is Value/VendorValue, 0 when there is no vendor column.
	RatioToVendor float64 `json:"ratio_to_vendor"`
	// Validated is true when our kernel matched the reference within
	// Tolerance on the validation size; MaxError is the largest error
	// relative to the reference's largest magnitude.
	Validated bool    `json:"validated"`
	MaxError  float64 `json:"max_error"`
	Tolerance float64 `json:"tolerance"`
	// VendorMaxError is the vendor call's error on the same check.
	VendorMaxError float64 `json:"vendor_max_error"`
	// Size is the timed problem ("4096x4096x4096", "134217728 doubles").
	Size string `json:"size"`
	// Seconds is the best time of one run of our kernel.
	Seconds       float64 `json:"seconds"`
	VendorSeconds float64 `json:"vendor_seconds,omitempty"`
	// Flops and Bytes are per run (bytes: the compulsory memory traffic);
	// Intensity is Flops/Bytes, where the workload sits on the roofline.
	Flops     float64 `json:"flops"`
	Bytes     float64 `json:"bytes"`
	Intensity float64 `json:"arithmetic_intensity"`
	// Telemetry is NVML sampled while the workload ran (GPU only).
	Telemetry *Telemetry `json:"telemetry,omitempty"`
	// Note is a caveat (CPU emulation of a tensor-core type, ...).
	Note string `json:"note,omitempty"`
	// Error is set when the workload could not run; the rest is then empty.
	Error string `json:"error,omitempty"`
}

// Telemetry is what NVML reported while one workload ran (GPU only):
// each quantity's minimum, mean and maximum over Samples readings. When
// nothing could be sampled (no NVML on the host, the GPU not found by its
// PCI address) NotSampled says why and the rest is empty.
type Telemetry struct {
	Samples     int    `json:"samples"`
	SMClockMHz  Stat   `json:"sm_clock_mhz"`
	MemClockMHz Stat   `json:"mem_clock_mhz"`
	PowerW      Stat   `json:"power_w"`
	TempC       Stat   `json:"temp_c"`
	NotSampled  string `json:"not_sampled,omitempty"`
}

// Stat is the minimum, mean and maximum of one sampled quantity.
type Stat struct {
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	Max  float64 `json:"max"`
}

// Finish fills the derived fields of r: percent of peak, ratio to vendor
// and arithmetic intensity.
func (r *Result) Finish() {
	if r.Peak > 0 {
		r.PercentOfPeak = 100 * r.Value / r.Peak
	}
	if r.VendorValue > 0 {
		r.RatioToVendor = r.Value / r.VendorValue
	}
	if r.Bytes > 0 {
		r.Intensity = r.Flops / r.Bytes
	}
}

// WriteJSON writes rep as indented JSON.
func WriteJSON(w io.Writer, rep *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// ReadJSON reads a report written by WriteJSON and checks its schema.
func ReadJSON(r io.Reader) (*Report, error) {
	var rep Report
	if err := json.NewDecoder(r).Decode(&rep); err != nil {
		return nil, fmt.Errorf("read report: %w", err)
	}
	if rep.Schema != Schema {
		return nil, fmt.Errorf("read report: schema %q, want %q", rep.Schema, Schema)
	}
	return &rep, nil
}
