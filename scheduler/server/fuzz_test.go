package server

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"vhpc/api"
	"vhpc/security/authz"
	"vhpc/wire"
)

// fuzzMember is a one-member insecure leader for the request fuzzers.
func fuzzMember(f *testing.F) *testServer {
	f.Helper()
	ts := runMember(f, Config{ID: "m1", DataDir: f.TempDir(), RaftAddr: "127.0.0.1:0"})
	ctx, cancel := context.WithTimeout(context.Background(), 30e9)
	defer cancel()
	if err := ts.WaitReady(ctx); err != nil {
		f.Fatal(err)
	}
	return ts
}

// wantRefusal fails unless err is nil or a refusal with a code that tells
// the client what is wrong: a handler must never answer a request it
// decoded with Unknown or Internal (a bug), nor with Unavailable (clients
// retry it forever; on a lone leader nothing is unavailable).
func wantRefusal(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("%s: error %v (%T) is not a gRPC status", what, err, err)
	}
	switch st.Code() {
	case codes.Unknown, codes.Internal, codes.Unavailable, codes.DeadlineExceeded:
		t.Fatalf("%s: %s", what, st)
	}
}

// FuzzSubmit decodes arbitrary bytes as a SubmitRequest and passes it to
// the real Submit handler (as a dry run: everything Submit checks before
// it proposes, image resolution and the estimate included). It must never
// panic or fail with Unknown/Internal/Unavailable, and an accepted spec's
// canonical form is a fixpoint: submitted again it is accepted and comes
// back unchanged (parse, validate, marshal, parse). Seeds: the examples.
func FuzzSubmit(f *testing.F) {
	specs := [][]byte{[]byte(helloSpec), []byte(helloSpec + "department: chemistry\n"), []byte("name: x\n")}
	files, _ := filepath.Glob("../../examples/*.yaml")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			specs = append(specs, b)
		}
	}
	for _, s := range specs {
		b, err := proto.Marshal(&api.SubmitRequest{Spec: s, Filename: "job.yaml", ClientToken: "t1", User: "ada"})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	ts := fuzzMember(f)
	js := &jobService{s: ts.Server}
	f.Fuzz(func(t *testing.T, data []byte) {
		req := &api.SubmitRequest{}
		if proto.Unmarshal(data, req) != nil {
			return
		}
		req.DryRun = true
		ctx := context.Background()
		res, err := js.Submit(ctx, req)
		wantRefusal(t, "submit", err)
		if err != nil {
			return
		}
		again, err := js.Submit(ctx, &api.SubmitRequest{Spec: []byte(res.GetCanonicalSpec()), Filename: req.GetFilename(), User: req.GetUser(), DryRun: true})
		if err != nil {
			t.Fatalf("the canonical form of an accepted spec is refused: %v\n%s", err, res.GetCanonicalSpec())
		}
		if again.GetCanonicalSpec() != res.GetCanonicalSpec() {
			t.Fatalf("canonical form is not a fixpoint:\n%s\n---\n%s", res.GetCanonicalSpec(), again.GetCanonicalSpec())
		}
	})
}

// fuzzRequests are the request types FuzzRequests decodes, each with the
// real handler it is passed to. The selector byte picks one.
var fuzzRequests = []struct {
	name string
	msg  func() proto.Message
	call func(s *Server, ctx context.Context, m proto.Message) error
}{
	{"Register", func() proto.Message { return &api.RegisterRequest{} }, func(s *Server, ctx context.Context, m proto.Message) error {
		_, err := (&nodeService{s: s}).Register(ctx, m.(*api.RegisterRequest))
		return err
	}},
	{"Heartbeat", func() proto.Message { return &api.HeartbeatRequest{} }, func(s *Server, ctx context.Context, m proto.Message) error {
		_, err := (&nodeService{s: s}).Heartbeat(ctx, m.(*api.HeartbeatRequest))
		return err
	}},
	{"UpdateAllocation", func() proto.Message { return &api.UpdateAllocationRequest{} }, func(s *Server, ctx context.Context, m proto.Message) error {
		_, err := (&nodeService{s: s}).UpdateAllocation(ctx, m.(*api.UpdateAllocationRequest))
		return err
	}},
	{"SetGPUHealth", func() proto.Message { return &api.GPUHealthRequest{} }, func(s *Server, ctx context.Context, m proto.Message) error {
		_, err := (&nodeService{s: s}).SetGPUHealth(ctx, m.(*api.GPUHealthRequest))
		return err
	}},
	{"Cancel", func() proto.Message { return &api.CancelJobRequest{} }, func(s *Server, ctx context.Context, m proto.Message) error {
		_, err := (&jobService{s: s}).Cancel(ctx, m.(*api.CancelJobRequest))
		return err
	}},
	{"Get", func() proto.Message { return &api.GetJobRequest{} }, func(s *Server, ctx context.Context, m proto.Message) error {
		_, err := (&jobService{s: s}).Get(ctx, m.(*api.GetJobRequest))
		return err
	}},
	{"PutImage", func() proto.Message { return &api.PutImageRequest{} }, func(s *Server, ctx context.Context, m proto.Message) error {
		req := m.(*api.PutImageRequest)
		if req.GetKind() != "" && req.GetKind() != "image" {
			req.Kind = "image" // a dataset needs the store; none here
		}
		_, err := (&imageService{s: s}).Put(ctx, req)
		return err
	}},
	{"RemoveImage", func() proto.Message { return &api.RemoveImageRequest{} }, func(s *Server, ctx context.Context, m proto.Message) error {
		_, err := (&imageService{s: s}).Remove(ctx, m.(*api.RemoveImageRequest))
		return err
	}},
	{"PutUser", func() proto.Message { return &api.PutUserRequest{} }, func(s *Server, ctx context.Context, m proto.Message) error {
		_, err := (&authService{s: s}).PutUser(ctx, m.(*api.PutUserRequest))
		return err
	}},
	{"RemoveUser", func() proto.Message { return &api.RemoveUserRequest{} }, func(s *Server, ctx context.Context, m proto.Message) error {
		_, err := (&authService{s: s}).RemoveUser(ctx, m.(*api.RemoveUserRequest))
		return err
	}},
}

// FuzzRequests decodes arbitrary bytes as one of the requests agents,
// users and operators send (the first byte picks the type) and passes it
// to its real handler on a lone leader, which checks it and proposes it to
// Raft: whatever the handler lets through, the FSM must accept or refuse
// with a sentinel (NotFound, FailedPrecondition), never with a plain
// error (Unavailable: retried forever) or a panic. Also: the decoded
// request re-encodes to itself, authz.TargetOf reads it, and a node that
// Register accepts survives wire's round trip. Seeds: one valid request
// of each type against the member's state (a node, a job, an image).
func FuzzRequests(f *testing.F) {
	node := &api.Node{Name: "n1", Hypervisor: "tcg", ScratchMib: 10240,
		Cores: []*api.Core{{Id: 0}, {Id: 1, PhysicalCore: 1}}, Numa: []*api.NumaNode{{Id: 0, MemoryMib: 4096}},
		Gpus: []*api.Gpu{{PciAddress: "0000:17:00.0", Model: "H100", MemoryMib: 81920}}}
	digest := "sha256:" + string(make64('a'))
	seeds := []proto.Message{
		&api.RegisterRequest{Node: node},
		&api.HeartbeatRequest{Node: "n1", CachedImages: []string{digest}},
		&api.UpdateAllocationRequest{AllocId: "1.0.0.1", Node: "n1", Attempt: 1, State: "running", Outputs: digest, OutputsMissing: []string{"out/x"}},
		&api.GPUHealthRequest{Node: "n1", PciAddress: "0000:17:00.0", Reason: "xid 79"},
		&api.CancelJobRequest{Id: 1},
		&api.GetJobRequest{Id: 1},
		&api.PutImageRequest{Ref: "physics/sim:1", Digest: digest, ClientToken: "p", Packages: []string{"b", "a", "a"}},
		&api.RemoveImageRequest{Ref: "physics/sim:1", ClientToken: "r"},
		&api.PutUserRequest{Name: "ada", Departments: []string{"physics"}, AdminOf: []string{"physics"}},
		&api.RemoveUserRequest{Name: "ada"},
	}
	for i, m := range seeds {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append([]byte{byte(i)}, b...))
	}
	ts := fuzzMember(f)
	ctx := context.Background()
	if _, err := (&nodeService{s: ts.Server}).Register(ctx, &api.RegisterRequest{Node: node}); err != nil {
		f.Fatal(err)
	}
	if _, err := (&jobService{s: ts.Server}).Submit(ctx, &api.SubmitRequest{Spec: []byte(helloSpec), ClientToken: "j1"}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		r := fuzzRequests[int(data[0])%len(fuzzRequests)]
		m := r.msg()
		if proto.Unmarshal(data[1:], m) != nil {
			return
		}
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatalf("%s: re-encode: %v", r.name, err)
		}
		back := r.msg()
		if err := proto.Unmarshal(b, back); err != nil || !proto.Equal(m, back) {
			t.Fatalf("%s: re-encoded request differs (%v)", r.name, err)
		}
		_ = authz.TargetOf(m).String()
		err = r.call(ts.Server, ctx, m)
		wantRefusal(t, r.name, err)
		if reg, ok := m.(*api.RegisterRequest); ok && err == nil {
			n := wire.NodeFromProto(reg.GetNode())
			if back := wire.NodeFromProto(wire.NodeToProto(&n)); !reflect.DeepEqual(back, n) {
				t.Fatalf("registered node does not survive wire's round trip:\n%+v\n%+v", n, back)
			}
		}
	})
}

func make64(c byte) []byte {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return b
}
