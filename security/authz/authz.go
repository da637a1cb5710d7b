package authz

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"vhpc/api"
	"vhpc/security/pki"
)

// Identity is the verified caller of an RPC (pki's role and name).
type Identity = pki.Identity

// Verifier checks a peer's certificate chain; *pki.Reloader is the one
// used by servers.
type Verifier interface {
	Verify(chain []*x509.Certificate, usage x509.ExtKeyUsage) (pki.Identity, error)
}

var _ Verifier = (*pki.Reloader)(nil)

// Authorizer applies the ACL table to every RPC. scheduler/server builds
// one with New and installs Unary and Stream in its grpc.Server; nothing
// reaches a handler without a verified identity allowed by the table.
type Authorizer struct {
	rules  map[string]Rule
	inputs map[string]protoreflect.MessageType
	v      Verifier
	facts  Facts
}

// New builds an Authorizer over rows (normally Table()). Methods without
// a row are refused at run time; MethodsWithoutRule lists them for tests.
func New(v Verifier, facts Facts, rows []Rule) (*Authorizer, error) {
	if v == nil || facts == nil {
		return nil, errors.New("authz: a Verifier and Facts are required")
	}
	a := &Authorizer{rules: map[string]Rule{}, inputs: map[string]protoreflect.MessageType{}, v: v, facts: facts}
	for _, r := range rows {
		if _, dup := a.rules[r.Method]; dup {
			return nil, fmt.Errorf("authz: two rules for %s", r.Method)
		}
		for role := range r.Allow {
			if !role.Valid() {
				return nil, fmt.Errorf("authz: rule %s names unknown role %q", r.Method, role)
			}
		}
		a.rules[r.Method] = r
	}
	for _, m := range Methods() {
		mt, err := protoregistry.GlobalTypes.FindMessageByName(m.Desc.Input().FullName())
		if err != nil {
			return nil, fmt.Errorf("authz: input of %s: %w", m.FullName, err)
		}
		a.inputs[m.FullName] = mt
	}
	return a, nil
}

// Method is one RPC of api/vhpc.proto or api/vhpc_auth.proto.
type Method struct {
	FullName string // /vhpc.v1.JobService/Submit
	Desc     protoreflect.MethodDescriptor
}

// Methods enumerates every RPC of every service in api/vhpc.proto and
// api/vhpc_auth.proto, from the generated descriptors.
func Methods() []Method {
	var out []Method
	for _, f := range []protoreflect.FileDescriptor{api.File_vhpc_proto, api.File_vhpc_auth_proto} {
		svcs := f.Services()
		for i := range svcs.Len() {
			s := svcs.Get(i)
			for j := range s.Methods().Len() {
				m := s.Methods().Get(j)
				out = append(out, Method{FullName: "/" + string(s.FullName()) + "/" + string(m.Name()), Desc: m})
			}
		}
	}
	return out
}

// MethodsWithoutRule lists the RPCs of the api that rows does not
// cover (they would be refused). Tests fail when it is not empty.
func MethodsWithoutRule(rows []Rule) []string {
	have := map[string]bool{}
	for _, r := range rows {
		have[r.Method] = true
	}
	var out []string
	for _, m := range Methods() {
		if !have[m.FullName] {
			out = append(out, m.FullName)
		}
	}
	return out
}

type identityKey struct{}

// FromContext returns the caller's identity inside a handler (the
// effective one: for a forwarded call, the original caller's). Handlers
// take the job's user from it, never from the request body.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// WithIdentity returns ctx carrying id, for handlers called without the
// interceptor (tests, a member calling itself).
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// onBehalfKey is the metadata a member sets when it forwards a caller's
// request to the leader: the caller's identity URI.
const onBehalfKey = "x-vhpc-on-behalf-of"

// ForwardContext returns an outgoing context that carries the caller's
// identity (from FromContext) to the member a request is forwarded to.
// scheduler/server's forwardCtx calls it. The receiving member accepts it
// only from a peer with a server certificate and re-applies the table to
// the original caller.
func ForwardContext(ctx context.Context) context.Context {
	id, ok := FromContext(ctx)
	if !ok || id.IsZero() {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, onBehalfKey, id.URI().String())
}

// identify authenticates the peer of ctx and finds the rule of method.
// Errors are status errors ready for the client.
func (a *Authorizer) identify(ctx context.Context, method string, d *Decision) (Rule, Identity, error) {
	rule, known := a.rules[method]
	d.Mutating = rule.Mutating
	id, via, err := a.authenticate(ctx)
	d.Identity, d.Via = id, via
	if err != nil {
		return rule, id, err
	}
	if !known {
		return rule, id, status.Errorf(codes.PermissionDenied, "%s has no row in the ACL table (security/authz): refused", method)
	}
	if _, ok := rule.Allow[id.Role]; !ok {
		return rule, id, status.Errorf(codes.PermissionDenied, "%s needs role %s; the caller is %s", method, joinRoles(rule.Roles()), id)
	}
	return rule, id, nil
}

func joinRoles(rs []pki.Role) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, " or ")
}

// authenticate returns the effective identity of the caller and, for a
// forwarded call, the member that forwarded it.
func (a *Authorizer) authenticate(ctx context.Context) (id, via Identity, err error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return id, via, status.Error(codes.Unauthenticated, "no peer information: the server is not serving TLS")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return id, via, status.Errorf(codes.Unauthenticated, "the connection is not TLS: dial with the cluster CA and a credential; %s", pki.RenewHint(Identity{}))
	}
	if len(info.State.PeerCertificates) == 0 {
		return id, via, status.Errorf(codes.Unauthenticated, "no client certificate: every call needs a credential; %s", pki.RenewHint(Identity{}))
	}
	id, err = a.v.Verify(info.State.PeerCertificates, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return id, via, status.Error(codes.Unauthenticated, err.Error())
	}
	md, _ := metadata.FromIncomingContext(ctx)
	fwd := md.Get(onBehalfKey)
	if len(fwd) == 0 {
		return id, via, nil
	}
	if id.Role != pki.RoleServer {
		return id, via, status.Errorf(codes.PermissionDenied, "%s sent %s: only cluster members may forward on behalf of another identity", id, onBehalfKey)
	}
	if len(fwd) > 1 {
		return id, via, status.Errorf(codes.PermissionDenied, "%s sent %d %s values; want one", id, len(fwd), onBehalfKey)
	}
	orig, err := pki.ParseIdentityURI(fwd[0])
	if err != nil {
		return id, via, status.Errorf(codes.PermissionDenied, "forwarded identity from %s: %v", id, err)
	}
	return orig, id, nil
}

// checkTarget applies the role's ownership check to one request message.
func (a *Authorizer) checkTarget(ctx context.Context, method string, rule Rule, id Identity, msg any, d *Decision) error {
	t := TargetOf(msg)
	d.Target = t
	if t.User != "" && t.User != id.Name {
		return status.Errorf(codes.PermissionDenied, "the request names user %q but the caller is %s: the user comes from the credential (leave the field empty)", t.User, id)
	}
	switch c := rule.Allow[id.Role]; c {
	case Any, Filtered, Self:
		return nil
	case OwnNode:
		return a.ownNode(id, t)
	case OwnMember:
		if t.Member != id.Name {
			return status.Errorf(codes.PermissionDenied, "%s may announce only itself, not member %q", id, t.Member)
		}
		return nil
	case OwnAlloc:
		if err := a.ownNodeIfNamed(id, t); err != nil {
			return err
		}
		if t.AllocID == "" {
			return status.Errorf(codes.InvalidArgument, "%s: alloc_id is missing", method)
		}
		node, err := a.facts.AllocNode(ctx, t.AllocID)
		if err != nil {
			return factsError("allocation "+t.AllocID, err)
		}
		if node != id.Name {
			return status.Errorf(codes.PermissionDenied, "allocation %s is on node %s; %s may report only on its own node's allocations", t.AllocID, node, id)
		}
		return nil
	case OwnJob:
		if t.JobID == 0 {
			return status.Errorf(codes.InvalidArgument, "%s: job id is missing", method)
		}
		owner, dept, err := a.facts.JobOwner(ctx, t.JobID)
		if err != nil {
			return factsError(fmt.Sprintf("job %d", t.JobID), err)
		}
		if owner == id.Name {
			return nil
		}
		m, err := a.membership(ctx, id)
		if err != nil {
			return err
		}
		if m.Administers(dept) {
			return nil
		}
		return status.Errorf(codes.PermissionDenied, "job %d belongs to %s of department %s; %s may act on own jobs and on jobs of departments they administer (%s)", t.JobID, owner, dept, id, list(m.AdminOf))
	case DeptMember, DeptAdmin, DeptOrPublic:
		return a.department(ctx, method, c, id, t)
	}
	return status.Errorf(codes.PermissionDenied, "%s: unknown check for role %s: refused", method, id.Role)
}

func (a *Authorizer) ownNode(id Identity, t Target) error {
	if t.Node == "" {
		return status.Errorf(codes.InvalidArgument, "the request names no node; %s may act only for node %s", id, id.Name)
	}
	return a.ownNodeIfNamed(id, t)
}

func (a *Authorizer) ownNodeIfNamed(id Identity, t Target) error {
	if t.Node != "" && t.Node != id.Name {
		return status.Errorf(codes.PermissionDenied, "%s may act only for its own node, not node %s", id, t.Node)
	}
	return nil
}

func (a *Authorizer) department(ctx context.Context, method string, c Check, id Identity, t Target) error {
	if t.Department == "" {
		return status.Errorf(codes.InvalidArgument, "%s: the request names no department (image refs are department/name[:tag])", method)
	}
	m, err := a.membership(ctx, id)
	if err != nil {
		return err
	}
	switch c {
	case DeptAdmin:
		if m.Administers(t.Department) {
			return nil
		}
		return status.Errorf(codes.PermissionDenied, "managing %s needs admin of department %s; %s administers %s", t.String(), t.Department, id, list(m.AdminOf))
	case DeptOrPublic:
		if t.Department == "public" || m.MemberOf(t.Department) {
			return nil
		}
		public, err := a.facts.ImagePublic(ctx, t.ImageRef)
		if err != nil {
			return factsError("image "+t.ImageRef, err)
		}
		if public {
			return nil
		}
	default:
		if m.MemberOf(t.Department) {
			return nil
		}
	}
	return status.Errorf(codes.PermissionDenied, "%s is of department %s; %s belongs to %s", t.String(), t.Department, id, list(m.Departments))
}

func (a *Authorizer) membership(ctx context.Context, id Identity) (Membership, error) {
	m, err := a.facts.Membership(ctx, id.Name)
	if err != nil {
		return m, factsError("departments of "+id.Name, err)
	}
	return m, nil
}

func list(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func factsError(what string, err error) error {
	if errors.Is(err, ErrNotFound) {
		return status.Errorf(codes.NotFound, "%s not found", what)
	}
	return status.Errorf(codes.Unavailable, "authorization lookup of %s: %v", what, err)
}

// CheckDepartment is for handlers whose department is inside the request
// (JobService.Submit reads it from the job spec): nil if the caller is an
// operator or a member of dept, else PermissionDenied naming the caller's
// departments.
func CheckDepartment(ctx context.Context, facts Facts, id Identity, dept string) error {
	if id.Role == operator {
		return nil
	}
	m, err := facts.Membership(ctx, id.Name)
	if err != nil {
		return factsError("departments of "+id.Name, err)
	}
	if id.Role == user && m.MemberOf(dept) {
		return nil
	}
	return status.Errorf(codes.PermissionDenied, "%s may not use department %s; member of %s (an operator adds members with `hpcd user add`)", id, dept, list(m.Departments))
}
