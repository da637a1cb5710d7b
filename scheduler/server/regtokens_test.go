package server

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vhpc/api"
	"vhpc/scheduler/model"
	"vhpc/security/authz"
	"vhpc/security/pki"
	"vhpc/security/regtoken"
)

func testIssuer(t *testing.T) (*regtoken.Issuer, *x509.CertPool) {
	t.Helper()
	iss, err := regtoken.Generate(regtoken.Config{})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(iss.Certificate())
	return iss, pool
}

// grants lists "repo:action" for every repository and action of a
// token's claims, checking the claims on the way.
func grants(t *testing.T, raw string, pool *x509.CertPool) []string {
	t.Helper()
	c, err := regtoken.Verify(raw, pool, regtoken.DefaultIssuer, regtoken.DefaultService, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range c.Access {
		for _, act := range a.Actions {
			out = append(out, a.Name+":"+act)
		}
	}
	return out
}

func TestAllocAccess(t *testing.T) {
	cases := []struct {
		name string
		job  model.Job
		want string
	}{
		{"built-in image", model.Job{ID: 7, Department: "physics"}, "vhpc-data/physics:pull vhpc-data/physics/job-7:pull vhpc-data/physics/job-7:push"},
		{"department image", model.Job{ID: 7, Department: "physics", ImageRef: "physics/sim:1", ImageDigest: "sha256:ab"},
			"vhpc-data/physics:pull vhpc-data/physics/job-7:pull vhpc-data/physics/job-7:push physics/sim:pull"},
		{"public image", model.Job{ID: 12, Department: "chemistry", ImageRef: "public/tiny:latest", ImageDigest: "sha256:ab"},
			"vhpc-data/chemistry:pull vhpc-data/chemistry/job-12:pull vhpc-data/chemistry/job-12:push public/tiny:pull"},
	}
	for _, tc := range cases {
		var got []string
		for _, a := range allocAccess(&tc.job) {
			for _, act := range a.Actions {
				got = append(got, a.Name+":"+act)
			}
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, got, tc.want)
		}
	}
}

// TestRegistryTokens: the agent of a live allocation gets its job's
// scopes; DataStore gives users their department's file sets, an image
// repository's push only to its admins and operators, and a job's
// outputs only to those who may see the job; agents get no token there;
// a master without a key issues none.
func TestRegistryTokens(t *testing.T) {
	iss, pool := testIssuer(t)
	ts := runMember(t, Config{ID: "t1", DataDir: t.TempDir(), RaftAddr: "127.0.0.1:0", ImageRegistry: "http://127.0.0.1:1", RegistryTokens: iss})
	ctx := ctxT(t)
	if err := ts.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	op := authz.WithIdentity(ctx, authz.Identity{Role: pki.RoleOperator, Name: "olga"})
	users := &authService{s: ts.Server}
	for _, u := range []*api.PutUserRequest{
		{Name: "alice", Departments: []string{"physics"}},
		{Name: "bob", Departments: []string{"physics"}},
		{Name: "carol", Departments: []string{"physics"}, AdminOf: []string{"physics"}},
	} {
		if _, err := users.PutUser(op, u); err != nil {
			t.Fatal(err)
		}
	}
	registerNode(t, ts, "n1", 4)
	al := submitAndPlace(t, ts.node, "n1", ts.jobs, "tokens", "department: physics\n"+helloSpec)
	tok, err := ts.node.RegistryToken(ctx, &api.RegistryTokenRequest{AllocId: al.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	own := fmt.Sprintf("vhpc-data/physics/job-%d", al.GetJob())
	if got, want := strings.Join(grants(t, tok.GetToken(), pool), " "), "vhpc-data/physics:pull "+own+":pull "+own+":push"; got != want {
		t.Errorf("allocation token grants %s, want %s", got, want)
	}
	bobs, err := ts.jobs.Submit(ctx, &api.SubmitRequest{ClientToken: "bobs", User: "bob", Spec: []byte("department: physics\n" + helloSpec)})
	if err != nil {
		t.Fatal(err)
	}
	bobsOut := fmt.Sprintf("vhpc-data/physics/job-%d", bobs.GetJobId())
	if d := time.Until(tok.GetExpires().AsTime()); d <= 0 || d > regtoken.DefaultTTL {
		t.Errorf("allocation token expires in %s", d)
	}
	if _, err := ts.node.RegistryToken(ctx, &api.RegistryTokenRequest{AllocId: "9.0.0.1"}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown allocation: %v", err)
	}

	js := &jobService{s: ts.Server}
	as := func(role pki.Role, name string) context.Context {
		return authz.WithIdentity(ctx, authz.Identity{Role: role, Name: name})
	}
	cases := []struct {
		name      string
		ctx       context.Context
		req       *api.DataStoreRequest
		code      codes.Code
		wantGrant string // "" : no token
	}{
		{"member", as(pki.RoleUser, "alice"), &api.DataStoreRequest{Department: "physics"}, codes.OK,
			"vhpc-data/physics:pull vhpc-data/physics:push"},
		{"member, image repository", as(pki.RoleUser, "alice"), &api.DataStoreRequest{Department: "physics", ImageRepository: "physics/sim"}, codes.OK,
			"vhpc-data/physics:pull vhpc-data/physics:push physics/sim:pull"},
		{"admin, image repository", as(pki.RoleUser, "carol"), &api.DataStoreRequest{Department: "physics", ImageRepository: "physics/sim"}, codes.OK,
			"vhpc-data/physics:pull vhpc-data/physics:push physics/sim:pull physics/sim:push"},
		{"operator, image repository", op, &api.DataStoreRequest{Department: "physics", ImageRepository: "physics/sim"}, codes.OK,
			"vhpc-data/physics:pull vhpc-data/physics:push physics/sim:pull physics/sim:push"},
		{"image repository of another department", as(pki.RoleUser, "carol"), &api.DataStoreRequest{Department: "physics", ImageRepository: "chemistry/sim"}, codes.InvalidArgument, ""},
		{"image repository with a tag", as(pki.RoleUser, "carol"), &api.DataStoreRequest{Department: "physics", ImageRepository: "physics/sim:1"}, codes.InvalidArgument, ""},
		{"agent", as(pki.RoleAgent, "n1"), &api.DataStoreRequest{}, codes.OK, ""},
		{"owner, job outputs", as(pki.RoleUser, "bob"), &api.DataStoreRequest{Department: "physics", Job: bobs.GetJobId()}, codes.OK,
			"vhpc-data/physics:pull vhpc-data/physics:push " + bobsOut + ":pull"},
		{"admin, job outputs", as(pki.RoleUser, "carol"), &api.DataStoreRequest{Department: "physics", Job: bobs.GetJobId()}, codes.OK,
			"vhpc-data/physics:pull vhpc-data/physics:push " + bobsOut + ":pull"},
		{"operator, job outputs", op, &api.DataStoreRequest{Department: "physics", Job: bobs.GetJobId()}, codes.OK,
			"vhpc-data/physics:pull vhpc-data/physics:push " + bobsOut + ":pull"},
		{"another member, job outputs", as(pki.RoleUser, "alice"), &api.DataStoreRequest{Department: "physics", Job: bobs.GetJobId()}, codes.PermissionDenied, ""},
		{"agent, job outputs", as(pki.RoleAgent, "n1"), &api.DataStoreRequest{Department: "physics", Job: bobs.GetJobId()}, codes.PermissionDenied, ""},
		{"job of another department", op, &api.DataStoreRequest{Department: "chemistry", Job: bobs.GetJobId()}, codes.InvalidArgument, ""},
		{"unknown job", op, &api.DataStoreRequest{Department: "physics", Job: 999}, codes.NotFound, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			info, err := js.DataStore(tc.ctx, tc.req)
			if status.Code(err) != tc.code {
				t.Fatalf("%v, want %s", err, tc.code)
			}
			if err != nil {
				return
			}
			if tc.wantGrant == "" {
				if info.GetRegistryToken() != "" {
					t.Fatal("a token")
				}
				return
			}
			if got := strings.Join(grants(t, info.GetRegistryToken(), pool), " "); got != tc.wantGrant {
				t.Fatalf("grants %s, want %s", got, tc.wantGrant)
			}
		})
	}

	open := runMember(t, Config{ID: "t2", DataDir: t.TempDir(), RaftAddr: "127.0.0.1:0", ImageRegistry: "http://127.0.0.1:1"})
	if err := open.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := open.node.RegistryToken(ctx, &api.RegistryTokenRequest{AllocId: al.GetId()}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("a master without a key: %v, want FailedPrecondition", err)
	}
	if info, err := (&jobService{s: open.Server}).DataStore(as(pki.RoleUser, "alice"), &api.DataStoreRequest{Department: "physics"}); err != nil || info.GetRegistryToken() != "" {
		t.Errorf("a master without a key: %v, token %q", err, info.GetRegistryToken())
	}
}
