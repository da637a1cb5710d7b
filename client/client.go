// Package client dials vhpc masters for hpcsub, hpc-agent and tests. It
// holds one connection per address and sends each call to the member that
// answered last, failing over across the list with backoff when a member is
// down or not the leader. Every mutating call carries a client token set by
// the caller, so a retry after a timeout never creates a second job.
package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vhpc/api"
)

// Client is a failover-aware connection to a vhpc cluster.
type Client struct {
	addrs []string
	conns []*grpc.ClientConn
	// refused[i] is whether the latest dial of addrs[i] was refused
	// (nothing listens there), as the dialer saw it.
	refused []atomic.Bool

	mu      sync.Mutex
	current int
	// Backoff is the first wait after every member failed once; it doubles
	// up to MaxBackoff. Attempts bounds rounds over the address list.
	Backoff    time.Duration
	MaxBackoff time.Duration
	Attempts   int
	// AttemptTimeout bounds one unary call to one member, so a member cut
	// off by the network does not hold the caller; default 20s.
	AttemptTimeout time.Duration
	// creds is what the connections dial with.
	creds *Credentials
	// FailWhenRefused makes a call return a *NoMasterError at once when
	// every address refused the connection in a round: nothing listens, so
	// waiting helps nobody. The CLIs (hpcsub, hpcd operator) set it; agents
	// leave it off and wait for a master to come up.
	FailWhenRefused bool
}

// NoMasterError says that no master listens at any of the addresses. It
// does not wrap the gRPC status, so CLIs print its advice, not gRPC text.
type NoMasterError struct {
	Addrs []string
}

// Error names the addresses and what to do.
func (e *NoMasterError) Error() string {
	return fmt.Sprintf("no master at %s: is hpcd running? start one with `hpcd dev`, or set --addr/HPC_ADDR", strings.Join(e.Addrs, ", "))
}

// ParseAddrs splits a comma-separated address list, dropping blanks.
func ParseAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// Option adjusts a Client in New.
type Option func(*Client)

// WithCredentials dials with creds instead of DefaultCredentials().
func WithCredentials(creds *Credentials) Option { return func(c *Client) { c.creds = creds } }

// New prepares connections to every address; nothing is dialed until the
// first call. Without WithCredentials it dials with DefaultCredentials():
// the credentials directory of the environment ($VHPC_CREDENTIALS or
// ~/.config/vhpc), or plaintext when there is none.
func New(addrs []string, opts ...Option) (*Client, error) {
	if len(addrs) == 0 {
		return nil, errors.New("no master address: set --addr or HPC_ADDR (e.g. 127.0.0.1:7070)")
	}
	c := &Client{addrs: addrs, Backoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second, Attempts: 8, AttemptTimeout: 20 * time.Second}
	for _, o := range opts {
		o(c)
	}
	if c.creds == nil {
		creds, err := DefaultCredentials()
		if err != nil {
			return nil, err
		}
		c.creds = creds
	}
	c.refused = make([]atomic.Bool, len(addrs))
	for i, a := range addrs {
		conn, err := grpc.NewClient(a, grpc.WithTransportCredentials(c.creds.Transport()), grpc.WithContextDialer(c.dialer(i)))
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("master address %q: %w", a, err)
		}
		c.conns = append(c.conns, conn)
	}
	return c, nil
}

// dialer dials addrs[i] over TCP and records whether it was refused.
func (c *Client) dialer(i int) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		c.refused[i].Store(errors.Is(err, syscall.ECONNREFUSED))
		return conn, err
	}
}

// allRefused reports whether the latest dial of every address was refused.
func (c *Client) allRefused() bool {
	for i := range c.refused {
		if !c.refused[i].Load() {
			return false
		}
	}
	return true
}

// Close closes every connection.
func (c *Client) Close() {
	for _, conn := range c.conns {
		_ = conn.Close()
	}
}

// Credentials are what the client dials with.
func (c *Client) Credentials() *Credentials { return c.creds }

// Addrs are the configured master addresses.
func (c *Client) Addrs() []string { return c.addrs }

// retryable reports whether another member may answer where this one did not.
func retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted:
		return true
	}
	return false
}

// Do runs call against the members in turn until one answers with anything
// other than Unavailable (or DeadlineExceeded of that attempt), backing off
// between rounds. The last member that answered is tried first next time.
// With FailWhenRefused, a round in which every address refused the
// connection ends the call with a *NoMasterError.
func (c *Client) Do(ctx context.Context, call func(ctx context.Context, conn *grpc.ClientConn) error) error {
	return c.do(ctx, c.AttemptTimeout, call)
}

// Stream is Do for long-lived streams: no per-attempt deadline, so the
// call runs until it returns or ctx ends.
func (c *Client) Stream(ctx context.Context, call func(ctx context.Context, conn *grpc.ClientConn) error) error {
	return c.do(ctx, 0, call)
}

func (c *Client) do(ctx context.Context, perAttempt time.Duration, call func(ctx context.Context, conn *grpc.ClientConn) error) error {
	wait := c.Backoff
	var last error
	for round := 0; round < c.Attempts; round++ {
		c.mu.Lock()
		start := c.current
		c.mu.Unlock()
		for i := range c.conns {
			idx := (start + i) % len(c.conns)
			actx, cancel := context.WithCancel(ctx)
			if perAttempt > 0 {
				actx, cancel = context.WithTimeout(ctx, perAttempt)
			}
			err := call(actx, c.conns[idx])
			cancel()
			if err == nil || !retryable(err) || ctx.Err() != nil {
				if err == nil {
					c.mu.Lock()
					c.current = idx
					c.mu.Unlock()
				}
				return err
			}
			last = fmt.Errorf("%s: %w", c.addrs[idx], err)
		}
		if c.FailWhenRefused && c.allRefused() {
			return &NoMasterError{Addrs: c.addrs}
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), last)
		case <-time.After(wait):
		}
		wait = min(2*wait, c.MaxBackoff)
	}
	if !c.creds.Secure() {
		return fmt.Errorf("no master answered after %d rounds (dialed plaintext: no credentials in %s; a master that serves TLS needs them: run `hpcsub login` or set %s): %w", c.Attempts, c.creds.Dir, CredentialsEnv, last)
	}
	return fmt.Errorf("no master answered after %d rounds: %w", c.Attempts, last)
}

// Jobs returns a JobService client bound to conn (for use inside Do).
func Jobs(conn *grpc.ClientConn) api.JobServiceClient { return api.NewJobServiceClient(conn) }

// Nodes returns a NodeService client bound to conn (for use inside Do).
func Nodes(conn *grpc.ClientConn) api.NodeServiceClient { return api.NewNodeServiceClient(conn) }
