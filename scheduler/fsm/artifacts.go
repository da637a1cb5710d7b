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

// StoredSet names one file set in the store: the repository that holds it
// ("" is the job's department's, jobdata.RepositoryName; outputs name the
// job's own) and its digest ("sha256:...").
type StoredSet struct {
	Repository, Digest string
}

// ArtifactsOf lists the file sets a job keeps in the store, with their
// sizes: its inputs and every allocation's outputs. The leader's
// retention loop and the quota count call it.
func ArtifactsOf(snap *state.Snapshot, j *model.Job) map[StoredSet]int64 {
	out := map[StoredSet]int64{}
	if j.Inputs != "" {
		out[StoredSet{Digest: j.Inputs}] = j.InputBytes
	}
	for a := range snap.JobAllocs(j.ID) {
		if o := a.Outputs; o != nil && o.Digest != "" {
			out[StoredSet{Repository: o.Repository, Digest: o.Digest}] = o.Bytes
		}
	}
	return out
}
