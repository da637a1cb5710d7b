package server

import (
	"fmt"

	"vhpc/scheduler/model"
	"vhpc/scheduler/state"
)

// SetLocalAgentErr records why the agent that runs inside this process
// (`hpcd dev`) stopped; nil clears it. cmd/hpcd calls it when its agent
// ends after it had registered. From then on every pending job's reason
// and `hpcsub nodes` carry the error, so a user learns why nothing runs
// instead of seeing only "can never be placed".
func (s *Server) SetLocalAgentErr(err error) {
	s.mu.Lock()
	s.localAgentErr = err
	s.mu.Unlock()
}

// clusterNotice says what stops every job in the cluster, or "": the
// in-process agent failed, or no node has registered. The leader puts it
// in front of each pending reason; Nodes returns it beside the node list.
func (s *Server) clusterNotice(snap *state.Snapshot) string {
	s.mu.Lock()
	agentErr := s.localAgentErr
	s.mu.Unlock()
	nodes, ready := 0, 0
	for n := range snap.Nodes() {
		nodes++
		if n.State == model.NodeReady {
			ready++
		}
	}
	switch {
	case agentErr != nil && ready == 0:
		return fmt.Sprintf("the agent of this hpcd stopped, so no node can run jobs: %v", agentErr)
	case agentErr != nil:
		return fmt.Sprintf("the agent of this hpcd stopped (jobs still run on the %d other ready node(s)): %v", ready, agentErr)
	case nodes == 0:
		return "no node has registered with the master: start hpc-agent --master ADDR on each compute host (hpcd dev runs one itself unless --no-agent)"
	}
	return ""
}

// withNotice puts the cluster notice in front of every pending reason.
func withNotice(pending map[model.JobID]string, notice string) map[model.JobID]string {
	if notice == "" {
		return pending
	}
	for id, r := range pending {
		pending[id] = notice + "; " + r
	}
	return pending
}
