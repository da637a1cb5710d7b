// Package authz decides, per RPC, whether the verified caller may make the
// call: one ACL table (method -> the roles allowed and the ownership check
// each role must pass), interceptors that apply it before the handler
// runs, and the Facts interface through which the checks ask the
// replicated state (job owners, department membership, allocation nodes).
package authz

import (
	"fmt"
	"sort"
	"strings"

	"vhpc/security/pki"
)

// Check is the ownership check a role must pass for an RPC, on top of
// holding the role.
type Check string

const (
	// Any: holding the role is enough.
	Any Check = "any"
	// Filtered: allowed; the handler shows only what the caller may see
	// (CanSeeJob, MayUseDepartment).
	Filtered Check = "filtered"
	// Self: the caller acts as itself; a user named in the body must be
	// the caller (the handler takes the user from the identity).
	Self Check = "self"
	// OwnJob: the job is the caller's, or of a department the caller
	// administers (Facts.JobOwner, Facts.Membership).
	OwnJob Check = "own-job"
	// DeptMember: the request's department is one of the caller's.
	DeptMember Check = "dept-member"
	// DeptAdmin: the caller administers the department of the request's
	// image ref (department/name:tag).
	DeptAdmin Check = "dept-admin"
	// DeptOrPublic: the image is of one of the caller's departments, or
	// public (Facts.ImagePublic).
	DeptOrPublic Check = "dept-or-public"
	// OwnNode: the request's node is the agent's own.
	OwnNode Check = "own-node"
	// OwnAlloc: the allocation (and the node, if named) is on the agent's
	// own node (Facts.AllocNode); checked for every message of a stream.
	OwnAlloc Check = "own-alloc"
	// OwnMember: the member id in the request is the server's own.
	OwnMember Check = "own-member"
)

// Rule is one row of the ACL table. A role missing from Allow may not call
// the method at all.
type Rule struct {
	// Method is the gRPC full method name, /vhpc.v1.JobService/Submit.
	Method string
	// Mutating: the call changes the replicated state; the audit log
	// records every such call (and every denial of any call).
	Mutating bool
	// Allow maps each permitted role to its check.
	Allow map[pki.Role]Check
}

// Roles lists the roles of r in pki.Roles order ("user or operator").
func (r Rule) Roles() []pki.Role {
	var out []pki.Role
	for _, role := range pki.Roles() {
		if _, ok := r.Allow[role]; ok {
			out = append(out, role)
		}
	}
	return out
}

const (
	jobSvc     = "/vhpc.v1.JobService/"
	nodeSvc    = "/vhpc.v1.NodeService/"
	imageSvc   = "/vhpc.v1.ImageService/"
	clusterSvc = "/vhpc.v1.ClusterService/"
	authSvc    = "/vhpc.v1.AuthService/"
)

type allow = map[pki.Role]Check

const (
	server   = pki.RoleServer
	operator = pki.RoleOperator
	user     = pki.RoleUser
	agent    = pki.RoleAgent
)

// Table returns the ACL table, one row per RPC of api/vhpc.proto and
// api/vhpc_auth.proto, sorted
// by method. It is built fresh on each call (callers may not share and
// modify it). security/README.md shows the same table (a test compares).
//
// Operators are cluster administrators: they may call every operator row
// without an ownership check. Servers appear only where a member calls as
// itself; a member forwarding a caller's request acts with that caller's
// identity (see ForwardContext).
func Table() []Rule {
	rows := []Rule{
		{jobSvc + "Submit", true, allow{user: Self}},
		{jobSvc + "Get", false, allow{user: OwnJob, operator: Any}},
		{jobSvc + "List", false, allow{user: Filtered, operator: Any}},
		{jobSvc + "Cancel", true, allow{user: OwnJob, operator: Any}},
		{jobSvc + "Watch", false, allow{user: OwnJob, operator: Any}},
		{jobSvc + "Logs", false, allow{user: OwnJob, operator: Any}},
		{jobSvc + "Nodes", false, allow{user: Any, operator: Any}},
		{jobSvc + "DataStore", false, allow{user: DeptMember, operator: Any, agent: Any}},

		{nodeSvc + "Register", true, allow{agent: OwnNode}},
		// Heartbeat renews a lease every few seconds: not audited when allowed.
		{nodeSvc + "Heartbeat", false, allow{agent: OwnNode}},
		{nodeSvc + "WatchAllocations", false, allow{agent: OwnNode}},
		{nodeSvc + "UpdateAllocation", true, allow{agent: OwnAlloc}},
		{nodeSvc + "PushLogs", true, allow{agent: OwnAlloc}},
		// A registry token for one allocation, only to the agent running it.
		{nodeSvc + "RegistryToken", false, allow{agent: OwnAlloc}},
		{nodeSvc + "SetGPUHealth", true, allow{agent: OwnNode, operator: Any}},
		// Operators start acceptance runs; the agent reports its own node's.
		{nodeSvc + "StartAcceptance", true, allow{operator: Any}},
		{nodeSvc + "ReportAcceptance", true, allow{agent: OwnNode}},

		{imageSvc + "Put", true, allow{user: DeptAdmin, operator: Any}},
		{imageSvc + "List", false, allow{user: Filtered, operator: Any, agent: Any}},
		{imageSvc + "Get", false, allow{user: DeptOrPublic, operator: Any, agent: Any}},
		{imageSvc + "Remove", true, allow{user: DeptAdmin, operator: Any}},

		{clusterSvc + "Status", false, allow{server: Any, operator: Any, user: Any, agent: Any}},
		{clusterSvc + "AddMember", true, allow{operator: Any}},
		{clusterSvc + "RemoveMember", true, allow{operator: Any}},
		{clusterSvc + "TransferLeadership", true, allow{operator: Any}},
		{clusterSvc + "SnapshotSave", false, allow{operator: Any}},
		{clusterSvc + "SnapshotRestore", true, allow{operator: Any}},
		{clusterSvc + "Announce", true, allow{server: OwnMember}},

		{authSvc + "WhoAmI", false, allow{server: Any, operator: Any, user: Any, agent: Any}},
		{authSvc + "PutUser", true, allow{operator: Any}},
		{authSvc + "RemoveUser", true, allow{operator: Any}},
		{authSvc + "ListUsers", false, allow{operator: Any}},
		{authSvc + "ReadAudit", false, allow{operator: Any}},
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Method < rows[j].Method })
	return rows
}

// Markdown renders the table as the Markdown table of security/README.md:
// one row per method, a column per role ("—" where the role is refused).
func Markdown(rows []Rule) string {
	var b strings.Builder
	b.WriteString("| method | mutating |")
	for _, r := range pki.Roles() {
		fmt.Fprintf(&b, " %s |", r)
	}
	b.WriteString("\n| --- | --- |" + strings.Repeat(" --- |", len(pki.Roles())) + "\n")
	for _, row := range rows {
		mut := "no"
		if row.Mutating {
			mut = "yes"
		}
		fmt.Fprintf(&b, "| `%s` | %s |", strings.TrimPrefix(row.Method, "/vhpc.v1."), mut)
		for _, r := range pki.Roles() {
			c, ok := row.Allow[r]
			if !ok {
				b.WriteString(" — |")
				continue
			}
			fmt.Fprintf(&b, " %s |", c)
		}
		b.WriteString("\n")
	}
	return b.String()
}
