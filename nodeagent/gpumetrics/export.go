package gpumetrics

import (
	"cmp"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"vhpc/nodeagent/gpu"
)

var gpuLabels = []string{"node", "gpu_uuid", "pci_bus_id", "model"}

// descs are the metric descriptions; immutable after package init.
var (
	descUp          = prometheus.NewDesc("hpc_gpu_up", "1 when the GPU answered the last sample, 0 when the driver reports it lost.", gpuLabels, nil)
	descUtil        = prometheus.NewDesc("hpc_gpu_utilization_ratio", "Fraction of the last sample period the GPU was busy (0-1).", gpuLabels, nil)
	descMemUtil     = prometheus.NewDesc("hpc_gpu_memory_utilization_ratio", "Fraction of the last sample period the memory controller was busy (0-1).", gpuLabels, nil)
	descMemUsed     = prometheus.NewDesc("hpc_gpu_memory_used_bytes", "GPU memory in use.", gpuLabels, nil)
	descMemTotal    = prometheus.NewDesc("hpc_gpu_memory_total_bytes", "GPU memory in total.", gpuLabels, nil)
	descTemp        = prometheus.NewDesc("hpc_gpu_temperature_celsius", "GPU core temperature.", gpuLabels, nil)
	descPower       = prometheus.NewDesc("hpc_gpu_power_watts", "GPU power draw.", gpuLabels, nil)
	descSMClock     = prometheus.NewDesc("hpc_gpu_sm_clock_hertz", "SM clock.", gpuLabels, nil)
	descMemClock    = prometheus.NewDesc("hpc_gpu_memory_clock_hertz", "Memory clock.", gpuLabels, nil)
	descThrottle    = prometheus.NewDesc("hpc_gpu_throttle_reasons", "NVML clocks event reasons bitmask (0 = not throttled).", gpuLabels, nil)
	descECC         = prometheus.NewDesc("hpc_gpu_ecc_errors_total", "ECC errors since the driver loaded.", append(slices.Clone(gpuLabels), "type"), nil)
	descXID         = prometheus.NewDesc("hpc_gpu_xid_errors_total", "XID events seen since the sampling source started.", gpuLabels, nil)
	descPCIe        = prometheus.NewDesc("hpc_gpu_pcie_bytes_total", "PCIe bytes moved since the driver loaded.", append(slices.Clone(gpuLabels), "direction"), nil)
	descPCIeRate    = prometheus.NewDesc("hpc_gpu_pcie_throughput_bytes_per_second", "PCIe throughput over NVML's last 20 ms window.", append(slices.Clone(gpuLabels), "direction"), nil)
	descNVLink      = prometheus.NewDesc("hpc_gpu_nvlink_bytes_total", "NVLink data bytes over all links since the driver loaded.", append(slices.Clone(gpuLabels), "direction"), nil)
	descAlloc       = prometheus.NewDesc("hpc_gpu_allocation_info", "The job and department holding a GPU; 1 while it is held.", []string{"gpu_uuid", "job", "department"}, nil)
	descSampleError = prometheus.NewDesc("hpc_gpu_sample_errors_total", "Failed reads of the live (host NVML) GPU source.", []string{"node"}, nil)
)

// Describe sends every metric description the Collector may export.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descUtil, descMemUtil, descMemUsed, descMemTotal, descTemp, descPower,
		descSMClock, descMemClock, descThrottle, descECC, descXID, descPCIe, descPCIeRate, descNVLink, descAlloc, descSampleError} {
		ch <- d
	}
}

// Collect samples the live source, merges the fresh ingested samples (a GPU
// seen live is exported once, from the live sample) and sends the metrics.
// A failing live source is logged and counted in
// hpc_gpu_sample_errors_total; the ingested samples are still exported.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	type labelled struct {
		node string
		s    gpu.Sample
	}
	var all []labelled
	seen := map[gpuKey]bool{}
	var liveErr error
	if c.live != nil {
		samples, err := c.live.Sample()
		liveErr = err
		for _, s := range samples {
			seen[gpuKey{c.node, idOf(s)}] = true
			all = append(all, labelled{c.node, s})
		}
	}

	now := c.now()
	c.mu.Lock()
	if liveErr != nil {
		c.sampleErrors++
	}
	for k, in := range c.ingested {
		if now.Sub(in.received) > c.staleAfter {
			delete(c.ingested, k)
			continue
		}
		if !seen[k] {
			all = append(all, labelled{k.node, in.s})
		}
	}
	allocs := make(map[string]allocation, len(c.allocs))
	for u, a := range c.allocs {
		allocs[u] = a
	}
	errs := c.sampleErrors
	c.mu.Unlock()
	if liveErr != nil {
		c.log.Warn("gpu live sample failed", "node", c.node, "error", liveErr)
	}

	slices.SortFunc(all, func(a, b labelled) int {
		return cmp.Or(cmp.Compare(a.node, b.node), cmp.Compare(a.s.PCIBusID, b.s.PCIBusID), cmp.Compare(a.s.UUID, b.s.UUID))
	})
	for _, l := range all {
		exportSample(ch, l.node, l.s)
	}
	for u, a := range allocs {
		ch <- prometheus.MustNewConstMetric(descAlloc, prometheus.GaugeValue, 1, u, a.job, a.department)
	}
	if c.live != nil {
		ch <- prometheus.MustNewConstMetric(descSampleError, prometheus.CounterValue, float64(errs), c.node)
	}
}

func exportSample(ch chan<- prometheus.Metric, node string, s gpu.Sample) {
	lv := []string{node, s.UUID, s.PCIBusID, s.Model}
	gauge := func(d *prometheus.Desc, v float64, extra ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append(slices.Clone(lv), extra...)...)
	}
	counter := func(d *prometheus.Desc, v float64, extra ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, append(slices.Clone(lv), extra...)...)
	}
	if s.Lost {
		gauge(descUp, 0)
		counter(descXID, float64(s.XIDCount))
		return
	}
	gauge(descUp, 1)
	gauge(descUtil, s.UtilizationPct/100)
	gauge(descMemUtil, s.MemoryUtilPct/100)
	gauge(descMemUsed, float64(s.MemoryUsedBytes))
	gauge(descMemTotal, float64(s.MemoryTotalBytes))
	gauge(descTemp, s.TemperatureC)
	gauge(descPower, s.PowerW)
	gauge(descSMClock, float64(s.SMClockMHz)*1e6)
	gauge(descMemClock, float64(s.MemClockMHz)*1e6)
	gauge(descThrottle, float64(s.ThrottleReasons))
	if s.ECCOK {
		counter(descECC, float64(s.ECCCorrected), "corrected")
		counter(descECC, float64(s.ECCUncorrected), "uncorrected")
	}
	counter(descXID, float64(s.XIDCount))
	if s.PCIeCountersOK {
		counter(descPCIe, float64(s.PCIeRxBytes), "rx")
		counter(descPCIe, float64(s.PCIeTxBytes), "tx")
	}
	if s.PCIeRateOK {
		gauge(descPCIeRate, s.PCIeRxBytesPerSec, "rx")
		gauge(descPCIeRate, s.PCIeTxBytesPerSec, "tx")
	}
	if s.NVLinkOK {
		counter(descNVLink, float64(s.NVLinkRxBytes), "rx")
		counter(descNVLink, float64(s.NVLinkTxBytes), "tx")
	}
}
