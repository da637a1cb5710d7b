package imagestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// RegistryProgram is Debian's OCI distribution registry (package
// docker-registry), the registry StartRegistry runs.
const RegistryProgram = "docker-registry"

// RegistryConfig says where StartRegistry keeps blobs and listens.
type RegistryConfig struct {
	// Dir holds config.yml and the storage (Dir/storage); created if missing.
	Dir string
	// Addr is host:port to listen on; "" picks a free loopback port.
	Addr string
	// StartTimeout bounds the wait for the registry to answer; 0 is 20 s.
	StartTimeout time.Duration
	// Logger receives the registry's exit; nil is slog.Default().
	Logger *slog.Logger
	// DieWithParent asks the kernel to kill the registry when the process
	// that started it dies (hpcd dev killed with -9 leaves no registry).
	DieWithParent bool
	// TokenAuth, when set, makes the registry refuse every request without
	// a token the master signed (security/regtoken); nil leaves it open.
	TokenAuth *TokenAuth
}

// TokenAuth is the registry's auth.token section (the Docker registry
// token authentication scheme).
type TokenAuth struct {
	// Realm is where a client without a token is told to get one; ""
	// is the registry's own URL + RealmPath. vhpc's clients get theirs
	// from the master over gRPC and send it up front, so nothing serves it.
	Realm string
	// Service and Issuer are the aud and iss claims tokens must carry
	// (regtoken.Issuer's Service and Name).
	Service, Issuer string
	// RootCertBundle is a PEM file of the certificates whose keys sign
	// tokens (regtoken.CertFile).
	RootCertBundle string
}

// RealmPath is the path of the default realm: no endpoint (a 404), a
// pointer for whoever reads a refused client's error to where tokens come
// from (the master's JobService.DataStore and NodeService.RegistryToken).
// go-containerregistry wants an http(s) realm, so it cannot be a vhpc://
// URL.
const RealmPath = "/tokens-come-from-the-vhpc-master"

// Registry is a running docker-registry child process. hpcd dev and the
// tests start one on loopback; Close stops it.
type Registry struct {
	// URL is http://ADDR, what Push and Pull take.
	URL string
	// Addr is the address it listens on.
	Addr string

	cmd    *exec.Cmd
	exited chan struct{}
	stderr *lockedBuffer
	once   sync.Once
	tokens bool
}

// StartRegistry writes a config.yml under cfg.Dir, starts docker-registry
// as a child process and returns once GET /v2/ answers 200 (401 with
// cfg.TokenAuth) (or fails within
// cfg.StartTimeout, killing the child). Without the program the error names
// the Debian package. Callers: hpcd dev, tests (through registrytest).
func StartRegistry(ctx context.Context, cfg RegistryConfig) (*Registry, error) {
	prog, err := exec.LookPath(RegistryProgram)
	if err != nil {
		return nil, fmt.Errorf("start registry: %s not found: install the Debian package docker-registry (scripts/install-deps.sh): %w", RegistryProgram, err)
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 20 * time.Second
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	addr := cfg.Addr
	if addr == "" {
		if addr, err = freeLoopbackAddr(); err != nil {
			return nil, fmt.Errorf("start registry: %w", err)
		}
	}
	storage := filepath.Join(cfg.Dir, "storage")
	if err := os.MkdirAll(storage, 0o755); err != nil {
		return nil, fmt.Errorf("start registry: %w", err)
	}
	conf := filepath.Join(cfg.Dir, "config.yml")
	yml := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %q
`, storage, addr)
	if ta := cfg.TokenAuth; ta != nil {
		realm := ta.Realm
		if realm == "" {
			realm = "http://" + addr + RealmPath
		}
		yml += fmt.Sprintf(`auth:
  token:
    realm: %q
    service: %q
    issuer: %q
    rootcertbundle: %q
`, realm, ta.Service, ta.Issuer, ta.RootCertBundle)
	}
	if err := os.WriteFile(conf, []byte(yml), 0o644); err != nil {
		return nil, fmt.Errorf("start registry: %w", err)
	}
	stderr := &lockedBuffer{}
	cmd := exec.Command(prog, "serve", conf)
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	if cfg.DieWithParent {
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start registry: %w", err)
	}
	r := &Registry{URL: "http://" + addr, Addr: addr, cmd: cmd, exited: make(chan struct{}), stderr: stderr, tokens: cfg.TokenAuth != nil}
	go func() {
		err := cmd.Wait()
		logger.Debug("registry exited", "addr", addr, "err", err)
		close(r.exited)
	}()
	if err := r.waitReady(ctx, cfg.StartTimeout); err != nil {
		r.Close()
		return nil, fmt.Errorf("start registry on %s: %w; its output: %s", addr, err, stderr.tail())
	}
	return r, nil
}

func (r *Registry) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	client := &http.Client{Timeout: time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL+"/v2/", nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			// With token auth an anonymous /v2/ is refused: that answer is
			// the registry being up.
			if resp.StatusCode == http.StatusOK || (r.tokens && resp.StatusCode == http.StatusUnauthorized) {
				return nil
			}
		}
		select {
		case <-r.exited:
			return errors.New("docker-registry exited")
		case <-ctx.Done():
			return fmt.Errorf("no answer on /v2/ within %s: %w", timeout, ctx.Err())
		case <-tick.C:
		}
	}
}

// Close kills the registry and waits for it to exit. Safe to call twice.
func (r *Registry) Close() error {
	r.once.Do(func() {
		if r.cmd.Process != nil {
			_ = r.cmd.Process.Kill()
		}
		<-r.exited
	})
	return nil
}

// Exited is closed when the registry process has exited.
func (r *Registry) Exited() <-chan struct{} { return r.exited }

func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 64<<10 {
		b.buf.Reset()
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) tail() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return s
}
