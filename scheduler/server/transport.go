package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"vhpc/security/pki"
)

// raftRecheck is how often an open Raft connection re-verifies its peer's
// certificate (expiry, revocation): pooled connections live for as long
// as both members run, and the handshake checked them only once.
const raftRecheck = 10 * time.Second

// raftHandshakeTimeout bounds a TLS handshake on the Raft port, so a peer
// that connects and says nothing holds a goroutine for no longer.
const raftHandshakeTimeout = 10 * time.Second

// tlsStream is the raft.StreamLayer of a secure member: Raft's
// NetworkTransport over TLS 1.3 with the member's own certificate, on
// both ends. Accepted connections must present a client certificate of
// this cluster with role server (pki.MemberHandshake): a user, agent or
// operator certificate, no certificate or plaintext is refused at the
// handshake and never reaches Raft. Dialed members must present a server
// certificate too (pki.ClientTLS). Both configs read the pki.Reloader on
// every handshake, so rotated certificates, CA bundles and revocation
// lists apply without a restart; open connections re-verify their peer
// every recheck and are closed once it is revoked or expired. openRaft
// builds it when Config.Security is set.
type tlsStream struct {
	ln        net.Listener
	advertise net.Addr
	server    *tls.Config
	client    *tls.Config
	rel       *pki.Reloader
	recheck   time.Duration
}

var _ raft.StreamLayer = (*tlsStream)(nil)

// newTLSStream listens on bind (a TCP host:port whose host is advertisable:
// not 0.0.0.0 or ::, as raft's TCP transport requires) and serves member
// TLS with rel, which must hold a certificate of role server.
func newTLSStream(bind string, rel *pki.Reloader) (*tlsStream, error) {
	srv, err := rel.ServerTLS(pki.MemberHandshake)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	addr, ok := ln.Addr().(*net.TCPAddr)
	if !ok || addr.IP == nil || addr.IP.IsUnspecified() {
		_ = ln.Close()
		return nil, fmt.Errorf("raft address %s: bind a specific address other members can dial, not %s", bind, ln.Addr())
	}
	return &tlsStream{ln: ln, advertise: addr, server: srv, client: rel.ClientTLS(), rel: rel, recheck: raftRecheck}, nil
}

// Accept returns the next connection without waiting for its handshake
// (raft's accept loop is sequential, and backs off after an error: a slow
// or refused peer must hold up no one). The handshake runs on the first
// Read, in raft's goroutine for that connection, within
// raftHandshakeTimeout; a refused peer gets an error there and raft drops
// the connection.
func (s *tlsStream) Accept() (net.Conn, error) {
	c, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
	return &memberConn{Conn: tls.Server(c, s.server), s: s, usage: x509.ExtKeyUsageClientAuth}, nil
}

// Dial connects to the member at address and completes the handshake
// before returning, so a peer that is not a member of this cluster fails
// the dial.
func (s *tlsStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	raw, err := d.Dial("tcp", string(address))
	if err != nil {
		return nil, err
	}
	c := tls.Client(raw, s.client)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := c.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("raft TLS to %s: %w", address, err)
	}
	mc := &memberConn{Conn: c, s: s, usage: x509.ExtKeyUsageServerAuth}
	mc.handshook, mc.next = true, time.Now().Add(s.recheck)
	return mc, nil
}

// Close stops listening.
func (s *tlsStream) Close() error { return s.ln.Close() }

// Addr is the address other members dial (the bound one).
func (s *tlsStream) Addr() net.Addr { return s.advertise }

// memberConn is one Raft connection over TLS: it completes the handshake
// (accepted side) on first use and re-verifies the peer's certificate
// every recheck, closing the connection when the peer is no longer a
// trusted, current, unrevoked member. Its errors reach raft, which logs
// them with the connection.
type memberConn struct {
	*tls.Conn
	s     *tlsStream
	usage x509.ExtKeyUsage

	mu        sync.Mutex
	handshook bool
	next      time.Time
	err       error
}

// Read checks the peer (see memberConn) before reading.
func (c *memberConn) Read(p []byte) (int, error) {
	if err := c.check(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

// Write checks the peer (see memberConn) before writing.
func (c *memberConn) Write(p []byte) (int, error) {
	if err := c.check(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

func (c *memberConn) check() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	now := time.Now()
	if !c.handshook {
		ctx, cancel := context.WithTimeout(context.Background(), raftHandshakeTimeout)
		err := c.HandshakeContext(ctx)
		cancel()
		if err != nil {
			c.err = fmt.Errorf("raft TLS from %s: %w", c.RemoteAddr(), err)
			_ = c.Conn.Close()
			return c.err
		}
		c.handshook, c.next = true, now.Add(c.s.recheck)
		return nil
	}
	if now.Before(c.next) {
		return nil
	}
	c.next = now.Add(c.s.recheck)
	id, err := c.s.rel.VerifyMember(c.ConnectionState().PeerCertificates, c.usage)
	if err != nil {
		c.err = fmt.Errorf("raft peer %s (%s) is no longer a trusted member, closing: %w", c.RemoteAddr(), id, err)
		_ = c.Conn.Close()
		return c.err
	}
	return nil
}
