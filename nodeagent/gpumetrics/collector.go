// Package gpumetrics exports GPU samples as Prometheus metrics and accounts
// GPU use per job. One Collector serves both kinds of samples a host has:
// live ones from host NVML (GPUs the host driver sees) and ones forwarded by
// hpc-guest for GPUs passed through to a guest (invisible to host NVML).
//
// The Collector is registered on a registry the caller owns; this package
// has no globals and never touches prometheus.DefaultRegisterer.
//
// Imports: nodeagent/gpu (Sample), guestproto (the guest's samples file),
// client_golang.
package gpumetrics

import (
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"vhpc/nodeagent/gpu"
)

// Sampler is the live, host-side source of samples; *gpu.NVML implements it.
type Sampler interface {
	Sample() ([]gpu.Sample, error)
}

var _ Sampler = (*gpu.NVML)(nil)

// Options tune a Collector. The zero value is usable.
type Options struct {
	// Live is sampled on every scrape; nil when the host has no NVML.
	Live Sampler
	// StaleAfter drops ingested samples not refreshed for this long (a guest
	// that stopped reporting, a job that ended). Default 2 minutes.
	StaleAfter time.Duration
	// Now is the clock used for staleness; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Collector is a prometheus.Collector for the GPUs of one node. The agent
// creates one, registers it, feeds guest samples with Ingest and tells it
// which job holds which GPU with SetAllocation / ClearAllocation. All
// methods are safe for concurrent use.
type Collector struct {
	node       string
	live       Sampler
	staleAfter time.Duration
	now        func() time.Time
	log        *slog.Logger

	mu           sync.Mutex
	ingested     map[gpuKey]ingested
	allocs       map[string]allocation // by GPU UUID
	sampleErrors uint64
}

var _ prometheus.Collector = (*Collector)(nil)

type gpuKey struct{ node, id string }

type ingested struct {
	s        gpu.Sample
	received time.Time
}

type allocation struct{ job, department string }

// New returns a Collector for the node named node (the label on live
// samples).
func New(node string, opts Options) *Collector {
	c := &Collector{
		node:       node,
		live:       opts.Live,
		staleAfter: opts.StaleAfter,
		now:        opts.Now,
		log:        opts.Logger,
		ingested:   map[gpuKey]ingested{},
		allocs:     map[string]allocation{},
	}
	if c.staleAfter <= 0 {
		c.staleAfter = 2 * time.Minute
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Ingest stores samples forwarded for node, typically by hpc-guest for the
// GPUs passed through to it. Samples must carry the host PCI address (the
// agent translates the guest's). A later sample of the same GPU replaces the
// earlier one; a GPU that is also seen live is exported from the live sample
// only.
func (c *Collector) Ingest(node string, samples []gpu.Sample) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range samples {
		c.ingested[gpuKey{node, idOf(s)}] = ingested{s: s, received: now}
	}
}

// Forget drops every ingested sample of node's GPU with the given UUID or
// PCI address, e.g. when the guest holding it is destroyed.
func (c *Collector) Forget(node, gpuID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.ingested, gpuKey{node, gpuID})
}

// SetAllocation records that job of department holds the GPU with uuid;
// it is exported as hpc_gpu_allocation_info until ClearAllocation.
func (c *Collector) SetAllocation(uuid, job, department string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.allocs[uuid] = allocation{job, department}
}

// ClearAllocation forgets the job that held the GPU with uuid.
func (c *Collector) ClearAllocation(uuid string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.allocs, uuid)
}

func idOf(s gpu.Sample) string {
	if s.UUID != "" {
		return s.UUID
	}
	return s.PCIBusID
}
