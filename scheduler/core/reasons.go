package core

import (
	"fmt"
	"slices"

	"vhpc/scheduler/model"
)

// waitPrefix starts every resource-wait reason.
const waitPrefix = "waiting for resources: "

// lazyReason is a pending reason that needs the placement miss, filled in
// by fillLazy once the plan is complete (so "largest free" describes the
// cluster after this cycle's starts, and each shape is analysed once).
type lazyReason struct {
	id             model.JobID
	key            shapeKey
	prefix, suffix string
}

func (s *sched) fillLazy() {
	for _, lz := range s.lazy {
		s.missReason(&lz.key.req, lz.key)
		mc := s.miss[lz.key]
		if lz.prefix == waitPrefix && lz.suffix == "" {
			s.plan.Pending[lz.id] = mc.wait
		} else {
			s.plan.Pending[lz.id] = lz.prefix + mc.text + lz.suffix
		}
	}
}

// missReason says why r cannot be placed now on its partition's ready nodes,
// as a value for users (DESIGN contract 6): the first resource no node has
// enough of, with the largest amount free. Cached per shape until the plan
// changes.
func (s *sched) missReason(r *model.Request, key shapeKey) string {
	if mc, ok := s.miss[key]; ok && mc.gen == s.cl.gen {
		return mc.text
	}
	text := s.computeMiss(r, key.part)
	s.miss[key] = missCache{gen: s.cl.gen, text: text, wait: waitPrefix + text}
	return text
}

func (s *sched) computeMiss(r *model.Request, part string) string {
	var st missStats
	if p := s.cl.pool; p != nil {
		st = p.miss(s, r, part)
	} else {
		st = s.missStats(r, part)
	}
	return formatMiss(r, st)
}

// missStats are what computeMiss reads off the nodes free now: how many fit
// the request, and the largest free GPUs, cores, memory and scratch.
type missStats struct {
	fit, gNode, gNUMA, cNode, cNUMA int
	mem, huge, scratch              int64
}

// missStats gathers missStats over the partition's ready nodes.
func (s *sched) missStats(r *model.Request, part string) missStats {
	var fit, gNode, gNUMA, cNode, cNUMA int
	var mem, huge, scratch int64
	for _, n := range s.partNodes(part) {
		ns := s.cl.nodes[n]
		f := &ns.now
		if quickFits(f, r) && s.cl.pl.fits(ns.info, f, r) {
			fit++
		}
		if r.GPUs > 0 {
			s.perNUMA = slices.Grow(s.perNUMA[:0], len(ns.info.numaID))[:len(ns.info.numaID)]
			clear(s.perNUMA)
			for i := range ns.info.gpus {
				if f.gpu.has(i) && ns.info.gpuMatches(i, r) {
					s.perNUMA[ns.info.gpus[i].numa]++
				}
			}
			g := 0
			for _, v := range s.perNUMA {
				g += v
				gNUMA = max(gNUMA, v)
			}
			gNode = max(gNode, g)
		}
		for _, v := range f.numaLog {
			cNUMA = max(cNUMA, v)
		}
		cNode = max(cNode, f.log)
		mem, huge, scratch = max(mem, f.regTot), max(huge, f.hugeTot), max(scratch, f.scratch)
	}
	return missStats{fit, gNode, gNUMA, cNode, cNUMA, mem, huge, scratch}
}

// formatMiss says why r cannot be placed now, given st.
func formatMiss(r *model.Request, st missStats) string {
	want := max(r.Nodes, 1)
	fit, gNode, gNUMA, cNode, cNUMA := st.fit, st.gNode, st.gNUMA, st.cNode, st.cNUMA
	mem, huge, scratch := st.mem, st.huge, st.scratch
	local := !r.CrossNUMA
	switch {
	case fit >= want:
		return "free now, but held for higher-priority reserved jobs until after this job's walltime"
	case r.GPUs > 0 && gNode < r.GPUs:
		return fmt.Sprintf("needs %s per node; largest free: %d", gpuWords(r, r.GPUs), gNode)
	case r.GPUs > 0 && local && gNUMA < r.GPUs:
		return fmt.Sprintf("needs %s on one NUMA node; largest free: %d", gpuWords(r, r.GPUs), gNUMA)
	case cNode < r.CoresPerNode():
		return fmt.Sprintf("needs %d cores per node; largest free: %d", r.CoresPerNode(), cNode)
	case local && cNUMA < r.CoresPerNode():
		return fmt.Sprintf("needs %d cores on one NUMA node; largest free: %d", r.CoresPerNode(), cNUMA)
	case mem < r.MemoryMiB-r.HugepagesMiB:
		return fmt.Sprintf("needs %d MiB memory per node; largest free: %d", r.MemoryMiB-r.HugepagesMiB, mem)
	case huge < r.HugepagesMiB:
		return fmt.Sprintf("needs %d MiB hugepages per node; largest free: %d", r.HugepagesMiB, huge)
	case scratch < r.ScratchMiB:
		return fmt.Sprintf("needs %d MiB scratch per node; largest free: %d", r.ScratchMiB, scratch)
	case want > 1:
		return fmt.Sprintf("needs %d nodes with %s; free now: %d", want, describe(r), fit)
	}
	return fmt.Sprintf("no node has %s free at once on its NUMA nodes", describe(r))
}
