package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"google.golang.org/grpc/credentials"
)

// HandshakeMode says how much a server checks during the TLS handshake.
type HandshakeMode int

const (
	// TrustAtHandshake (for gRPC servers behind security/authz): the
	// handshake refuses certificates not chained to the cluster CA and
	// malformed identities, and admits clients without a certificate and
	// with expired or revoked ones, so that the authz interceptor can refuse
	// each RPC with Unauthenticated and a message saying how to renew (a
	// TLS alert carries no text). The interceptor re-verifies on every RPC,
	// which also cuts off long-lived connections whose certificate expires
	// or is revoked after the handshake.
	TrustAtHandshake HandshakeMode = iota
	// StrictHandshake (for listeners without an interceptor: the Raft
	// transport, the registry): a client certificate is required and must
	// be trusted, current and not revoked.
	StrictHandshake
	// MemberHandshake (member-to-member listeners: the Raft transport) is
	// StrictHandshake for cluster members only: the client certificate
	// must also carry role server. A user, agent or operator certificate
	// of the same CA is refused at the handshake, so holding any
	// credential of the cluster is not enough to speak Raft (the class of
	// Nomad's CVE-2021-37218).
	MemberHandshake
)

// ErrNotMember: a certificate of this cluster whose role is not server
// was offered where only members may connect (the Raft transport).
var ErrNotMember = errors.New("not a cluster member: only certificates of role server may connect here")

// VerifyMember is Verify for member-to-member connections: the chain must
// be trusted, current, not revoked and of role server, else the error
// wraps the Verify sentinel or ErrNotMember. The Raft transport calls it
// at the handshake (MemberHandshake) and again on open connections, so a
// member certificate revoked or expired later is cut off too.
func (r *Reloader) VerifyMember(chain []*x509.Certificate, usage x509.ExtKeyUsage) (Identity, error) {
	id, err := r.Verify(chain, usage)
	if err != nil {
		return id, err
	}
	if id.Role != RoleServer {
		return id, fmt.Errorf("certificate of %s: %w", id, ErrNotMember)
	}
	return id, nil
}

// ServerTLS returns the tls.Config of a server (hpcd's API, member to
// member listeners). It serves the current certificate and verifies
// clients against the current CA bundle and revocation list, so replacing
// the files rotates them without a restart. The Reloader must hold a
// certificate of role server.
func (r *Reloader) ServerTLS(mode HandshakeMode) (*tls.Config, error) {
	c := r.Certificate()
	if c == nil {
		return nil, errors.New("tls: a server needs its own certificate (`hpcd tls init` or `hpcd tls issue --server NAME --host HOST`)")
	}
	if id, _ := IdentityOf(c.Leaf); id.Role != RoleServer {
		return nil, fmt.Errorf("tls: serving with the certificate of %s; a server needs role server (`hpcd tls issue --server NAME --host HOST`)", id)
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		ClientAuth: tls.RequestClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return r.Certificate(), nil
		},
	}
	verify := r.Verify
	if mode == MemberHandshake {
		cfg.ClientAuth = tls.RequireAnyClientCert
		verify = r.VerifyMember
	}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			if mode != TrustAtHandshake {
				return &CredentialError{Err: ErrNoCertificate}
			}
			return nil
		}
		id, err := verify(cs.PeerCertificates, x509.ExtKeyUsageClientAuth)
		if err == nil {
			return nil
		}
		if mode == TrustAtHandshake && (errors.Is(err, ErrExpired) || errors.Is(err, ErrRevoked)) {
			return nil // refused per RPC by authz, with a message
		}
		r.log.Warn("tls: refused a client at the handshake", "identity", id.String(), "err", err)
		return err
	}
	return cfg, nil
}

// ClientTLS returns the tls.Config of a client (hpcsub, agents, operator
// commands, members forwarding to the leader). It presents the current own
// certificate if there is one (none: anonymous, which servers refuse per
// RPC with a message), and accepts only a server whose certificate is
// trusted, current, not revoked, of role server and valid for the dialed
// host name. Rotated files are picked up at the next handshake.
func (r *Reloader) ClientTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The standard verification uses a fixed RootCAs pool; the check
		// below uses the reloaded one instead, with the same strength.
		InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if c := r.Certificate(); c != nil {
				return c, nil
			}
			return &tls.Certificate{}, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := r.Verify(cs.PeerCertificates, x509.ExtKeyUsageServerAuth)
			if err != nil {
				return fmt.Errorf("server: %w", err)
			}
			if id.Role != RoleServer {
				return fmt.Errorf("server presented the certificate of %s, not of a cluster member: %w", id, ErrIdentity)
			}
			if cs.ServerName != "" {
				if err := cs.PeerCertificates[0].VerifyHostname(cs.ServerName); err != nil {
					return fmt.Errorf("server %s: %w (reissue it with `hpcd tls issue --server %s --host %s`)", id, err, id.Name, cs.ServerName)
				}
			}
			return nil
		},
	}
}

// ServerCredentials wraps ServerTLS for grpc.Creds. scheduler/server will
// call it when it builds its grpc.Server.
func (r *Reloader) ServerCredentials(mode HandshakeMode) (credentials.TransportCredentials, error) {
	cfg, err := r.ServerTLS(mode)
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(cfg), nil
}

// ClientCredentials wraps ClientTLS for grpc.WithTransportCredentials.
func (r *Reloader) ClientCredentials() credentials.TransportCredentials {
	return credentials.NewTLS(r.ClientTLS())
}
