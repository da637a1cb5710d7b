// Package server is hpcd's queue master: Raft wiring, the gRPC JobService
// and NodeService, the leader's scheduling loop and node lease monitor,
// and the HTTP endpoints (/metrics, /healthz). cmd/hpcd builds a Server
// from flags; tests build several on loopback.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"vhpc/api"
	"vhpc/hpcbench/accept"
	"vhpc/scheduler/core"
	"vhpc/scheduler/fsm"
	"vhpc/scheduler/model"
	"vhpc/security/regtoken"
)

// Config is everything a Server needs; cmd/hpcd fills it from flags.
type Config struct {
	ID       string // Raft server id, unique in the cluster
	DataDir  string // Raft log, snapshots
	GRPCAddr string // e.g. 127.0.0.1:7070; port 0 picks a free port
	HTTPAddr string // /metrics and /healthz; "" disables
	RaftAddr string // e.g. 127.0.0.1:7100
	// Peers bootstraps a new cluster; empty means a cluster of this member alone.
	Peers []Peer
	// Join starts a member with no state that waits to be added to an
	// existing cluster instead of bootstrapping one.
	Join bool
	// Scheduler is the policy the leader's loop runs.
	Scheduler core.Config
	// HeartbeatInterval is how often agents heartbeat; Lease is how long a
	// node may stay silent before the leader marks it down.
	HeartbeatInterval time.Duration
	Lease             time.Duration
	SnapshotThreshold uint64
	TrailingLogs      uint64
	Timeouts          Timeouts
	Logger            *slog.Logger
	Registry          *prometheus.Registry // nil: a new one
	RaftLogOutput     io.Writer            // raft's own log; nil: stderr
	// Now is the clock (tests may inject one); nil: time.Now.
	Now func() time.Time
	// ImageRegistry is the URL of the cluster's OCI registry
	// (hpcd --registry); ImageService.List tells clients. "" if none.
	ImageRegistry string
	// RegistryTokens signs the registry's tokens (regtokens.go): for
	// agents per allocation (NodeService.RegistryToken), users per
	// department (DataStore) and the master's own calls. nil: the
	// registry is open and nobody gets a token.
	RegistryTokens *regtoken.Issuer
	// MaxInputBytes bounds the stageIn files of one job, MaxOutputBytes the
	// stageOut files one allocation uploads (0: DefaultMaxDataBytes).
	MaxInputBytes  int64
	MaxOutputBytes int64
	// Retention is how long a finished job's file sets stay in the store
	// before the leader deletes them (0: DefaultRetention).
	Retention time.Duration
	// RetentionInterval is how often the leader looks for expired file
	// sets (0: a minute).
	RetentionInterval time.Duration
	// DataQuotas bounds the bytes of file sets each department keeps in
	// the store (inputs and outputs of jobs not yet expired, each set
	// counted once); a department without an entry has no quota.
	DataQuotas map[string]int64
	// Security serves mTLS with the ACL table and the audit log
	// (security.go). Without it New refuses to start unless Insecure asks
	// for a plaintext member without identities (tests, `hpcd dev
	// --insecure`).
	Security *Security
	Insecure bool
	// AcceptanceMarginPercent is how far below its model's median a node
	// or GPU may measure in an acceptance run and still pass (hpcd
	// --acceptance-margin; 0: accept.DefaultMarginPercent). New refuses a
	// value outside (0, 100).
	AcceptanceMarginPercent float64
	// AcceptanceReference is each model's known-good values
	// (--acceptance-reference), compared with when no other device of the
	// model has results; nil: such a device is accepted.
	AcceptanceReference accept.Reference
}

// DefaultRetention keeps a finished job's file sets for 14 days.
const DefaultRetention = 14 * 24 * time.Hour

// DefaultMaxDataBytes is the default limit on a job's stageIn files and on
// the stageOut files of one allocation: 10 GiB.
const DefaultMaxDataBytes = 10 << 30

func (c *Config) setDefaults() {
	if c.ID == "" {
		c.ID = "hpcd-1"
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 2 * time.Second
	}
	if c.Lease == 0 {
		c.Lease = 15 * time.Second
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 10240
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	if c.RaftLogOutput == nil {
		c.RaftLogOutput = os.Stderr
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxInputBytes <= 0 {
		c.MaxInputBytes = DefaultMaxDataBytes
	}
	if c.MaxOutputBytes <= 0 {
		c.MaxOutputBytes = DefaultMaxDataBytes
	}
	if c.Retention <= 0 {
		c.Retention = DefaultRetention
	}
	if c.RetentionInterval <= 0 {
		c.RetentionInterval = time.Minute
	}
	if c.Scheduler.Policy == "" {
		c.Scheduler = core.DefaultConfig()
	}
	if c.AcceptanceMarginPercent == 0 {
		c.AcceptanceMarginPercent = accept.DefaultMarginPercent
	}
}

// Server is one hpcd member.
type Server struct {
	cfg      Config
	log      *slog.Logger
	fsm      *fsm.FSM
	raft     *raft.Raft
	raftAddr string
	// snapshots is Raft's snapshot store (operator backups read it).
	snapshots *raft.FileSnapshotStore
	metrics   *metrics
	submits   chan *pendingSubmit
	fwdMu     sync.Mutex
	fwdConns  map[string]*grpc.ClientConn

	grpc     *grpc.Server
	grpcLis  net.Listener
	http     *http.Server
	httpLis  net.Listener
	health   *health.Server
	closers  []func() error
	stopOnce sync.Once
	stop     chan struct{}
	wg       sync.WaitGroup

	// leader-only, in memory: why each job is pending, and when each node
	// last heartbeated. A new leader starts both afresh.
	mu        sync.Mutex
	ready     chan struct{} // closed once this member leads and has passed its barrier
	isReady   bool
	pending   map[model.JobID]string
	heartbeat map[string]time.Time
	// images is which catalog images each node's cache holds (leader-local,
	// from heartbeats), for the scheduler's locality term.
	images imageCaches
	// localAgentErr is why the in-process agent stopped (SetLocalAgentErr).
	localAgentErr error
	// sec is nil on an insecure member (security.go).
	sec *security
}

// New opens the data dir, starts Raft and binds the listeners. Call Run to
// serve and Close to stop.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if cfg.Security == nil && !cfg.Insecure {
		return nil, ErrNoSecurity
	}
	if err := accept.ValidateMargin(cfg.AcceptanceMarginPercent); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		fsm:       fsm.New(cfg.Logger),
		submits:   make(chan *pendingSubmit, 4096),
		fwdConns:  map[string]*grpc.ClientConn{},
		stop:      make(chan struct{}),
		pending:   map[model.JobID]string{},
		heartbeat: map[string]time.Time{},
		ready:     make(chan struct{}),
	}
	// Bind the API listeners before Raft opens its data dir, so a member
	// whose address is taken fails without writing anything.
	lis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return nil, &ListenError{Listener: "gRPC", Addr: cfg.GRPCAddr, Err: err}
	}
	var hl net.Listener
	if cfg.HTTPAddr != "" {
		if hl, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			_ = lis.Close()
			return nil, &ListenError{Listener: "HTTP", Addr: cfg.HTTPAddr, Err: err}
		}
	}
	s.metrics = newMetrics(cfg.Registry, s)
	if err := s.openRaft(); err != nil {
		_ = lis.Close()
		if hl != nil {
			_ = hl.Close()
		}
		s.closeAll()
		return nil, err
	}
	secOpts, err := s.setupSecurity() // security.go
	if err != nil {
		_ = lis.Close()
		if hl != nil {
			_ = hl.Close()
		}
		s.closeAll()
		return nil, err
	}
	s.grpcLis = lis
	s.grpc = grpc.NewServer(append([]grpc.ServerOption{grpc.MaxRecvMsgSize(4 << 20)}, secOpts...)...)
	api.RegisterJobServiceServer(s.grpc, &jobService{s: s})
	api.RegisterNodeServiceServer(s.grpc, &nodeService{s: s})
	api.RegisterClusterServiceServer(s.grpc, &clusterService{s: s})
	api.RegisterImageServiceServer(s.grpc, &filteredImages{imageService: &imageService{s: s}})
	s.registerAuth(s.grpc)
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.grpc, s.health)
	if s.sec == nil {
		reflection.Register(s.grpc) // not behind the ACL table: insecure members only
	}
	if hl != nil {
		s.httpLis = hl
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{Registry: cfg.Registry}))
		mux.HandleFunc("/healthz", s.healthz)
		s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	}
	return s, nil
}

// GRPCAddr is the address the gRPC server listens on.
func (s *Server) GRPCAddr() string { return s.grpcLis.Addr().String() }

// HTTPAddr is the address of /metrics and /healthz, or "".
func (s *Server) HTTPAddr() string {
	if s.httpLis == nil {
		return ""
	}
	return s.httpLis.Addr().String()
}

// Raft exposes the Raft node to the operator commands and tests.
func (s *Server) Raft() *raft.Raft { return s.raft }

// FSM exposes the state machine (read-only use: snapshots, change signals).
func (s *Server) FSM() *fsm.FSM { return s.fsm }

// Run serves until ctx ends or Close is called.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 2)
	s.wg.Add(4)
	go func() { defer s.wg.Done(); errc <- s.grpc.Serve(s.grpcLis) }()
	go func() { defer s.wg.Done(); s.announceLoop() }()
	go func() { defer s.wg.Done(); s.submitLoop() }()
	go func() { defer s.wg.Done(); s.leadershipLoop() }()
	if s.http != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.http.Serve(s.httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("HTTP server: %w", err)
			}
		}()
	}
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.log.Info("hpcd serving", "id", s.cfg.ID, "grpc", s.GRPCAddr(), "http", s.HTTPAddr(), "raft", s.raftAddr)
	select {
	case <-ctx.Done():
		s.Close()
		return nil
	case <-s.stop:
		return nil
	case err := <-errc:
		s.Close()
		if err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return err
		}
		return nil
	}
}

// Close stops serving, shuts Raft down and closes the stores. It is safe
// to call more than once.
func (s *Server) Close() {
	s.stopOnce.Do(func() {
		close(s.stop)
		if s.health != nil {
			s.health.Shutdown()
		}
		if s.grpc != nil {
			stopped := make(chan struct{})
			go func() { s.grpc.GracefulStop(); close(stopped) }()
			select {
			case <-stopped:
			case <-time.After(2 * time.Second):
				s.grpc.Stop()
			}
		}
		if s.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = s.http.Shutdown(ctx)
			cancel()
		}
		s.wg.Wait()
		s.closeForwarders()
		s.closeAll()
	})
}

func (s *Server) closeAll() {
	if s.raft != nil {
		if err := s.raft.Shutdown().Error(); err != nil {
			s.log.Warn("raft shutdown", "err", err)
		}
	}
	for i := len(s.closers) - 1; i >= 0; i-- {
		if err := s.closers[i](); err != nil {
			s.log.Warn("close", "err", err)
		}
	}
	s.closers = nil
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	leader, id := s.raft.LeaderWithID()
	if leader == "" {
		http.Error(w, "no raft leader", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintf(w, "ok: member %s, leader %s (%s), state %s\n", s.cfg.ID, id, leader, s.raft.State())
}

// isLeader reports whether this member leads the cluster now and has
// applied every entry committed before its term (its barrier passed), so
// its state holds every acknowledged write.
func (s *Server) isLeader() bool {
	s.mu.Lock()
	ready := s.isReady
	s.mu.Unlock()
	return ready && s.raft.State() == raft.Leader
}

// setReady records whether this member is a leader past its barrier.
func (s *Server) setReady(ready bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ready == s.isReady {
		return
	}
	s.isReady = ready
	if ready {
		close(s.ready)
	} else {
		s.ready = make(chan struct{})
	}
}

// WaitReady blocks until this member leads and serves linearizable
// requests. Tests and `hpcd dev` use it; followers never become ready.
func (s *Server) WaitReady(ctx context.Context) error {
	s.mu.Lock()
	ch := s.ready
	s.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("member %s is not a ready leader: %w", s.cfg.ID, ctx.Err())
	}
}

// apply proposes one log entry and waits for its commit and result.
func (s *Server) apply(ctx context.Context, t fsm.EntryType, payload any) (any, error) {
	data, err := fsm.Encode(t, payload)
	if err != nil {
		return nil, err
	}
	// raft.Apply reads a timeout <= 0 as "no timeout": a caller whose
	// time is up must get its context's error, not an unbounded wait
	// (nor a commit it no longer waits for).
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("commit %s: %w", t, err)
	}
	timeout := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		if timeout = time.Until(dl); timeout <= 0 {
			return nil, fmt.Errorf("commit %s: %w", t, context.DeadlineExceeded)
		}
	}
	start := time.Now()
	f := s.raft.Apply(data, timeout)
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("commit %s: %w", t, err)
	}
	s.metrics.commit.Observe(time.Since(start).Seconds())
	if err, ok := f.Response().(error); ok {
		return nil, err
	}
	return f.Response(), nil
}

// WaitForLeader blocks until the cluster has a leader this member knows of
// and returns its id. It waits on Raft's leader observations, not a timer.
func (s *Server) WaitForLeader(ctx context.Context) (string, error) {
	ch := make(chan raft.Observation, 8)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	s.raft.RegisterObserver(obs)
	defer s.raft.DeregisterObserver(obs)
	for {
		if addr, id := s.raft.LeaderWithID(); addr != "" {
			return string(id), nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return "", fmt.Errorf("no raft leader: %w", ctx.Err())
		}
	}
}
