package core

import (
	"fmt"

	"vhpc/scheduler/model"
)

// missReason says why r cannot be placed now on its partition's ready nodes,
// as a value for users (DESIGN contract 6): the first resource no node has
// enough of, with the largest amount free. Cached per shape until the plan
// changes.
func (s *sched) missReason(r *model.Request, key shapeKey) string {
	if mc, ok := s.miss[key]; ok && mc.gen == s.cl.gen {
		return mc.text
	}
	text := s.computeMiss(r, key.part)
	s.miss[key] = missCache{gen: s.cl.gen, text: text, wait: "waiting for resources: " + text}
	return text
}

// waitReason is "waiting for resources: " + missReason, cached alike.
func (s *sched) waitReason(r *model.Request, key shapeKey) string {
	s.missReason(r, key)
	return s.miss[key].wait
}

func (s *sched) computeMiss(r *model.Request, part string) string {
	want := max(r.Nodes, 1)
	var fit, gNode, gNUMA, cNode, cNUMA int
	var mem, huge, scratch int64
	for _, n := range s.partNodes(part) {
		ns := s.cl.nodes[n]
		f := &ns.now
		if quickFits(f, r) {
			if s.cl.pl.fits(ns.info, f, r) {
				fit++
			}
		}
		perNUMA := make([]int, len(ns.info.numaID))
		for i := range ns.info.gpus {
			if f.gpu.has(i) && ns.info.gpuMatches(i, r) {
				perNUMA[ns.info.gpus[i].numa]++
			}
		}
		g := 0
		for k, v := range perNUMA {
			g += v
			gNUMA = max(gNUMA, v)
			cNUMA = max(cNUMA, f.numaLog[k])
		}
		gNode, cNode = max(gNode, g), max(cNode, f.log)
		mem, huge, scratch = max(mem, f.regTot), max(huge, f.hugeTot), max(scratch, f.scratch)
	}
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
