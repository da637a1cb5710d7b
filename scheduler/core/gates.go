package core

import (
	"fmt"

	"vhpc/scheduler/model"
)

// depReason checks j's dependencies. It returns "" when they are met, a
// "dependency: waiting ..." reason while they may still be met, and a
// "dependency can never be satisfied: ..." reason when they cannot.
func (s *sched) depReason(j *model.Job) string {
	wait := ""
	for _, d := range j.DependsOn {
		for _, id := range d.Jobs {
			st, ended := s.in.Ended[id]
			if !ended {
				if live := s.jobs[id]; live != nil {
					if wait == "" {
						wait = fmt.Sprintf("dependency: waiting for job %d (%s)", id, live.State)
					}
					continue
				}
				return fmt.Sprintf("dependency can never be satisfied: job %d is unknown", id)
			}
			switch d.Kind {
			case model.AfterOK:
				if st != model.JobCompleted {
					return fmt.Sprintf("dependency can never be satisfied: job %d %s", id, endedWord(st))
				}
			case model.AfterNotOK:
				if st == model.JobCompleted {
					return fmt.Sprintf("dependency can never be satisfied: job %d completed successfully (afternotok)", id)
				}
			case model.AfterAny:
			default:
				return fmt.Sprintf("dependency can never be satisfied: unknown kind %q", d.Kind)
			}
		}
	}
	return wait
}

func endedWord(st model.JobState) string {
	switch st {
	case model.JobFailed:
		return "failed"
	case model.JobCancelled:
		return "was cancelled"
	case model.JobTimedOut:
		return "timed out"
	}
	return "ended " + string(st)
}

// staticReason reports what can never change by waiting: partition limits
// and requests no node of the partition could ever hold.
func (s *sched) staticReason(j *model.Job, key shapeKey) string {
	r := &j.Request
	part := key.part
	if p, ok := s.cfg.Partitions[part]; ok {
		if p.MaxWalltime > 0 && s.walltime(j) > p.MaxWalltime {
			return fmt.Sprintf("partition %s: walltime %s exceeds its limit %s; ask for less", part, s.walltime(j), p.MaxWalltime)
		}
		if p.MaxNodes > 0 && r.Nodes > p.MaxNodes {
			return fmt.Sprintf("partition %s: %d nodes exceeds its limit %d", part, r.Nodes, p.MaxNodes)
		}
	}
	if why, ok := s.ever[key]; ok {
		return why
	}
	why := s.everReason(r, part)
	s.ever[key] = why
	return why
}

// everReason checks that enough nodes of the partition could hold r when
// empty; nodes that are not ready count as "waiting", not "never".
func (s *sched) everReason(r *model.Request, part string) string {
	want := max(r.Nodes, 1)
	fitAll, fitReady := 0, 0
	if p := s.cl.pool; p != nil {
		fitAll, fitReady = p.fits(s, r, part)
	}
	for _, n := range s.cl.nodes {
		if s.cl.pool != nil || fitReady >= want {
			break
		}
		if part != "" && n.info.node.Partition != part {
			continue
		}
		if s.cl.pl.fits(n.info, &n.info.full, r) {
			fitAll++
			if n.info.ready {
				fitReady++
			}
		}
	}
	if fitReady >= want {
		return ""
	}
	where := "the cluster"
	if part != "" {
		where = "partition " + part
	}
	switch {
	case fitAll < want:
		return fmt.Sprintf("can never be placed: needs %d node(s) with %s; %s has %d that could ever hold it", want, describe(r), where, fitAll)
	case fitReady < want:
		return fmt.Sprintf("waiting for nodes: needs %d node(s) with %s; %d of those in %s are ready", want, describe(r), fitReady, where)
	}
	return ""
}

// quotaReason checks department and partition limits for one more start of j.
func (s *sched) quotaReason(j *model.Job) string {
	r := &j.Request
	n := max(r.Nodes, 1)
	cores, gpus := n*r.CoresPerNode(), n*r.GPUs
	lim, ok := s.cfg.Quotas[j.Department]
	if !ok {
		lim = s.cfg.DefaultQuota
	}
	if why := limitReason("department", j.Department, lim, s.dept[j.Department], cores, gpus); why != "" {
		return why
	}
	part := s.partition(j)
	if p, ok := s.cfg.Partitions[part]; ok {
		if why := limitReason("partition", part, p.Limits, s.part[part], cores, gpus); why != "" {
			return why
		}
	}
	if a := j.Array; a != nil && a.Parallel > 0 && s.tasksRun[j.ID] >= a.Parallel {
		return fmt.Sprintf("array parallel limit: %d of %d tasks running", s.tasksRun[j.ID], a.Parallel)
	}
	return ""
}

// limitReason checks one more start of cores and gpus against lim, given
// what the department or partition (kind, name) runs; the reason names it
// as "<kind> <name>" (built only when a limit is hit: it runs per try).
func limitReason(kind, name string, lim Limits, u *usageCount, cores, gpus int) string {
	if lim == (Limits{}) {
		return ""
	}
	who := kind + " " + name
	var cur usageCount
	if u != nil {
		cur = *u
	}
	switch {
	case lim.RunningJobs > 0 && cur.jobs+1 > lim.RunningJobs:
		return fmt.Sprintf("quota: %s runs %d of %d jobs allowed", who, cur.jobs, lim.RunningJobs)
	case lim.GPUs > 0 && cur.gpus+gpus > lim.GPUs:
		return fmt.Sprintf("quota: %s uses %d of %d GPUs; this job needs %d", who, cur.gpus, lim.GPUs, gpus)
	case lim.Cores > 0 && cur.cores+cores > lim.Cores:
		return fmt.Sprintf("quota: %s uses %d of %d cores; this job needs %d", who, cur.cores, lim.Cores, cores)
	}
	return ""
}

// describe renders a per-node request for reasons: "4 cores, 2 GPUs of
// model H100, 16384 MiB memory".
func describe(r *model.Request) string {
	s := fmt.Sprintf("%d cores", r.CoresPerNode())
	if r.GPUs > 0 {
		s += fmt.Sprintf(", %s", gpuWords(r, r.GPUs))
	}
	if r.MemoryMiB > 0 {
		s += fmt.Sprintf(", %d MiB memory", r.MemoryMiB)
	}
	if r.ScratchMiB > 0 {
		s += fmt.Sprintf(", %d MiB scratch", r.ScratchMiB)
	}
	return s
}

func gpuWords(r *model.Request, n int) string {
	s := fmt.Sprintf("%d GPUs", n)
	if n == 1 {
		s = "1 GPU"
	}
	if r.GPUModel != "" {
		s += " of model " + r.GPUModel
	}
	if r.GPUMemoryMiB > 0 {
		s += fmt.Sprintf(" with >= %d MiB", r.GPUMemoryMiB)
	}
	return s
}
