package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// Peer is one member of the Raft cluster.
type Peer struct {
	ID   string
	Addr string
}

// openRaft starts this member's Raft node: log and stable store in
// DataDir/raft.db, snapshots in DataDir/snapshots, transport on RaftAddr
// (mTLS between members when secure, raftTransport). A member with no state bootstraps the configured peers; a
// member with state resumes from it.
func (s *Server) openRaft() error {
	cfg := s.cfg
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: cfg.RaftLogOutput})
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 256
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = cfg.TrailingLogs
	if err := cfg.Timeouts.set(rc); err != nil {
		return err
	}
	if err := raft.ValidateConfig(rc); err != nil {
		return fmt.Errorf("raft config: %w", err)
	}
	// The transport binds first: a taken Raft address writes nothing.
	addr, err := net.ResolveTCPAddr("tcp", cfg.RaftAddr)
	if err != nil {
		return fmt.Errorf("raft address %q: %w", cfg.RaftAddr, err)
	}
	trans, err := s.raftTransport(addr, rc.Logger)
	if err != nil {
		return err
	}
	s.closers = append(s.closers, trans.Close)
	s.raftAddr = string(trans.LocalAddr())
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	}

	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.DataDir, "raft.db")})
	if err != nil {
		return fmt.Errorf("open raft log %s: %w", filepath.Join(cfg.DataDir, "raft.db"), err)
	}
	s.closers = append(s.closers, store.Close)
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(cfg.DataDir, "snapshots"), 3, rc.Logger)
	if err != nil {
		return fmt.Errorf("open snapshot store: %w", err)
	}
	s.snapshots = snaps

	has, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		return fmt.Errorf("inspect raft state: %w", err)
	}
	r, err := raft.NewRaft(rc, s.fsm, store, store, snaps, trans)
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	s.raft = r
	if !has && cfg.Join {
		s.log.Info("empty member waiting to be added (hpcd operator add-member)", "id", cfg.ID, "raft", s.raftAddr)
	} else if !has {
		peers := cfg.Peers
		if len(peers) == 0 {
			peers = []Peer{{ID: cfg.ID, Addr: s.raftAddr}}
		}
		var conf raft.Configuration
		for _, p := range peers {
			conf.Servers = append(conf.Servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr)})
		}
		if err := r.BootstrapCluster(conf).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fmt.Errorf("bootstrap raft: %w", err)
		}
		s.log.Info("bootstrapped raft cluster", "members", len(peers))
	} else {
		s.log.Info("resuming raft state", "data_dir", cfg.DataDir)
	}
	return nil
}

// raftTransport binds the Raft port: TLS between members (tlsStream,
// transport.go) on a secure member, raft's plain TCP transport on an
// insecure one. A member whose certificate is not vhpc://server/ID of its
// own id fails here, before anything is written.
func (s *Server) raftTransport(addr *net.TCPAddr, logger hclog.Logger) (*raft.NetworkTransport, error) {
	cfg := s.cfg
	if cfg.Security == nil {
		trans, err := raft.NewTCPTransportWithLogger(cfg.RaftAddr, addr, 8, 10*time.Second, logger)
		if err != nil {
			return nil, &ListenError{Listener: "Raft", Addr: cfg.RaftAddr, Err: err}
		}
		return trans, nil
	}
	if err := checkMemberCert(cfg); err != nil {
		return nil, err
	}
	stream, err := newTLSStream(cfg.RaftAddr, cfg.Security.TLS)
	if err != nil {
		return nil, &ListenError{Listener: "Raft", Addr: cfg.RaftAddr, Err: err}
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: stream, MaxPool: 8, Timeout: 10 * time.Second, Logger: logger}), nil
}

// Timeouts are Raft's failure-detection timeouts. Each one left zero keeps
// raft's default (heartbeat 1s, election 1s, leader lease 500ms); the
// others are set as given. Raft needs leader lease <= heartbeat <=
// election.
type Timeouts struct {
	Heartbeat   time.Duration
	Election    time.Duration
	LeaderLease time.Duration
}

// minRaftTimeout is the shortest timeout raft.ValidateConfig accepts.
const minRaftTimeout = 5 * time.Millisecond

// set copies the timeouts that are set into rc and checks the three
// together, naming the fields and whether a value is raft's default.
func (t Timeouts) set(rc *raft.Config) error {
	type field struct {
		name string
		val  time.Duration
		dst  *time.Duration
	}
	fields := []field{
		{"Heartbeat", t.Heartbeat, &rc.HeartbeatTimeout},
		{"Election", t.Election, &rc.ElectionTimeout},
		{"LeaderLease", t.LeaderLease, &rc.LeaderLeaseTimeout},
	}
	desc := map[string]string{}
	for _, f := range fields {
		switch {
		case f.val < 0 || f.val > 0 && f.val < minRaftTimeout:
			return fmt.Errorf("raft timeouts: %s is %s; raft needs at least %s (zero keeps raft's default %s)", f.name, f.val, minRaftTimeout, *f.dst)
		case f.val == 0:
			desc[f.name] = fmt.Sprintf("%s %s (raft's default)", f.name, *f.dst)
		default:
			*f.dst = f.val
			desc[f.name] = fmt.Sprintf("%s %s", f.name, f.val)
		}
	}
	if rc.LeaderLeaseTimeout > rc.HeartbeatTimeout {
		return fmt.Errorf("raft timeouts: %s is longer than %s; set LeaderLease at most Heartbeat", desc["LeaderLease"], desc["Heartbeat"])
	}
	if rc.ElectionTimeout < rc.HeartbeatTimeout {
		return fmt.Errorf("raft timeouts: %s is shorter than %s; set Election at least Heartbeat", desc["Election"], desc["Heartbeat"])
	}
	return nil
}
