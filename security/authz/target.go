package authz

import (
	"fmt"
	"strings"

	"vhpc/api"
)

// Target is what a request acts on, as far as the checks care. It is read
// through the generated getters, so new request types that reuse the
// field names (id, node, alloc_id, ref, department, user) need no change
// here.
type Target struct {
	JobID      uint64
	Node       string
	AllocID    string
	ImageRef   string
	Department string
	User       string
	Member     string
}

// TargetOf reads the target of a request message.
func TargetOf(msg any) Target {
	var t Target
	if m, ok := msg.(interface{ GetId() uint64 }); ok {
		t.JobID = m.GetId()
	}
	if m, ok := msg.(interface{ GetJob() uint64 }); ok && t.JobID == 0 {
		t.JobID = m.GetJob()
	}
	switch m := msg.(type) {
	case interface{ GetNode() string }:
		t.Node = m.GetNode()
	case interface{ GetNode() *api.Node }:
		t.Node = m.GetNode().GetName()
	}
	if m, ok := msg.(interface{ GetAllocId() string }); ok {
		t.AllocID = m.GetAllocId()
	}
	if m, ok := msg.(interface{ GetRef() string }); ok {
		t.ImageRef = m.GetRef()
		if dept, _, ok := strings.Cut(t.ImageRef, "/"); ok {
			t.Department = dept
		}
	}
	if m, ok := msg.(interface{ GetDepartment() string }); ok && t.Department == "" {
		t.Department = m.GetDepartment()
	}
	if m, ok := msg.(interface{ GetUser() string }); ok {
		t.User = m.GetUser()
	}
	if m, ok := msg.(*api.Member); ok {
		t.Member = m.GetId()
	}
	return t
}

// String is a short description for logs and the audit log ("job 42",
// "alloc a1 on node07", "image chemistry/sim:1").
func (t Target) String() string {
	var parts []string
	if t.JobID != 0 {
		parts = append(parts, fmt.Sprintf("job %d", t.JobID))
	}
	if t.AllocID != "" {
		parts = append(parts, "alloc "+t.AllocID)
	}
	if t.Node != "" {
		parts = append(parts, "node "+t.Node)
	}
	if t.ImageRef != "" {
		parts = append(parts, "image "+t.ImageRef)
	} else if t.Department != "" {
		parts = append(parts, "department "+t.Department)
	}
	if t.Member != "" {
		parts = append(parts, "member "+t.Member)
	}
	if t.User != "" {
		parts = append(parts, "user "+t.User)
	}
	return strings.Join(parts, ", ")
}
