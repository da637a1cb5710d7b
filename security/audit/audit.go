// Package audit is the audit log of the master: one JSON object per line
// for every mutating RPC and every refused RPC, with who, what, on what,
// the outcome and why; each line is written before the call returns and
// fsync'd by a group commit right behind it. `hpcd operator audit --since`
// reads it (through AuthService.ReadAudit, with Read).
package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"vhpc/security/authz"
)

// Outcome of an audited call.
type Outcome string

const (
	Allow Outcome = "allow" // allowed and the handler succeeded
	Deny  Outcome = "deny"  // refused by authz (Unauthenticated, PermissionDenied, ...)
	Error Outcome = "error" // allowed, and the handler failed
)

// Record is one line of the audit log.
type Record struct {
	Time     time.Time `json:"time"`
	Identity string    `json:"identity"` // vhpc://role/name, or "" for anonymous
	Role     string    `json:"role,omitempty"`
	Name     string    `json:"name,omitempty"`
	Via      string    `json:"via,omitempty"` // the member that forwarded the call
	Method   string    `json:"method"`
	Target   string    `json:"target,omitempty"`
	Outcome  Outcome   `json:"outcome"`
	Code     string    `json:"code,omitempty"`
	Reason   string    `json:"reason,omitempty"`
}

// Options tune a Log; the zero value uses time.Now and slog.Default().
type Options struct {
	Now    func() time.Time
	Logger *slog.Logger
	// SyncEach makes every Append wait for its fsync (by default the
	// fsync follows the call; see Append).
	SyncEach bool
}

// Log appends records to one file. Safe for concurrent use; scheduler/
// server opens one per member (the log is local, like the member's own
// view of the calls it answered).
type Log struct {
	mu   sync.Mutex
	f    *os.File
	path string
	now  func() time.Time
	log  *slog.Logger

	// Group commit: written counts appended lines, synced those covered by
	// a finished fsync; one syncLoop at a time fsyncs every line written
	// before each fsync started; waiters wait on done.
	written, synced uint64
	syncing         bool // a syncLoop runs
	syncErr         error
	syncEach        bool
	closed          bool
	done            *sync.Cond
}

// Open opens (creating with mode 0600) the audit log at path for
// appending.
func Open(path string, opt Options) (*Log, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	l := &Log{f: f, path: path, now: opt.Now, log: opt.Logger, syncEach: opt.SyncEach}
	l.done = sync.NewCond(&l.mu)
	if l.now == nil {
		l.now = time.Now
	}
	if l.log == nil {
		l.log = slog.Default()
	}
	return l, nil
}

// Append writes r as one line (write(2): once it returns, a crash of
// the process loses nothing) and has it fsync'd by the group commit; a
// zero Time is set to now. With Options.SyncEach (or for Sync's callers)
// it waits for the fsync; otherwise the fsync runs behind the call, one at
// a time for every line written before it started, so a busy member pays
// one fsync per batch and callers do not wait on the disk twice (Raft
// already waits once). What a power loss can take is the lines of the one
// fsync in flight.
func (l *Log) Append(r Record) error {
	if r.Time.IsZero() {
		r.Time = l.now().UTC()
	}
	line, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("audit record: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("append to audit log %s: closed", l.path)
	}
	if _, err := l.f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("append to audit log %s: %w", l.path, err)
	}
	l.written++
	if !l.syncing {
		l.syncing = true
		go l.syncLoop()
	}
	if l.syncEach {
		return l.waitSynced(l.written)
	}
	return nil
}

// Sync waits until every line appended so far is fsync'd.
func (l *Log) Sync() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waitSynced(l.written)
}

// waitSynced waits (l.mu held) until line n is fsync'd.
func (l *Log) waitSynced(n uint64) error {
	for l.synced < n {
		if l.syncErr != nil {
			return fmt.Errorf("sync audit log %s: %w", l.path, l.syncErr)
		}
		l.done.Wait()
	}
	return nil
}

// syncLoop fsyncs until nothing is left unsynced, then ends (Append
// starts it again).
func (l *Log) syncLoop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.synced < l.written && !l.closed {
		upTo := l.written
		l.mu.Unlock()
		err := l.f.Sync()
		l.mu.Lock()
		if err != nil {
			l.syncErr = err
			l.log.Error("audit: fsync failed", "path", l.path, "err", err)
		} else {
			l.synced, l.syncErr = upTo, nil
		}
		l.done.Broadcast()
		if err != nil {
			break
		}
	}
	l.syncing = false
	l.done.Broadcast()
}

// Close closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.waitSynced(l.written)
	for l.syncing {
		l.done.Wait()
	}
	l.closed = true
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Read calls fn for each record at or after since (zero: all), in file
// order. A malformed line is an error naming its number, except a torn
// last line (a crash during an append), which is skipped.
func Read(r io.Reader, since time.Time, fn func(Record) error) error {
	br := bufio.NewReader(r)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			var rec Record
			if jerr := json.Unmarshal(line, &rec); jerr != nil {
				if errors.Is(err, io.EOF) {
					return nil // torn last line
				}
				return fmt.Errorf("audit log line %d: %w", n, jerr)
			}
			if !rec.Time.Before(since) {
				if ferr := fn(rec); ferr != nil {
					return ferr
				}
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read audit log: %w", err)
		}
	}
}

// ReadFile returns the records of the file at path at or after since.
func ReadFile(path string, since time.Time) ([]Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	defer f.Close()
	var out []Record
	err = Read(f, since, func(r Record) error { out = append(out, r); return nil })
	return out, err
}

// record turns the authz decision and the call's error into a Record, or
// reports false when the call is not audited (allowed and not mutating).
func record(d *authz.Decision, method string, err error) (Record, bool) {
	r := Record{Method: method, Outcome: Allow}
	switch {
	case !d.Decided:
		r.Outcome, r.Reason = Error, "no authorization decision: the authz interceptor is not after audit in the chain"
	case !d.Allowed:
		r.Outcome, r.Reason = Deny, d.Reason
	case err != nil:
		r.Outcome = Error
	case !d.Mutating:
		return r, false
	}
	if err != nil {
		st := status.Convert(err)
		r.Code = st.Code().String()
		if r.Reason == "" {
			r.Reason = st.Message()
		}
	}
	if !d.Identity.IsZero() {
		r.Identity, r.Role, r.Name = d.Identity.URI().String(), string(d.Identity.Role), d.Identity.Name
	}
	if !d.Via.IsZero() {
		r.Via = d.Via.URI().String()
	}
	r.Target = d.Target.String()
	return r, true
}

// write appends r; a failed append is logged (the call already happened
// and its result goes back to the client).
func (l *Log) write(r Record) {
	if err := l.Append(r); err != nil {
		l.log.Error("audit: record lost", "method", r.Method, "identity", r.Identity, "outcome", string(r.Outcome), "err", err)
	}
}

// Unary is the unary interceptor; it must come before authz's in
// grpc.ChainUnaryInterceptor so it sees authz's decision and the result.
func (l *Log) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, d := authz.WithDecision(ctx)
		resp, err := handler(ctx, req)
		if r, ok := record(d, info.FullMethod, err); ok {
			l.write(r)
		}
		return resp, err
	}
}

// Stream is the stream interceptor, placed like Unary.
func (l *Log) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, d := authz.WithDecision(ss.Context())
		err := handler(srv, &ctxStream{ServerStream: ss, ctx: ctx})
		if r, ok := record(d, info.FullMethod, err); ok {
			l.write(r)
		}
		return err
	}
}

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }
