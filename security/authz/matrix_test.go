package authz_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"vhpc/security/authz"
	"vhpc/security/pki"
	"vhpc/security/pki/pkitest"
)

// fakeFacts: job 1 is alice's (chemistry), allocation a1 runs on node07,
// carol administers chemistry, bob is in physics, chemistry/sim is private.
type fakeFacts struct{}

func (fakeFacts) JobOwner(_ context.Context, id uint64) (string, string, error) {
	if id == 1 {
		return "alice", "chemistry", nil
	}
	return "", "", authz.ErrNotFound
}

func (fakeFacts) AllocNode(_ context.Context, alloc string) (string, error) {
	if alloc == "a1" {
		return "node07", nil
	}
	return "", authz.ErrNotFound
}

func (fakeFacts) Membership(_ context.Context, user string) (authz.Membership, error) {
	switch user {
	case "alice":
		return authz.Membership{Departments: []string{"chemistry"}}, nil
	case "bob":
		return authz.Membership{Departments: []string{"physics"}}, nil
	case "carol":
		return authz.Membership{Departments: []string{"chemistry"}, AdminOf: []string{"chemistry"}}, nil
	}
	return authz.Membership{}, nil
}

func (fakeFacts) ImagePublic(_ context.Context, ref string) (bool, error) {
	return strings.HasPrefix(ref, "physics/open"), nil
}

var _ authz.Facts = fakeFacts{}

// identities of the matrix, in the order of the expected strings.
var identities = []struct{ name, base string }{
	{"anonymous", ""},
	{"user of the department (alice)", "user-alice"},
	{"user of another department (bob)", "user-bob"},
	{"department admin (carol)", "user-carol"},
	{"operator", "operator-olga"},
	{"agent of this node", "agent-node07"},
	{"agent of another node", "agent-node08"},
	{"expired (alice)", "expired"},
	{"server (member m1)", "server-m1"},
}

// expected is the matrix, written out by hand from the rules (not
// derived from the table): A allowed, D PermissionDenied, U
// Unauthenticated, one letter per identity above.
var expected = map[string]string{
	"/vhpc.v1.JobService/Submit":    "UAAADDDUD",
	"/vhpc.v1.JobService/Get":       "UADAADDUD",
	"/vhpc.v1.JobService/List":      "UAAAADDUD",
	"/vhpc.v1.JobService/Cancel":    "UADAADDUD",
	"/vhpc.v1.JobService/Watch":     "UADAADDUD",
	"/vhpc.v1.JobService/Logs":      "UADAADDUD",
	"/vhpc.v1.JobService/Nodes":     "UAAAADDUD",
	"/vhpc.v1.JobService/DataStore": "UADAAAAUD",

	"/vhpc.v1.NodeService/Register":         "UDDDDADUD",
	"/vhpc.v1.NodeService/Heartbeat":        "UDDDDADUD",
	"/vhpc.v1.NodeService/WatchAllocations": "UDDDDADUD",
	"/vhpc.v1.NodeService/UpdateAllocation": "UDDDDADUD",
	"/vhpc.v1.NodeService/PushLogs":         "UDDDDADUD",
	"/vhpc.v1.NodeService/RegistryToken":    "UDDDDADUD",
	"/vhpc.v1.NodeService/SetGPUHealth":     "UDDDAADUD",
	"/vhpc.v1.NodeService/StartAcceptance":  "UDDDADDUD",
	"/vhpc.v1.NodeService/ReportAcceptance": "UDDDDADUD",

	"/vhpc.v1.ImageService/Put":    "UDDAADDUD",
	"/vhpc.v1.ImageService/List":   "UAAAAAAUD",
	"/vhpc.v1.ImageService/Get":    "UADAAAAUD",
	"/vhpc.v1.ImageService/Remove": "UDDAADDUD",

	"/vhpc.v1.ClusterService/Status":             "UAAAAAAUA",
	"/vhpc.v1.ClusterService/AddMember":          "UDDDADDUD",
	"/vhpc.v1.ClusterService/RemoveMember":       "UDDDADDUD",
	"/vhpc.v1.ClusterService/TransferLeadership": "UDDDADDUD",
	"/vhpc.v1.ClusterService/SnapshotSave":       "UDDDADDUD",
	"/vhpc.v1.ClusterService/SnapshotRestore":    "UDDDADDUD",
	"/vhpc.v1.ClusterService/Announce":           "UDDDDDDUA",

	"/vhpc.v1.AuthService/WhoAmI":     "UAAAAAAUA",
	"/vhpc.v1.AuthService/PutUser":    "UDDDADDUD",
	"/vhpc.v1.AuthService/RemoveUser": "UDDDADDUD",
	"/vhpc.v1.AuthService/ListUsers":  "UDDDADDUD",
	"/vhpc.v1.AuthService/ReadAudit":  "UDDDADDUD",
}

// cluster is a gRPC server with the real interceptors and mTLS, serving
// every RPC of the api with a generic handler, and the credentials
// of every identity.
type cluster struct {
	ca  *pkitest.CA
	lis *bufconn.Listener
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	ca := pkitest.New(t)
	for _, id := range []pki.Identity{
		{Role: pki.RoleUser, Name: "alice"}, {Role: pki.RoleUser, Name: "bob"}, {Role: pki.RoleUser, Name: "carol"},
		{Role: pki.RoleOperator, Name: "olga"}, {Role: pki.RoleAgent, Name: "node07"}, {Role: pki.RoleAgent, Name: "node08"},
	} {
		ca.Write(pki.Request{Identity: id})
	}
	old := ca.Write(pki.Request{Identity: pki.Identity{Role: pki.RoleUser, Name: "alice"}, TTL: time.Hour}, -3*time.Hour)
	if _, _, err := old.Write(ca.Dir(), "expired"); err != nil {
		t.Fatal(err)
	}
	ca.Write(pki.Request{Identity: pki.Identity{Role: pki.RoleUser, Name: "alice"}}) // user-alice is current again

	srvTLS := ca.Reloader("server-m1")
	creds, err := srvTLS.ServerCredentials(pki.TrustAtHandshake)
	if err != nil {
		t.Fatal(err)
	}
	az, err := authz.New(srvTLS, fakeFacts{}, authz.Table())
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.Creds(creds), grpc.ChainUnaryInterceptor(az.Unary()), grpc.ChainStreamInterceptor(az.Stream()))
	registerGeneric(t, s)
	lis := bufconn.Listen(1 << 20)
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	return &cluster{ca: ca, lis: lis}
}

func (c *cluster) dial(t *testing.T, base string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///localhost",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return c.lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(c.ca.Reloader(base).ClientCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func msgType(t testing.TB, d protoreflect.MessageDescriptor) protoreflect.MessageType {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(d.FullName())
	if err != nil {
		t.Fatal(err)
	}
	return mt
}

// registerGeneric serves every method: a handler that reads all requests,
// requires an identity in its context and answers an empty response.
func registerGeneric(t *testing.T, s *grpc.Server) {
	descs := map[string]*grpc.ServiceDesc{}
	for _, m := range authz.Methods() {
		svc := string(m.Desc.Parent().FullName())
		sd := descs[svc]
		if sd == nil {
			sd = &grpc.ServiceDesc{ServiceName: svc, HandlerType: (*any)(nil)}
			descs[svc] = sd
		}
		in, out := msgType(t, m.Desc.Input()), msgType(t, m.Desc.Output())
		full, clientStream := m.FullName, m.Desc.IsStreamingClient()
		if !m.Desc.IsStreamingClient() && !m.Desc.IsStreamingServer() {
			sd.Methods = append(sd.Methods, grpc.MethodDesc{MethodName: string(m.Desc.Name()),
				Handler: func(_ any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
					req := in.New().Interface()
					if err := dec(req); err != nil {
						return nil, err
					}
					h := func(ctx context.Context, _ any) (any, error) {
						if _, ok := authz.FromContext(ctx); !ok {
							return nil, status.Error(codes.Internal, "handler ran without an identity")
						}
						return out.New().Interface(), nil
					}
					return icpt(ctx, req, &grpc.UnaryServerInfo{FullMethod: full}, h)
				}})
			continue
		}
		sd.Streams = append(sd.Streams, grpc.StreamDesc{StreamName: string(m.Desc.Name()),
			ServerStreams: m.Desc.IsStreamingServer(), ClientStreams: clientStream,
			Handler: func(_ any, ss grpc.ServerStream) error {
				if _, ok := authz.FromContext(ss.Context()); !ok {
					return status.Error(codes.Internal, "handler ran without an identity")
				}
				for {
					err := ss.RecvMsg(in.New().Interface())
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						return err
					}
					if !clientStream {
						break
					}
				}
				if clientStream {
					return ss.SendMsg(out.New().Interface())
				}
				return nil
			}})
	}
	for _, sd := range descs {
		s.RegisterService(sd, nil)
	}
}

// request builds a request of m's input type aimed at the matrix's
// targets: job 1, node07, allocation a1, image chemistry/sim:1, member m1.
func request(t testing.TB, m authz.Method) proto.Message {
	msg := msgType(t, m.Desc.Input()).New()
	fields := msg.Descriptor().Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		switch {
		case f.Name() == "id" && f.Kind() == protoreflect.Uint64Kind, f.Name() == "job" && f.Kind() == protoreflect.Uint64Kind:
			msg.Set(f, protoreflect.ValueOfUint64(1))
		case f.Name() == "id" && f.Kind() == protoreflect.StringKind:
			msg.Set(f, protoreflect.ValueOfString("m1"))
		case f.Name() == "node" && f.Kind() == protoreflect.StringKind:
			msg.Set(f, protoreflect.ValueOfString("node07"))
		case f.Name() == "node" && f.Kind() == protoreflect.MessageKind:
			n := msg.NewField(f).Message()
			n.Set(n.Descriptor().Fields().ByName("name"), protoreflect.ValueOfString("node07"))
			msg.Set(f, protoreflect.ValueOfMessage(n))
		case f.Name() == "alloc_id":
			msg.Set(f, protoreflect.ValueOfString("a1"))
		case f.Name() == "ref":
			msg.Set(f, protoreflect.ValueOfString("chemistry/sim:1"))
		case f.Name() == "department":
			msg.Set(f, protoreflect.ValueOfString("chemistry"))
		}
	}
	return msg.Interface()
}

// call makes one RPC of any kind with req and returns its status.
func call(ctx context.Context, conn *grpc.ClientConn, m authz.Method, req proto.Message) *status.Status {
	out := msgTypeNoT(m.Desc.Output()).New().Interface()
	if !m.Desc.IsStreamingClient() && !m.Desc.IsStreamingServer() {
		return status.Convert(conn.Invoke(ctx, m.FullName, req, out))
	}
	cs, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: m.Desc.IsStreamingServer(), ClientStreams: m.Desc.IsStreamingClient()}, m.FullName)
	if err != nil {
		return status.Convert(err)
	}
	if err := cs.SendMsg(req); err != nil && !errors.Is(err, io.EOF) {
		return status.Convert(err)
	}
	if err := cs.CloseSend(); err != nil {
		return status.Convert(err)
	}
	for {
		err := cs.RecvMsg(out)
		if errors.Is(err, io.EOF) {
			return status.New(codes.OK, "")
		}
		if err != nil {
			return status.Convert(err)
		}
		if !m.Desc.IsStreamingServer() {
			return status.New(codes.OK, "")
		}
	}
}

func msgTypeNoT(d protoreflect.MessageDescriptor) protoreflect.MessageType {
	mt, _ := protoregistry.GlobalTypes.FindMessageByName(d.FullName())
	return mt
}

func letter(st *status.Status) byte {
	switch st.Code() {
	case codes.OK:
		return 'A'
	case codes.PermissionDenied:
		return 'D'
	case codes.Unauthenticated:
		return 'U'
	}
	return '?'
}

// TestAuthzMatrix: every RPC of the api x every identity, over
// real gRPC with real mTLS, against the hand-written expected matrix.
func TestAuthzMatrix(t *testing.T) {
	c := newCluster(t)
	conns := make([]*grpc.ClientConn, len(identities))
	for i, id := range identities {
		conns[i] = c.dial(t, id.base)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	unexpectedAllows := 0
	for _, m := range authz.Methods() {
		want, ok := expected[m.FullName]
		if !ok {
			t.Errorf("%s: no row in the expected matrix (add it here and in authz.Table)", m.FullName)
			continue
		}
		t.Run(strings.TrimPrefix(m.FullName, "/vhpc.v1."), func(t *testing.T) {
			for i, id := range identities {
				st := call(ctx, conns[i], m, request(t, m))
				if got := letter(st); got != want[i] {
					if got == 'A' {
						unexpectedAllows++
					}
					t.Errorf("%s: got %c (%s: %s), want %c", id.name, got, st.Code(), st.Message(), want[i])
				}
			}
		})
	}
	if unexpectedAllows > 0 {
		t.Errorf("%d unexpected allows", unexpectedAllows)
	}
}

// TestRefusalMessages: what a refused caller reads says what is missing
// and how to get it.
func TestRefusalMessages(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	method := func(name string) authz.Method {
		for _, m := range authz.Methods() {
			if m.FullName == name {
				return m
			}
		}
		t.Fatalf("no method %s", name)
		return authz.Method{}
	}
	get, cancelJob := method("/vhpc.v1.JobService/Get"), method("/vhpc.v1.JobService/Cancel")
	submit, add := method("/vhpc.v1.JobService/Submit"), method("/vhpc.v1.ClusterService/AddMember")
	hb, upd := method("/vhpc.v1.NodeService/Heartbeat"), method("/vhpc.v1.NodeService/UpdateAllocation")
	withUser := func(m authz.Method, name string) proto.Message {
		r := request(t, m).ProtoReflect()
		r.Set(r.Descriptor().Fields().ByName("user"), protoreflect.ValueOfString(name))
		return r.Interface()
	}
	missingJob := request(t, get).ProtoReflect()
	missingJob.Set(missingJob.Descriptor().Fields().ByName("id"), protoreflect.ValueOfUint64(99))
	for _, tc := range []struct {
		name, base string
		m          authz.Method
		req        proto.Message
		code       codes.Code
		says       string
	}{
		{"anonymous", "", get, request(t, get), codes.Unauthenticated, "no client certificate"},
		{"expired user", "expired", get, request(t, get), codes.Unauthenticated, "run `hpcsub login`"},
		{"wrong role", "user-alice", add, request(t, add), codes.PermissionDenied, "needs role operator; the caller is user/alice"},
		{"another user's job", "user-bob", cancelJob, request(t, cancelJob), codes.PermissionDenied, "job 1 belongs to alice of department chemistry"},
		{"forged user in the body", "user-bob", submit, withUser(submit, "alice"), codes.PermissionDenied, `names user "alice" but the caller is user/bob`},
		{"agent for another node", "agent-node08", hb, request(t, hb), codes.PermissionDenied, "not node node07"},
		{"agent for another node's allocation", "agent-node08", upd, func() proto.Message {
			r := request(t, upd).ProtoReflect()
			r.Clear(r.Descriptor().Fields().ByName("node"))
			return r.Interface()
		}(), codes.PermissionDenied, "allocation a1 is on node node07"},
		{"unknown job", "user-alice", get, missingJob.Interface(), codes.NotFound, "job 99 not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := call(ctx, c.dial(t, tc.base), tc.m, tc.req)
			if st.Code() != tc.code || !strings.Contains(st.Message(), tc.says) {
				t.Fatalf("got %s %q, want %s saying %q", st.Code(), st.Message(), tc.code, tc.says)
			}
		})
	}
}

// TestForwarding: a member forwards a caller's request with the caller's
// identity, and the table applies to that caller; nobody else may claim
// to forward.
func TestForwarding(t *testing.T) {
	c := newCluster(t)
	var get authz.Method
	for _, m := range authz.Methods() {
		if m.FullName == "/vhpc.v1.JobService/Get" {
			get = m
		}
	}
	for _, tc := range []struct {
		name, base string
		onBehalf   pki.Identity
		code       codes.Code
	}{
		{"member for the owner", "server-m1", pki.Identity{Role: pki.RoleUser, Name: "alice"}, codes.OK},
		{"member for another user", "server-m1", pki.Identity{Role: pki.RoleUser, Name: "bob"}, codes.PermissionDenied},
		{"member as itself", "server-m1", pki.Identity{}, codes.PermissionDenied},
		{"user claiming to forward", "user-bob", pki.Identity{Role: pki.RoleUser, Name: "alice"}, codes.PermissionDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if !tc.onBehalf.IsZero() {
				ctx = authz.ForwardContext(authz.WithIdentity(ctx, tc.onBehalf))
				if md, _ := metadata.FromOutgoingContext(ctx); len(md.Get("x-vhpc-on-behalf-of")) != 1 {
					t.Fatalf("ForwardContext set %v", md)
				}
			}
			if st := call(ctx, c.dial(t, tc.base), get, request(t, get)); st.Code() != tc.code {
				t.Fatalf("got %s %q, want %s", st.Code(), st.Message(), tc.code)
			}
		})
	}
}
