package core

import "vhpc/scheduler/model"

// imageNodes is the set of node indexes whose image cache holds j's image
// (Input.ImageNodes), built once per digest and cycle so that scoring a
// candidate is one bit test. It is nil when the job names no image or no
// known node holds it: then every node scores alike and placement is the
// one without locality. Called by the placement paths (tryStart, startAll,
// tryPreempt, Explain) before gangAt or earliest.
func (s *sched) imageNodes(j *model.Job) bitset {
	if j.ImageDigest == "" || len(s.in.ImageNodes) == 0 {
		return nil
	}
	if b, ok := s.imgNodes[j.ImageDigest]; ok {
		return b
	}
	var b bitset
	for _, name := range s.in.ImageNodes[j.ImageDigest] {
		if n, ok := s.cl.byName[name]; ok {
			if b == nil {
				b = newBitset(len(s.cl.nodes))
			}
			b.set(n)
		}
	}
	if s.imgNodes == nil {
		s.imgNodes = map[string]bitset{}
	}
	s.imgNodes[j.ImageDigest] = b
	return b
}
