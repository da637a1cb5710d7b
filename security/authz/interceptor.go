package authz

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Decision is what the interceptor decided about one RPC. The audit
// interceptor (security/audit), placed before the authz interceptor in
// the chain, plants one with WithDecision and records it after the call.
type Decision struct {
	Identity Identity // effective caller (zero: anonymous)
	Via      Identity // the member that forwarded the call, if any
	Method   string
	Target   Target
	Mutating bool
	Decided  bool // the authz interceptor saw the call
	Allowed  bool // false: refused before (or, for client streams, during) the handler
	Reason   string
}

type decisionKey struct{}

// WithDecision returns a context in which the authz interceptor records
// its decision into the returned Decision.
func WithDecision(ctx context.Context) (context.Context, *Decision) {
	d := &Decision{}
	return context.WithValue(ctx, decisionKey{}, d), d
}

func decisionOf(ctx context.Context, method string) *Decision {
	d, ok := ctx.Value(decisionKey{}).(*Decision)
	if !ok {
		d = &Decision{}
	}
	d.Method, d.Decided = method, true
	return d
}

func deny(d *Decision, err error) error {
	d.Allowed, d.Reason = false, status.Convert(err).Message()
	return err
}

// Unary is the unary server interceptor: the caller is verified, its role
// checked against the table and the request against the role's check
// before the handler runs; the handler's context carries the identity
// (FromContext).
func (a *Authorizer) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		d := decisionOf(ctx, info.FullMethod)
		rule, id, err := a.identify(ctx, info.FullMethod, d)
		if err != nil {
			return nil, deny(d, err)
		}
		if err := a.checkTarget(ctx, info.FullMethod, rule, id, req, d); err != nil {
			return nil, deny(d, err)
		}
		d.Allowed = true
		return handler(WithIdentity(ctx, id), req)
	}
}

// Stream is the stream server interceptor. For server-streaming RPCs
// (one request) it reads and checks the request before the handler runs
// and hands it to the handler's first RecvMsg. For client-streaming RPCs
// (PushLogs, SnapshotRestore) it checks every received message; a refused
// message ends the stream with the refusal.
func (a *Authorizer) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx := ss.Context()
		d := decisionOf(ctx, info.FullMethod)
		rule, id, err := a.identify(ctx, info.FullMethod, d)
		if err != nil {
			return deny(d, err)
		}
		ws := &stream{ServerStream: ss, ctx: WithIdentity(ctx, id)}
		if info.IsClientStream {
			ws.check = func(m any) error {
				if err := a.checkTarget(ctx, info.FullMethod, rule, id, m, d); err != nil {
					return deny(d, err)
				}
				return nil
			}
			d.Allowed = true
			return handler(srv, ws)
		}
		mt := a.inputs[info.FullMethod]
		if mt == nil {
			return deny(d, status.Errorf(codes.PermissionDenied, "%s: request type unknown to authz: refused", info.FullMethod))
		}
		first := mt.New().Interface()
		if err := ss.RecvMsg(first); err != nil {
			return err
		}
		if err := a.checkTarget(ctx, info.FullMethod, rule, id, first, d); err != nil {
			return deny(d, err)
		}
		d.Allowed = true
		ws.first = first
		return handler(srv, ws)
	}
}

// stream carries the identity in its context, replays a pre-read first
// message, and checks each received message of a client stream.
type stream struct {
	grpc.ServerStream
	ctx   context.Context
	first proto.Message
	check func(any) error
}

func (s *stream) Context() context.Context { return s.ctx }

func (s *stream) RecvMsg(m any) error {
	if s.first != nil {
		dst, ok := m.(proto.Message)
		if !ok {
			return status.Errorf(codes.Internal, "authz: cannot replay the request into %T", m)
		}
		proto.Reset(dst)
		proto.Merge(dst, s.first)
		s.first = nil
		return nil
	}
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if s.check != nil {
		return s.check(m)
	}
	return nil
}
