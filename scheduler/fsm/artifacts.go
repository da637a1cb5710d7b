package fsm

import (
	"vhpc/scheduler/model"
	"vhpc/scheduler/state"
)

// applyExpireArtifacts marks the finished jobs of e whose artifacts the
// leader deleted; it returns how many it marked.
func applyExpireArtifacts(txn *state.Txn, e *ExpireArtifacts) any {
	n := 0
	for _, id := range e.Jobs {
		j := txn.Job(id)
		if j == nil || !j.State.Terminal() || !j.ArtifactsExpired.IsZero() {
			continue
		}
		c := j.Copy()
		c.ArtifactsExpired = e.Time
		txn.PutJob(c)
		n++
	}
	return n
}

// ArtifactsOf lists the file sets ("sha256:...") a job keeps in the store:
// its inputs and every allocation's outputs. The leader's retention loop
// and the quota count call it.
func ArtifactsOf(snap *state.Snapshot, j *model.Job) map[string]int64 {
	out := map[string]int64{}
	if j.Inputs != "" {
		out[j.Inputs] = j.InputBytes
	}
	for a := range snap.JobAllocs(j.ID) {
		if o := a.Outputs; o != nil && o.Digest != "" {
			out[o.Digest] = o.Bytes
		}
	}
	return out
}
