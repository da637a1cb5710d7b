package server

import (
	"reflect"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"vhpc/api"
	"vhpc/scheduler/state"
	"vhpc/security/audit"
	"vhpc/security/pki"
	"vhpc/security/pki/pkitest"
)

// secureCluster is n members serving mTLS with the ACL table, and the CA
// that issued their certificates and the callers'.
type secureCluster struct {
	ca      *pkitest.CA
	members []*testServer // leader first
}

func startSecureCluster(t *testing.T, n int) *secureCluster {
	t.Helper()
	ca := pkitest.New(t)
	members := startCluster(t, n, func(c *Config) { c.Security = &Security{TLS: ca.Server(c.ID)} })
	return &secureCluster{ca: ca, members: members}
}

// dial connects to member i as id (zero: a TLS client without a certificate).
func (c *secureCluster) dial(t *testing.T, i int, id pki.Identity) *grpc.ClientConn {
	t.Helper()
	base := ""
	if !id.IsZero() {
		c.ca.Write(pki.Request{Identity: id})
		base = id.BaseName()
	}
	conn, err := grpc.NewClient(c.members[i].GRPCAddr(), grpc.WithTransportCredentials(c.ca.Reloader(base).ClientCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func user(name string) pki.Identity { return pki.Identity{Role: pki.RoleUser, Name: name} }

var olga = pki.Identity{Role: pki.RoleOperator, Name: "olga"}

func wantCode(t *testing.T, what string, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("%s: got %v, want %s", what, err, code)
	}
}

func chemSpec(dept string) []byte {
	return []byte(helloSpec + "department: " + dept + "\n")
}

// TestSecureMemberTakesTheUserFromTheCredential: users and departments
// come from the replicated users table (added by an operator through a
// follower), a job's user from the certificate, and every refusal leaves
// the state as it was.
func TestSecureMemberTakesTheUserFromTheCredential(t *testing.T) {
	c := startSecureCluster(t, 3)
	ctx := ctxT(t)
	leader, follower := c.members[0], c.members[1]

	// An operator adds users through a follower (forwarded with olga's identity).
	op := api.NewAuthServiceClient(c.dial(t, 1, olga))
	for _, u := range []*api.PutUserRequest{
		{Name: "alice", Departments: []string{"chemistry"}},
		{Name: "bob", Departments: []string{"physics"}},
		{Name: "carol", AdminOf: []string{"chemistry"}},
	} {
		if _, err := op.PutUser(ctx, u); err != nil {
			t.Fatalf("put user %s: %v", u.Name, err)
		}
	}
	// A user may not add users.
	_, err := api.NewAuthServiceClient(c.dial(t, 0, user("alice"))).PutUser(ctx, &api.PutUserRequest{Name: "alice", AdminOf: []string{"chemistry"}})
	wantCode(t, "alice makes herself admin", err, codes.PermissionDenied)

	alice := api.NewJobServiceClient(c.dial(t, 1, user("alice"))) // through the follower
	res, err := alice.Submit(ctx, &api.SubmitRequest{Spec: chemSpec("chemistry"), ClientToken: "a1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.GetJob().GetUser(); got != "alice" {
		t.Fatalf("job user %q, want alice (from the credential)", got)
	}

	before := leader.fsm.Store().Snapshot().Dump()
	_, err = alice.Submit(ctx, &api.SubmitRequest{Spec: chemSpec("chemistry"), User: "bob", ClientToken: "a2"})
	wantCode(t, "alice submits as bob", err, codes.PermissionDenied)
	_, err = alice.Submit(ctx, &api.SubmitRequest{Spec: chemSpec("physics"), ClientToken: "a3"})
	wantCode(t, "alice submits to physics", err, codes.PermissionDenied)
	bob := api.NewJobServiceClient(c.dial(t, 0, user("bob")))
	_, err = bob.Cancel(ctx, &api.CancelJobRequest{Id: res.GetJobId()})
	wantCode(t, "bob cancels alice's job", err, codes.PermissionDenied)
	_, err = bob.Get(ctx, &api.GetJobRequest{Id: res.GetJobId()})
	wantCode(t, "bob reads alice's job", err, codes.PermissionDenied)
	anon := api.NewJobServiceClient(c.dial(t, 0, pki.Identity{}))
	_, err = anon.Submit(ctx, &api.SubmitRequest{Spec: chemSpec("chemistry"), ClientToken: "x"})
	wantCode(t, "anonymous submits", err, codes.Unauthenticated)
	plain, err := grpc.NewClient(leader.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err = api.NewJobServiceClient(plain).List(ctx, &api.ListJobsRequest{All: true}); err == nil {
		t.Fatal("a plaintext client listed jobs of a secure member")
	}
	waitApplied(t, follower.Server, leader.raft.AppliedIndex())
	after := leader.fsm.Store().Snapshot().Dump()
	if !reflect.DeepEqual(stripIndex(before), stripIndex(after)) {
		t.Fatal("refused calls changed the state")
	}

	// Lists show only what the caller may see.
	list := func(cl api.JobServiceClient) int {
		t.Helper()
		out, err := cl.List(ctx, &api.ListJobsRequest{All: true})
		if err != nil {
			t.Fatal(err)
		}
		return len(out.GetJobs())
	}
	carol := api.NewJobServiceClient(c.dial(t, 2, user("carol")))
	if n, m, k := list(alice), list(bob), list(carol); n != 1 || m != 0 || k != 1 {
		t.Fatalf("alice sees %d jobs, bob %d, carol (chemistry admin) %d; want 1, 0, 1", n, m, k)
	}
	// The department admin cancels alice's job.
	if _, err := carol.Cancel(ctx, &api.CancelJobRequest{Id: res.GetJobId()}); err != nil {
		t.Fatalf("carol cancels a chemistry job: %v", err)
	}

	// whoami, and the audit log of the leader (the forwarded submission
	// is recorded with the follower as via).
	who, err := api.NewAuthServiceClient(c.dial(t, 2, user("carol"))).WhoAmI(ctx, &api.WhoAmIRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if who.GetName() != "carol" || who.GetRole() != "user" || !reflect.DeepEqual(who.GetAdminOf(), []string{"chemistry"}) || who.GetNotAfter() == nil {
		t.Fatalf("whoami: %v", who)
	}
	recs, err := audit.ReadFile(leader.AuditLogPath(), before.UsageAt)
	if err != nil {
		t.Fatal(err)
	}
	var sawVia, sawDeny bool
	for _, r := range recs {
		if r.Method == "/vhpc.v1.JobService/Submit" && r.Name == "alice" && r.Via == "vhpc://server/"+follower.cfg.ID && r.Outcome == audit.Allow {
			sawVia = true
		}
		if r.Method == "/vhpc.v1.JobService/Cancel" && r.Name == "bob" && r.Outcome == audit.Deny {
			sawDeny = true
		}
	}
	if !sawVia || !sawDeny {
		t.Fatalf("audit log of the leader lacks the forwarded submission (%v) or bob's refused cancel (%v): %d records", sawVia, sawDeny, len(recs))
	}
}

func waitApplied(t *testing.T, s *Server, idx uint64) {
	t.Helper()
	for s.raft.AppliedIndex() < idx {
		select {
		case <-s.fsm.Changed():
		case <-ctxT(t).Done():
			t.Fatal("follower never caught up")
		}
	}
}

// stripIndex drops what changes without a user-visible effect (the log
// index: membership announcements, no-ops).
func stripIndex(d *state.Dump) *state.Dump {
	c := *d
	c.Index = 0
	return &c
}

func TestInsecureNeedsToBeAskedFor(t *testing.T) {
	_, err := New(Config{DataDir: t.TempDir(), GRPCAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0"})
	if err != ErrNoSecurity {
		t.Fatalf("New without Security or Insecure: %v, want ErrNoSecurity", err)
	}
}
