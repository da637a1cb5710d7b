package server

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"vhpc/api"
	"vhpc/scheduler/model"
	"vhpc/scheduler/state"
	"vhpc/security/audit"
	"vhpc/security/authz"
	"vhpc/security/pki"
)

// Security turns on what issue 16 asks of every member: mTLS on the gRPC
// API (clients, agents and other members), the ACL table of security/authz
// in front of every handler, and the audit log of security/audit.
type Security struct {
	// TLS holds this member's server certificate (role server, name = the
	// member id), the cluster CA bundle and the revocation list; files
	// replaced on disk are picked up without a restart.
	TLS *pki.Reloader
	// AuditLog is the audit log's path; "" is DataDir/audit.log.
	AuditLog string
}

// ErrNoSecurity is New's answer to a Config with neither Security nor
// Insecure: a master never serves without identities by accident.
var ErrNoSecurity = errors.New("no PKI configured: give the member its server certificate and the cluster CA (`hpcd tls init`, then --pki-dir), or ask explicitly for a plaintext master without identities (--insecure; tests only)")

// security is what a member built from Config.Security.
type security struct {
	tls   *pki.Reloader
	authz *authz.Authorizer
	audit *audit.Log
}

// setupSecurity builds the interceptors and credentials; nil options and
// no error mean an explicitly insecure member.
func (s *Server) setupSecurity() ([]grpc.ServerOption, error) {
	sc := s.cfg.Security
	if sc == nil {
		if !s.cfg.Insecure {
			return nil, ErrNoSecurity
		}
		s.log.Warn("serving plaintext without identities or ACLs (insecure mode): anyone who reaches this member may do anything")
		return nil, nil
	}
	if err := checkMemberCert(s.cfg); err != nil {
		return nil, err
	}
	creds, err := sc.TLS.ServerCredentials(pki.TrustAtHandshake)
	if err != nil {
		return nil, err
	}
	az, err := authz.New(sc.TLS, &stateFacts{s: s}, authz.Table())
	if err != nil {
		return nil, err
	}
	path := sc.AuditLog
	if path == "" {
		path = filepath.Join(s.cfg.DataDir, "audit.log")
	}
	al, err := audit.Open(path, audit.Options{Logger: s.log})
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, al.Close)
	s.sec = &security{tls: sc.TLS, authz: az, audit: al}
	return []grpc.ServerOption{
		grpc.Creds(creds),
		// audit first: it sees authz's decision and the handler's result.
		grpc.ChainUnaryInterceptor(al.Unary(), az.Unary()),
		grpc.ChainStreamInterceptor(al.Stream(), az.Stream()),
	}, nil
}

// checkMemberCert: a secure member holds the certificate
// vhpc://server/ID of its own id. openRaft (for the Raft transport) and
// setupSecurity (for the API) check it.
func checkMemberCert(cfg Config) error {
	sc := cfg.Security
	if sc.TLS == nil {
		return errors.New("security: no TLS credentials (Security.TLS)")
	}
	if id := sc.TLS.Identity(); id.Role != pki.RoleServer || id.Name != cfg.ID {
		return fmt.Errorf("security: this member (id %s) holds the certificate of %s; it needs vhpc://server/%s (`hpcd tls issue --server %s --host HOST`)", cfg.ID, id, cfg.ID, cfg.ID)
	}
	return nil
}

// peerCredentials are what this member dials other members with: its
// server certificate (forwarding, announcing) or plaintext when insecure.
func (s *Server) peerCredentials() credentials.TransportCredentials {
	if s.sec == nil {
		return insecure.NewCredentials()
	}
	return s.sec.tls.ClientCredentials()
}

// Secure reports whether the member serves mTLS with ACLs.
func (s *Server) Secure() bool { return s.sec != nil }

// AuditLogPath is the file of this member's audit log ("" when insecure).
func (s *Server) AuditLogPath() string {
	if s.sec == nil {
		return ""
	}
	if s.cfg.Security.AuditLog != "" {
		return s.cfg.Security.AuditLog
	}
	return filepath.Join(s.cfg.DataDir, "audit.log")
}

// caller returns the verified identity of a handler's caller; ok is false
// on an insecure member, where requests carry no identity.
func caller(ctx context.Context) (authz.Identity, bool) {
	id, ok := authz.FromContext(ctx)
	return id, ok && !id.IsZero()
}

// registerAuth serves AuthService (users.go).
func (s *Server) registerAuth(g *grpc.Server) {
	api.RegisterAuthServiceServer(g, &authService{s: s})
}

// waitForState waits (briefly) until found reports true on the current
// state, on a follower only: a job or allocation the leader just committed
// reaches a follower's state a heartbeat later, and the ACL check must not
// answer NotFound for it meanwhile. The leader's state is authoritative.
func (s *Server) waitForState(ctx context.Context, found func() bool) {
	if found() || s.isLeader() {
		return
	}
	deadline := time.NewTimer(time.Second)
	defer deadline.Stop()
	for {
		changed := s.fsm.Changed()
		if found() {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			return
		case <-ctx.Done():
			return
		case <-s.stop:
			return
		}
	}
}

// submitter is the user a submission runs as. On a secure member it is
// the caller's identity (a body user that differs was refused by the ACL
// table already; this refuses it again for handlers called directly), and
// the job's department must be one of the caller's. On an insecure member
// it is the body's user, as the client says.
func (s *Server) submitter(ctx context.Context, bodyUser, dept string) (string, error) {
	id, ok := caller(ctx)
	if !ok {
		return bodyUser, nil
	}
	if bodyUser != "" && bodyUser != id.Name {
		return "", status.Errorf(codes.PermissionDenied, "the request names user %q but the caller is %s: the user comes from the credential (leave the field empty)", bodyUser, id)
	}
	if err := authz.CheckDepartment(ctx, &stateFacts{s: s}, id, dept); err != nil {
		return "", err
	}
	return id.Name, nil
}

// jobFilter returns which jobs the caller may see in lists: all on an
// insecure member and for operators, else authz.CanSeeJob (own jobs and
// those of departments the caller administers).
func (s *Server) jobFilter(ctx context.Context, snap *state.Snapshot) func(*model.Job) bool {
	id, ok := caller(ctx)
	if !ok || id.Role == pki.RoleOperator {
		return func(*model.Job) bool { return true }
	}
	m := membershipOf(snap.User(id.Name))
	return func(j *model.Job) bool { return authz.CanSeeJob(id, m, j.User, j.Department) }
}
