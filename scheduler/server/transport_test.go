package server

import (
	"crypto/tls"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"vhpc/scheduler/model"
	"vhpc/security/pki"
	"vhpc/security/pki/pkitest"
)

// dialOnly is a raft.StreamLayer for an attacker's transport: it dials
// with dial and accepts nothing that matters.
type dialOnly struct {
	net.Listener
	dial func(addr string, timeout time.Duration) (net.Conn, error)
}

func (d dialOnly) Dial(a raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return d.dial(string(a), timeout)
}

// rogueTransport is a raft transport that dials with dial.
func rogueTransport(t *testing.T, dial func(addr string, timeout time.Duration) (net.Conn, error)) *raft.NetworkTransport {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: dialOnly{Listener: ln, dial: dial}, MaxPool: 1, Timeout: 2 * time.Second,
		Logger: hclog.New(&hclog.LoggerOptions{Output: io.Discard}),
	})
	t.Cleanup(func() { tr.Close() })
	return tr
}

// tlsDialer dials with the credential rel (ClientTLS: it presents rel's
// certificate, or none).
func tlsDialer(rel *pki.Reloader) func(string, time.Duration) (net.Conn, error) {
	return func(addr string, timeout time.Duration) (net.Conn, error) {
		return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", addr, rel.ClientTLS())
	}
}

func plainDialer(addr string, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", addr, timeout)
}

// depose sends the leader an AppendEntries of a term far ahead, as a
// rogue leader would: a member that accepts it steps down and adopts the
// term (the attack a Raft port open to any credential allows).
func depose(tr *raft.NetworkTransport, leader *testServer) error {
	term := leader.raft.CurrentTerm()
	var resp raft.AppendEntriesResponse
	return tr.AppendEntries(raft.ServerID(leader.cfg.ID), raft.ServerAddress(leader.raftAddr), &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ID: []byte("rogue"), Addr: []byte("127.0.0.1:1")},
		Term:      term + 100, LeaderCommitIndex: 0,
	}, &resp)
}

// replicated puts a user through the leader and waits for every member
// to apply it.
func replicated(t *testing.T, members []*testServer, name string) {
	t.Helper()
	leader := waitLeader(t, members)
	if err := leader.PutUser(ctxT(t), model.User{Name: name, Departments: []string{"physics"}}); err != nil {
		t.Fatalf("put user %s: %v", name, err)
	}
	for _, m := range members {
		waitApplied(t, m.Server, leader.raft.AppliedIndex())
		if m.fsm.Store().Snapshot().User(name) == nil {
			t.Fatalf("member %s did not replicate user %s", m.cfg.ID, name)
		}
	}
}

// TestRaftOverMemberTLS: three secure members form a cluster and
// replicate over the TLS stream layer; a peer that reaches the Raft port
// with a user, agent or operator certificate of the same CA, with no
// certificate, in plaintext, with a foreign CA's server certificate, or
// with a revoked or expired server certificate is refused at the
// handshake: its AppendEntries (which would depose the leader) fails and
// the cluster keeps its leader, its term and replicating. The control: the
// same AppendEntries against an insecure member deposes it.
func TestRaftOverMemberTLS(t *testing.T) {
	c := startSecureCluster(t, 3)
	leader := c.members[0]
	replicated(t, c.members, "ada")

	revoked := c.ca.Write(pki.Request{Identity: pki.Identity{Role: pki.RoleServer, Name: "m8"}, DNSNames: []string{"localhost"}})
	if err := pki.Revoke(filepath.Join(c.ca.Dir(), pki.RevokedFile), pki.Serial(revoked.Cert), "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	c.ca.Write(pki.Request{Identity: pki.Identity{Role: pki.RoleServer, Name: "m7"}, DNSNames: []string{"localhost"}, TTL: time.Hour}, -3*time.Hour)
	foreign := pkitest.New(t)
	forged, err := pki.NewReloader(pki.Files{Cert: filepath.Join(foreign.Dir(), "server-m1.crt"), Key: filepath.Join(foreign.Dir(), "server-m1.key"),
		CA: filepath.Join(c.ca.Dir(), pki.CACertFile)}, pki.ReloadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	term := leader.raft.CurrentTerm()
	for _, tc := range []struct {
		name string
		dial func(string, time.Duration) (net.Conn, error)
	}{
		{"agent certificate", tlsDialer(c.ca.Credentials(pki.Identity{Role: pki.RoleAgent, Name: "node07"}))},
		{"user certificate", tlsDialer(c.ca.Credentials(user("alice")))},
		{"operator certificate", tlsDialer(c.ca.Credentials(olga))},
		{"no certificate", tlsDialer(c.ca.Reloader(""))},
		{"plaintext", plainDialer},
		{"foreign CA's server certificate", tlsDialer(forged)},
		{"revoked server certificate", tlsDialer(c.ca.Reloader("server-m8"))},
		{"expired server certificate", tlsDialer(c.ca.Reloader("server-m7"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := depose(rogueTransport(t, tc.dial), leader); err == nil {
				t.Fatal("the leader answered a rogue AppendEntries")
			}
			// An election of its own (100 ms timeouts on a loaded box) may
			// move the term by a few; the rogue's term+100 never lands.
			if got := leader.raft.CurrentTerm(); got >= term+100 {
				t.Fatalf("leader adopted the rogue's term: %d -> %d", term, got)
			}
			if _, lid := leader.raft.LeaderWithID(); lid == "rogue" {
				t.Fatal("the rogue became leader")
			}
		})
	}
	// The cluster is unaffected: same leader, same term, still replicating.
	if got := leader.raft.CurrentTerm(); got >= term+100 {
		t.Fatalf("leader adopted the rogue's term: %d -> %d", term, got)
	}
	waitLeader(t, c.members)
	replicated(t, c.members, "bob")

	// A member's own certificate is accepted (it is how members talk):
	// the handshake completes and the peer is the member.
	conn, err := tls.Dial("tcp", leader.raftAddr, c.ca.Server("m9").ClientTLS())
	if err != nil {
		t.Fatalf("a server certificate was refused: %v", err)
	}
	if id, err := pki.IdentityOf(conn.ConnectionState().PeerCertificates[0]); err != nil || id != (pki.Identity{Role: pki.RoleServer, Name: leader.cfg.ID}) {
		t.Fatalf("raft port presented %v (%v)", id, err)
	}
	conn.Close()

	// Control: over an insecure member's plain TCP transport the same
	// AppendEntries deposes the leader.
	plain := startCluster(t, 1)[0]
	before := plain.raft.CurrentTerm()
	if err := depose(rogueTransport(t, plainDialer), plain); err != nil {
		t.Fatalf("insecure control: %v", err)
	}
	if got := plain.raft.CurrentTerm(); got <= before {
		t.Fatalf("insecure control: term %d -> %d; the attack did nothing, so the secure cases prove nothing", before, got)
	}
}

// TestRaftConnectionCutOnRevocation: an open member connection whose
// peer's certificate is revoked afterwards is closed at the next
// re-verification, on both ends.
func TestRaftConnectionCutOnRevocation(t *testing.T) {
	ca := pkitest.New(t)
	srv, err := newTLSStream("127.0.0.1:0", ca.Server("m1"))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.recheck = 20 * time.Millisecond
	peer := ca.Server("m2")
	cli := &tlsStream{client: peer.ClientTLS(), rel: peer, recheck: time.Hour}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := srv.Accept()
		if err == nil && c.(*memberConn).check() == nil { // the handshake, as raft's first Read does
			accepted <- c
		}
	}()
	out, err := cli.Dial(raft.ServerAddress(srv.Addr().String()), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	in := <-accepted
	defer in.Close()
	buf := make([]byte, 4)
	if _, err := out.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(in, buf); err != nil {
		t.Fatalf("a member's connection was refused: %v", err)
	}

	if err := pki.Revoke(filepath.Join(ca.Dir(), pki.RevokedFile), pki.Serial(peer.Certificate().Leaf), "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // past the recheck interval, which is the thing under test
	if _, err := out.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(in, buf); err == nil {
		t.Fatal("a revoked member's open connection still delivers")
	}
}

// TestRaftTransportNeedsOwnServerCertificate: a secure member refuses to
// start Raft with another member's certificate.
func TestRaftTransportNeedsOwnServerCertificate(t *testing.T) {
	ca := pkitest.New(t)
	_, err := New(Config{ID: "m2", DataDir: t.TempDir(), GRPCAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", Security: &Security{TLS: ca.Server("m1")}})
	if err == nil {
		t.Fatal("member m2 started with the certificate of m1")
	}
}

// waitLeader returns the member that is leader (waiting for an election
// in progress to end).
func waitLeader(t *testing.T, members []*testServer) *testServer {
	t.Helper()
	ctx := ctxT(t)
	for {
		for _, m := range members {
			if m.raft.State() == raft.Leader {
				return m
			}
		}
		select {
		case <-ctx.Done():
			t.Fatal("no leader")
		case <-time.After(10 * time.Millisecond): // polls raft state; no event to wait on across members
		}
	}
}
