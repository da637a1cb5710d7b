package fsm

import (
	"encoding/json"
	"fmt"
	"time"

	"vhpc/scheduler/model"
)

// EntryType tags every Raft log entry vhpc writes. The numbers are part of
// the on-disk format: append new types at the end, never renumber or reuse
// one (entries_test.go pins them).
type EntryType uint8

// Log entry types.
const (
	EntrySubmitJobs   EntryType = 1
	EntryCancelJob    EntryType = 2
	EntryRegisterNode EntryType = 3
	EntryApplyPlan    EntryType = 4
	EntryUpdateAlloc  EntryType = 5
	EntrySetNodeState EntryType = 6
	EntrySetMember    EntryType = 7
	EntryGPUHealth    EntryType = 8
	EntryPutImage     EntryType = 9
	EntryRemoveImage  EntryType = 10
	EntryAppendOutput EntryType = 11
	// EntryExpireArtifacts marks finished jobs whose file sets the
	// leader deleted from the store after the retention period.
	EntryExpireArtifacts EntryType = 12
	// EntryPutUser adds, replaces or removes a user (users.go).
	EntryPutUser EntryType = 13
	// EntryStartAcceptance asks a node's agent for an acceptance run and
	// EntryAcceptanceResults records its results and verdicts
	// (acceptance.go).
	EntryStartAcceptance   EntryType = 14
	EntryAcceptanceResults EntryType = 15
)

// entryVersion is the payload encoding version written after the type byte.
const entryVersion uint8 = 1

// String names the entry type for logs and errors.
func (t EntryType) String() string {
	switch t {
	case EntrySubmitJobs:
		return "SubmitJobs"
	case EntryCancelJob:
		return "CancelJob"
	case EntryRegisterNode:
		return "RegisterNode"
	case EntryApplyPlan:
		return "ApplyPlan"
	case EntryUpdateAlloc:
		return "UpdateAlloc"
	case EntrySetNodeState:
		return "SetNodeState"
	case EntrySetMember:
		return "SetMember"
	case EntryGPUHealth:
		return "GPUHealth"
	case EntryPutImage:
		return "PutImage"
	case EntryRemoveImage:
		return "RemoveImage"
	case EntryAppendOutput:
		return "AppendOutput"
	case EntryExpireArtifacts:
		return "ExpireArtifacts"
	case EntryPutUser:
		return "PutUser"
	case EntryStartAcceptance:
		return "StartAcceptance"
	case EntryAcceptanceResults:
		return "AcceptanceResults"
	}
	return fmt.Sprintf("EntryType(%d)", uint8(t))
}

// SubmitJobs enqueues a batch of jobs. The leader batches concurrent
// submissions into one entry; each job's Token is checked for duplicates
// inside Apply, also against earlier jobs of the same batch.
type SubmitJobs struct {
	Time time.Time   `json:"time"`
	Jobs []model.Job `json:"jobs"`
}

// SubmitResult is Apply's answer for one job of a SubmitJobs entry.
type SubmitResult struct {
	ID        model.JobID `json:"id"`
	Duplicate bool        `json:"duplicate"`
}

// CancelJob cancels a job; running allocations are asked to stop.
type CancelJob struct {
	Time   time.Time   `json:"time"`
	ID     model.JobID `json:"id"`
	Reason string      `json:"reason"`
}

// RegisterNode adds or updates a node's inventory and marks it ready.
type RegisterNode struct {
	Time time.Time  `json:"time"`
	Node model.Node `json:"node"`
}

// ApplyPlan creates the allocations of the scheduler's starts. Apply checks
// each start against the current state and skips those that no longer fit.
type ApplyPlan struct {
	Time   time.Time     `json:"time"`
	Starts []model.Start `json:"starts"`
	// Preemptions stop running gangs for a job of a higher QOS (added in
	// stop 8; older entries have none).
	Preemptions []model.Preemption `json:"preemptions,omitempty"`
}

// PlanResult is Apply's answer for an ApplyPlan entry.
type PlanResult struct {
	Applied   int      `json:"applied"`
	Preempted int      `json:"preempted,omitempty"`
	Rejected  []string `json:"rejected,omitempty"`
}

// UpdateAlloc is an agent's report on one allocation.
type UpdateAlloc struct {
	Time        time.Time        `json:"time"`
	ID          model.AllocID    `json:"id"`
	Node        string           `json:"node"`
	Attempt     uint64           `json:"attempt"`
	State       model.AllocState `json:"state"`
	ExitCode    int              `json:"exitCode"`
	Reason      string           `json:"reason,omitempty"`
	BootSeconds float64          `json:"bootSeconds,omitempty"`
	RunSeconds  float64          `json:"runSeconds,omitempty"`
	GPUUsage    *model.GPUUsage  `json:"gpuUsage,omitempty"`
	// ImagePulled: the node pulled the job's image (see model.Alloc).
	ImagePulled bool `json:"imagePulled,omitempty"`
	// Outputs: what the node uploaded of the stageOut files (final
	// reports only; see model.Alloc).
	Outputs *model.Outputs `json:"outputs,omitempty"`
}

// SetNodeState drains, downs or readies a node. Downing a node marks its
// live allocations lost and requeues their jobs.
type SetNodeState struct {
	Time   time.Time       `json:"time"`
	Name   string          `json:"name"`
	State  model.NodeState `json:"state"`
	Reason string          `json:"reason"`
}

// SetMember records a cluster member's addresses (or forgets a removed
// member), so followers know where to forward requests.
type SetMember struct {
	ID       string `json:"id"`
	GRPCAddr string `json:"grpcAddr"`
	RaftAddr string `json:"raftAddr"`
	Remove   bool   `json:"remove,omitempty"`
}

// GPUHealth takes a GPU out of service (Reason set) or returns it (Reason
// empty). Taking it out stops the allocation using it; that allocation
// ends as lost, so its job is requeued per its retry policy.
type GPUHealth struct {
	Time   time.Time `json:"time"`
	Node   string    `json:"node"`
	PCI    string    `json:"pci"`
	Reason string    `json:"reason"`
}

// PutImage records a catalog tag, or moves an existing tag to another
// digest (Created is kept, Updated set). Token dedupes a retried put.
type PutImage struct {
	Time  time.Time   `json:"time"`
	Image model.Image `json:"image"`
	Token string      `json:"token,omitempty"`
}

// RemoveImage forgets a catalog tag ("department/name:tag"); refused
// (ErrConflict) while a queued or running job uses its digest. Token
// dedupes a retried remove. The registry's blobs are not touched.
type RemoveImage struct {
	Time  time.Time `json:"time"`
	Ref   string    `json:"ref"`
	Token string    `json:"token,omitempty"`
}

// ImageResult is Apply's answer for PutImage and RemoveImage: the record
// put or removed (nil for a duplicate remove), the digest the tag pointed at
// before ("" when new), and whether the token was seen before (nothing
// changed).
type ImageResult struct {
	Image     *model.Image `json:"image,omitempty"`
	Previous  string       `json:"previous,omitempty"`
	Duplicate bool         `json:"duplicate,omitempty"`
}

// AppendOutput adds a chunk of an allocation's output (PushLogs). Offset
// is where Data starts in the allocation's own output; see
// applyAppendOutput for overlaps, gaps and the cap.
type AppendOutput struct {
	Job     model.JobID   `json:"job"`
	Alloc   model.AllocID `json:"alloc"`
	Attempt uint64        `json:"attempt"`
	Offset  int64         `json:"offset"`
	Data    []byte        `json:"data,omitempty"`
}

// Encode frames a payload as a log entry: type byte, version byte, JSON.
func Encode(t EntryType, payload any) ([]byte, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("encode %s entry: %w", t, err)
	}
	return append([]byte{byte(t), entryVersion}, b...), nil
}

// decode splits a log entry into its type and JSON payload.
func decode(data []byte) (EntryType, []byte, error) {
	if len(data) < 2 {
		return 0, nil, fmt.Errorf("log entry of %d bytes is too short", len(data))
	}
	if data[1] != entryVersion {
		return 0, nil, fmt.Errorf("%s entry has version %d; this build reads version %d", EntryType(data[0]), data[1], entryVersion)
	}
	return EntryType(data[0]), data[2:], nil
}

// ExpireArtifacts records that the leader deleted the stored file sets
// (inputs and outputs) of these finished jobs after the retention period:
// each gets ArtifactsExpired = Time. Unknown or unfinished jobs, and jobs
// already marked, are left as they are.
type ExpireArtifacts struct {
	Time time.Time     `json:"time"`
	Jobs []model.JobID `json:"jobs"`
}
