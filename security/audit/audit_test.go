package audit_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"vhpc/api"
	"vhpc/security/audit"
	"vhpc/security/authz"
	"vhpc/security/pki"
	"vhpc/security/pki/pkitest"
)

func TestAppendRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 {
		if err := l.Append(audit.Record{Time: t0.Add(time.Duration(i) * time.Hour), Method: "/m", Outcome: audit.Allow}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %04o", st.Mode().Perm())
	}
	for _, tc := range []struct {
		name  string
		since time.Time
		want  int
	}{{"all", time.Time{}, 3}, {"since the second", t0.Add(time.Hour), 2}, {"after the last", t0.Add(5 * time.Hour), 0}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := audit.ReadFile(path, tc.since)
			if err != nil || len(got) != tc.want {
				t.Fatalf("got %d records, %v; want %d", len(got), err, tc.want)
			}
		})
	}
	// A torn last line is skipped; a bad line in the middle is an error.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"time":"2026-01-0`)
	f.Close()
	if got, err := audit.ReadFile(path, time.Time{}); err != nil || len(got) != 3 {
		t.Fatalf("torn tail: %d, %v", len(got), err)
	}
	if err := audit.Read(strings.NewReader("{}\nnot json\n{}\n"), time.Time{}, func(audit.Record) error { return nil }); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("bad middle line: %v", err)
	}
}

type facts struct{}

func (facts) JobOwner(context.Context, uint64) (string, string, error) { return "alice", "chem", nil }
func (facts) AllocNode(context.Context, string) (string, error)        { return "node07", nil }
func (facts) Membership(context.Context, string) (authz.Membership, error) {
	return authz.Membership{Departments: []string{"chem"}}, nil
}
func (facts) ImagePublic(context.Context, string) (bool, error) { return false, nil }

// TestInterceptor runs the audit and authz interceptors in their chain
// order on calls from verified peers and checks which calls are recorded
// and how.
func TestInterceptor(t *testing.T) {
	ca := pkitest.New(t)
	certs := map[string]*x509.Certificate{"": nil}
	for _, id := range []pki.Identity{{Role: pki.RoleOperator, Name: "olga"}, {Role: pki.RoleUser, Name: "alice"}} {
		certs[id.BaseName()] = ca.Write(pki.Request{Identity: id}).Cert
	}
	az, err := authz.New(ca.Reloader(""), facts{}, authz.Table())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	chain := func(base, method string, req any, fail error) error {
		var pcs []*x509.Certificate
		if c := certs[base]; c != nil {
			pcs = []*x509.Certificate{c}
		}
		ctx := peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{PeerCertificates: pcs}}})
		info := &grpc.UnaryServerInfo{FullMethod: method}
		_, err := l.Unary()(ctx, req, info, func(ctx context.Context, req any) (any, error) {
			return az.Unary()(ctx, req, info, func(context.Context, any) (any, error) { return nil, fail })
		})
		return err
	}
	for _, tc := range []struct {
		name, base, method string
		req                any
		fail               error
		want               *audit.Record // nil: not recorded
	}{
		{"operator adds a member", "operator-olga", "/vhpc.v1.ClusterService/AddMember", &api.AddMemberRequest{Id: "m2"}, nil,
			&audit.Record{Identity: "vhpc://operator/olga", Outcome: audit.Allow}},
		{"user adds a member", "user-alice", "/vhpc.v1.ClusterService/AddMember", &api.AddMemberRequest{Id: "m2"}, nil,
			&audit.Record{Identity: "vhpc://user/alice", Outcome: audit.Deny, Code: "PermissionDenied", Reason: "needs role operator"}},
		{"anonymous cancel", "", "/vhpc.v1.JobService/Cancel", &api.CancelJobRequest{Id: 4}, nil,
			&audit.Record{Outcome: audit.Deny, Code: "Unauthenticated", Reason: "no client certificate"}},
		{"cancel that fails", "user-alice", "/vhpc.v1.JobService/Cancel", &api.CancelJobRequest{Id: 4}, status.Error(codes.FailedPrecondition, "already ended"),
			&audit.Record{Identity: "vhpc://user/alice", Target: "job 4", Outcome: audit.Error, Code: "FailedPrecondition", Reason: "already ended"}},
		{"a read is not recorded", "user-alice", "/vhpc.v1.JobService/Get", &api.GetJobRequest{Id: 4}, nil, nil},
		{"a refused read is", "user-alice", "/vhpc.v1.ClusterService/SnapshotSave", &api.SnapshotSaveRequest{}, nil,
			&audit.Record{Identity: "vhpc://user/alice", Outcome: audit.Deny, Code: "PermissionDenied"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := audit.ReadFile(path, time.Time{})
			chain(tc.base, tc.method, tc.req, tc.fail)
			after, err := audit.ReadFile(path, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil {
				if len(after) != len(before) {
					t.Fatalf("recorded %+v", after[len(after)-1])
				}
				return
			}
			if len(after) != len(before)+1 {
				t.Fatalf("%d new records, want 1", len(after)-len(before))
			}
			got := after[len(after)-1]
			if got.Method != tc.method || got.Identity != tc.want.Identity || got.Outcome != tc.want.Outcome || got.Code != tc.want.Code ||
				!strings.Contains(got.Reason, tc.want.Reason) || (tc.want.Target != "" && got.Target != tc.want.Target) || got.Time.IsZero() {
				t.Fatalf("got %+v, want %+v", got, *tc.want)
			}
		})
	}
}

// TestConcurrentAppendsShareFsyncs: appends from many goroutines (group
// commit) all land, whole and once each.
func TestConcurrentAppendsShareFsyncs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const n, each = 16, 50
	var wg sync.WaitGroup
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := l.Append(audit.Record{Method: fmt.Sprintf("/m/%d-%d", g, i), Outcome: audit.Allow}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	recs, err := audit.ReadFile(path, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		seen[r.Method] = true
	}
	if len(recs) != n*each || len(seen) != n*each {
		t.Fatalf("%d records, %d distinct; want %d", len(recs), len(seen), n*each)
	}
}
