// Command hpcd is the vhpc queue master: a Raft member serving the job and
// node APIs. `hpcd dev` runs a one-member cluster on loopback (with an
// agent in the same process where the VM layer is available); `hpcd server`
// runs one member of a replicated cluster.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"vhpc/client"
	"vhpc/hpcbench/accept"
	"vhpc/imagestore"
	"vhpc/jobspec"
	"vhpc/nodeagent/agent"
	"vhpc/scheduler/core"
	"vhpc/scheduler/server"
	"vhpc/security/regtoken"
)

// usageError marks errors that exit with status 2.
type usageError struct{ error }

func main() {
	root := &cobra.Command{
		Use:           "hpcd",
		Short:         "vhpc queue master (Raft member, scheduler, job and node APIs)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(devCmd(), serverCmd(), operatorCmd(), tlsCmd(), userCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "hpcd:", err)
		var ue usageError
		if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type common struct {
	dataDir, addr, httpAddr, raftAddr, logLevel string
	heartbeat, lease                            time.Duration
	snapshotThreshold, trailingLogs             uint64
	policy, estimates, shares, schedFile        string
	preemption                                  string
	registry                                    string // --registry: the OCI registry of department images
	maxInputBytes, maxOutputBytes               int64  // --max-input-bytes, --max-output-bytes
	retention                                   time.Duration
	dataQuotas                                  string  // --data-quotas physics=100GiB,...
	acceptanceMargin                            float64 // --acceptance-margin, percent
	acceptanceRef                               string  // --acceptance-reference a.json,b.json
}

func (c *common) flags(cmd *cobra.Command, dataDir, raftAddr string) {
	f := cmd.Flags()
	f.StringVar(&c.dataDir, "data-dir", dataDir, "directory for the Raft log and snapshots")
	f.StringVar(&c.addr, "addr", "127.0.0.1:7070", "gRPC listen address (hpcsub and agents dial it)")
	f.StringVar(&c.httpAddr, "http", "127.0.0.1:7080", "HTTP listen address for /metrics and /healthz (empty disables)")
	f.StringVar(&c.raftAddr, "raft-addr", raftAddr, "Raft listen address")
	f.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	f.DurationVar(&c.heartbeat, "heartbeat", 2*time.Second, "agent heartbeat interval")
	f.DurationVar(&c.lease, "lease", 15*time.Second, "how long a silent node keeps its allocations before it is marked down")
	f.Uint64Var(&c.snapshotThreshold, "snapshot-threshold", 8192, "Raft log entries between snapshots")
	f.Uint64Var(&c.trailingLogs, "trailing-logs", 10240, "Raft log entries kept after a snapshot (a follower further behind gets the snapshot)")
	f.StringVar(&c.schedFile, "scheduler-config", "", "YAML file with policy, estimates, reservations, shares, quotas and partitions (flags below override it)")
	f.StringVar(&c.policy, "policy", "", "scheduling policy: "+strings.Join(core.Policies(), ", ")+" (default: EASY++ with each user's predicted runtimes; see scheduler/core/README.md)")
	f.StringVar(&c.estimates, "estimates", "", "runtime estimates that shape backfill: request (the walltime) or predicted (each user's history; the default policy's)")
	f.StringVar(&c.shares, "shares", "", "fair-share targets, e.g. physics=2,chemistry=1 (others: 1)")
	f.StringVar(&c.preemption, "preemption", "", "off (the default) or requeue: a job that cannot start stops and requeues running jobs of a lower QOS (low < normal < high)")
	f.Int64Var(&c.maxInputBytes, "max-input-bytes", server.DefaultMaxDataBytes, "largest total of one job's stageIn files, in bytes")
	f.Int64Var(&c.maxOutputBytes, "max-output-bytes", server.DefaultMaxDataBytes, "largest total of the stageOut files one task uploads, in bytes (over it, the first files are kept and the job fails saying so)")
	f.DurationVar(&c.retention, "retention", server.DefaultRetention, "how long a finished job's stageIn and stageOut files stay in the store before they are deleted")
	f.StringVar(&c.dataQuotas, "data-quotas", "", "bytes of job files each department may keep in the store, e.g. physics=100GiB,chemistry=1TiB (others: no quota)")
	f.Float64Var(&c.acceptanceMargin, "acceptance-margin", accept.DefaultMarginPercent, "percent below its model's median an acceptance result may fall and pass (hpcd operator node-accept); more than 0, less than 100")
	f.StringVar(&c.acceptanceRef, "acceptance-reference", "", "hpcbench --json reports of known-good machines, comma-separated: the values a node or GPU is compared with when it is the only one of its model")
	f.StringVar(&c.registry, "registry", "", "URL of the cluster's OCI registry for department images and job files, e.g. http://registry.example:5000 (hpc image push/inspect use it; hpcd dev starts one on loopback when unset)")
}

// schedulerConfig builds the policy: core defaults, then the
// --scheduler-config file, then the flags.
func (c *common) schedulerConfig() (core.Config, error) {
	cfg := core.DefaultConfig()
	if c.schedFile != "" {
		if err := loadSchedulerFile(c.schedFile, &cfg); err != nil {
			return cfg, usageError{err}
		}
	}
	if c.policy != "" {
		cfg.Policy = c.policy
	}
	if c.estimates != "" {
		cfg.Estimate = c.estimates
	}
	if c.preemption != "" {
		cfg.Preemption = c.preemption
	}
	for _, part := range strings.Split(c.shares, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		dept, w, ok := strings.Cut(part, "=")
		v, err := strconv.ParseFloat(w, 64)
		if !ok || dept == "" || err != nil || v <= 0 || v > 1e6 {
			return cfg, usageError{fmt.Errorf("--shares entry %q: want department=weight with a weight above 0", part)}
		}
		if cfg.Shares == nil {
			cfg.Shares = map[string]float64{}
		}
		cfg.Shares[dept] = v
	}
	// The one check hpcsim runs too (core.Config.Validate).
	if err := cfg.Validate(); err != nil {
		return cfg, usageError{fmt.Errorf("scheduler configuration: %w", err)}
	}
	return cfg, nil
}

func (c *common) logger() (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", c.logLevel)}
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})), nil
}

func (c *common) config(id string, peers []server.Peer) (server.Config, error) {
	log, err := c.logger()
	if err != nil {
		return server.Config{}, err
	}
	if c.dataDir == "" {
		return server.Config{}, usageError{errors.New("--data-dir is required")}
	}
	sched, err := c.schedulerConfig()
	if err != nil {
		return server.Config{}, err
	}
	quotas, err := parseDataQuotas(c.dataQuotas)
	if err != nil {
		return server.Config{}, usageError{err}
	}
	if c.maxInputBytes < 0 || c.maxOutputBytes < 0 || c.retention < 0 {
		return server.Config{}, usageError{errors.New("--max-input-bytes, --max-output-bytes and --retention must not be negative (0: the default)")}
	}
	margin, ref, err := c.acceptanceConfig()
	if err != nil {
		return server.Config{}, usageError{err}
	}
	return server.Config{
		AcceptanceMarginPercent: margin, AcceptanceReference: ref,
		Scheduler: sched,
		ID:        id, DataDir: c.dataDir, GRPCAddr: c.addr, HTTPAddr: c.httpAddr, RaftAddr: c.raftAddr,
		Peers: peers, HeartbeatInterval: c.heartbeat, Lease: c.lease, Logger: log,
		SnapshotThreshold: c.snapshotThreshold, TrailingLogs: c.trailingLogs, ImageRegistry: c.registry,
		MaxInputBytes: c.maxInputBytes, MaxOutputBytes: c.maxOutputBytes, Retention: c.retention, DataQuotas: quotas,
	}, nil
}

func devCmd() *cobra.Command {
	var (
		c          common
		noAgent    bool
		stateDir   string
		hypervisor string
		guestBin   string
		sec        secFlags
		credsOut   string
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "run a one-member cluster on loopback with an agent for this host in the same process",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.config("dev", nil)
			if err != nil {
				return err
			}
			node, err := os.Hostname()
			if err != nil {
				return fmt.Errorf("node name: %w", err)
			}
			// Security by default: a CA, certificates and the local
			// user's credential on first start (secure.go).
			agentCreds, opCreds := client.Insecure(), client.Insecure()
			var onReady func(context.Context, *server.Server) error
			if sec.insecure {
				cfg.Insecure = true
			} else {
				ds, err := setupDevSecurity(c.dataDir, sec.pkiDir, credsOut, node, cfg.Logger)
				if err != nil {
					return err
				}
				sec.pkiDir = ds.pkiDir
				if err := sec.apply(&cfg, "dev"); err != nil {
					return err
				}
				agentCreds, opCreds = ds.agent, ds.operator
				onReady = func(ctx context.Context, s *server.Server) error {
					if err := addDevUser(ctx, s, ds.user); err != nil {
						return fmt.Errorf("dev: add the local user %s: %w", ds.user, err)
					}
					return serveLogin(ctx, s, ds.pkiDir, filepath.Join(c.dataDir, "login.sock"), cfg.Logger)
				}
			}
			if cfg.ImageRegistry == "" {
				var tokens *imagestore.TokenAuth
				if iss := cfg.RegistryTokens; iss != nil {
					tokens = &imagestore.TokenAuth{Service: iss.Service(), Issuer: iss.Name(), RootCertBundle: filepath.Join(sec.pkiDir, regtoken.CertFile)}
				}
				reg, err := startDevRegistry(c.dataDir, tokens, cfg.Logger) // registry.go
				if err != nil {
					return err
				}
				defer reg.Close()
				cfg.ImageRegistry = reg.URL
			}
			if noAgent {
				return serve(cfg, onReady, nil)
			}
			if stateDir == "" {
				// QEMU runs as its own user and must traverse to the job
				// directories under the data dir.
				if err := os.MkdirAll(c.dataDir, 0o755); err != nil {
					return fmt.Errorf("data dir: %w", err)
				}
				if err := os.Chmod(c.dataDir, 0o755); err != nil {
					return fmt.Errorf("data dir: %w", err)
				}
				stateDir = filepath.Join(c.dataDir, "agent")
			}
			// One registry: the master's /metrics also shows this host's GPUs.
			cfg.Registry = prometheus.NewRegistry()
			return serve(cfg, onReady, func(ctx context.Context, s *server.Server, registered func()) error {
				return agent.RunLocal(ctx, agent.LocalOptions{
					Addrs: []string{s.GRPCAddr()}, Name: node, Credentials: agentCreds, StateDir: stateDir, Hypervisor: hypervisor,
					LibvirtURI: "qemu:///system", Partition: server.DefaultPartition, Logger: cfg.Logger,
					Registry: cfg.Registry, GuestBinary: guestBin,
					Registered: func() {
						registered()
						// The runner's image store: runner.Config.ImageDir's default.
						go publishTiny(ctx, s, opCreds, cfg.ImageRegistry, filepath.Join(stateDir, "images"), guestBin, cfg.Logger) // registry.go
					},
				})
			})
		},
	}
	c.flags(cmd, "/tmp/vhpc", "127.0.0.1:7100")
	cmd.Flags().BoolVar(&noAgent, "no-agent", false, "run the master only (no guests on this host)")
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "agent state: job dirs, scratch disks, images (default DATA-DIR/agent)")
	cmd.Flags().StringVar(&hypervisor, "hypervisor", "auto", "auto (probe), kvm or tcg")
	cmd.Flags().StringVar(&guestBin, "guest", "", "static hpc-guest binary for the guest image (default: next to hpcd, or on $PATH)")
	cmd.Flags().StringVar(&credsOut, "credentials-out", "", "where the local user's (and the operator's) credential goes (default ~/.config/vhpc of each; a directory of another cluster is left alone)")
	sec.register(cmd, true)
	return cmd
}

func serverCmd() *cobra.Command {
	var (
		c     common
		id    string
		peers string
		join  bool
		sec   secFlags
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "run one member of a replicated cluster",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if id == "" {
				return usageError{errors.New("--id is required")}
			}
			ps, err := parsePeers(peers)
			if err != nil {
				return usageError{err}
			}
			if join && len(ps) > 0 {
				return usageError{errors.New("--join and --peers exclude each other: a joining member learns its peers from the cluster")}
			}
			cfg, err := c.config(id, ps)
			if err != nil {
				return err
			}
			cfg.Join = join
			if err := sec.apply(&cfg, id); err != nil {
				return err
			}
			var onReady func(context.Context, *server.Server) error
			if sec.loginSocket != "" && !sec.insecure {
				onReady = func(ctx context.Context, s *server.Server) error {
					return serveLogin(ctx, s, sec.pkiDir, sec.loginSocket, cfg.Logger)
				}
			}
			return serve(cfg, onReady, nil)
		},
	}
	c.flags(cmd, "", "127.0.0.1:7100")
	cmd.Flags().StringVar(&id, "id", "", "this member's id (unique in the cluster)")
	cmd.Flags().StringVar(&peers, "peers", "", "initial members as id=raftaddr,... (including this one); empty: this member alone")
	cmd.Flags().BoolVar(&join, "join", false, "start empty and wait for `hpcd operator add-member` instead of bootstrapping")
	sec.register(cmd, false)
	return cmd
}

// withFlagHint names the flag that sets the address a listener could not
// bind, so "address already in use" says what to change.
func withFlagHint(err error) error {
	var le *server.ListenError
	if !errors.As(err, &le) {
		return err
	}
	flag := map[string]string{"gRPC": "--addr", "HTTP": "--http", "Raft": "--raft-addr"}[le.Listener]
	if flag == "" {
		return err
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		hint := ""
		if le.Listener == "HTTP" {
			hint = ", or --http '' to serve no /metrics"
		}
		return fmt.Errorf("%w: another process (another hpcd member?) holds %s; give this one its own address with %s%s", err, le.Addr, flag, hint)
	}
	return fmt.Errorf("%w (the address comes from %s)", err, flag)
}

// parsePeers reads "s1=127.0.0.1:7101,s2=127.0.0.1:7102".
func parsePeers(s string) ([]server.Peer, error) {
	var out []server.Peer
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, addr, ok := strings.Cut(part, "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("--peers entry %q: want id=host:port", part)
		}
		if seen[id] {
			return nil, fmt.Errorf("--peers: member id %q appears twice", id)
		}
		seen[id] = true
		out = append(out, server.Peer{ID: id, Addr: addr})
	}
	return out, nil
}

// serve runs the master, and beside it (once it leads) the in-process
// agent when one is given. An agent that fails before the master accepted
// its node (no libvirt, no hpc-guest, a refused node) stops hpcd with its
// error: `hpcd dev` must not look healthy while no job can run. An agent
// that stops later is logged once and recorded (Server.SetLocalAgentErr),
// so pending reasons and `hpcsub nodes` show its error, and the master
// keeps serving.
//
// onReady, when given, runs once the member first leads (hpcd dev adds its
// local user; --login-socket starts the login socket); its error stops hpcd.
func serve(cfg server.Config, onReady func(context.Context, *server.Server) error, runAgent func(ctx context.Context, s *server.Server, registered func()) error) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := server.New(cfg)
	if err != nil {
		return withFlagHint(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Run(ctx) }()
	if onReady != nil {
		run := served
		served = make(chan error, 1)
		readyErr := make(chan error, 1)
		go func() {
			if s.WaitReady(ctx) != nil {
				return
			}
			if err := onReady(ctx, s); err != nil {
				readyErr <- err
				s.Close()
			}
		}()
		go func() {
			err := <-run
			select {
			case e := <-readyErr:
				err = e
			default:
			}
			served <- err
		}()
	}
	if runAgent == nil {
		return <-served
	}
	agentDone := make(chan error, 1)
	registered := make(chan struct{})
	go func() {
		if err := s.WaitReady(ctx); err != nil {
			agentDone <- nil
			return
		}
		var once sync.Once
		agentDone <- runAgent(ctx, s, func() { once.Do(func() { close(registered) }) })
	}()
	select {
	case err := <-served:
		return err
	case err := <-agentDone:
		if ctx.Err() != nil {
			return <-served
		}
		if err == nil {
			err = errors.New("it returned without an error")
		}
		select {
		case <-registered:
		default:
			s.Close()
			<-served
			return fmt.Errorf("the in-process agent could not start, so no job could run on this host: %w (fix that, or run hpcd dev --no-agent for a master without guests)", err)
		}
		cfg.Logger.Error("in-process agent stopped; jobs will not run on this host", "err", err)
		s.SetLocalAgentErr(err)
		return <-served
	}
}

// parseDataQuotas reads --data-quotas: "dept=SIZE,dept=SIZE" with sizes as
// in job files (100GiB, 1TiB, bytes).
func parseDataQuotas(s string) (map[string]int64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]int64{}
	for _, part := range strings.Split(s, ",") {
		dept, size, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || dept == "" {
			return nil, fmt.Errorf("--data-quotas: %q: want department=SIZE, e.g. physics=100GiB", part)
		}
		if _, dup := out[dept]; dup {
			return nil, fmt.Errorf("--data-quotas: department %s twice", dept)
		}
		q, err := jobspec.ParseQuantity(size)
		if err != nil {
			return nil, fmt.Errorf("--data-quotas: %s: %w", dept, err)
		}
		out[dept] = int64(q)
	}
	return out, nil
}
