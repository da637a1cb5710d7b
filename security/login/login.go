// Package login issues short-lived user certificates on the host of a
// master that holds the cluster CA key (`hpcsub login` against `hpcd dev`,
// or a member started with --login-socket), without passwords: the master
// listens on a Unix socket and learns the caller's uid from the kernel
// (SO_PEERCRED), so a user can obtain a certificate for their own login
// name and no other. The client generates its key pair and sends only the
// public key; the master signs it for vhpc://user/NAME if NAME is a user
// of the cluster (`hpcd user add`).
//
// Why a Unix socket and not a token or password: on the master's host the
// kernel already authenticates local users, nothing secret is stored, and
// the CA key never leaves the master. Users on other hosts get their
// certificate from an operator (`hpcd tls issue --user NAME`).
package login

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"vhpc/security/pki"
)

// SocketFile is the file `hpcd dev` writes into the credentials directory
// it fills: the path of its login socket, where `hpcsub login` finds it.
const SocketFile = "login-socket"

// Request is what the client sends: its public key (PEM, PKIX).
type Request struct {
	PublicKey string `json:"publicKey"`
}

// Response carries the signed certificate and the CA bundle (PEM).
type Response struct {
	Certificate string `json:"certificate"`
	CA          string `json:"ca"`
	Error       string `json:"error,omitempty"`
}

// Server signs login requests with CA.
type Server struct {
	CA *pki.CA
	// Known refuses users the cluster does not know (nil: any local user).
	Known func(name string) error
	// TTL of issued certificates (0: the CA's user lifetime).
	TTL time.Duration
	Log *slog.Logger
	// lookup maps a uid to a login name (tests replace it).
	lookup func(uid uint32) (string, error)
}

type uidKey struct{}

// Listen creates the socket at path (replacing a stale one) connectable by
// every local user: the kernel tells the server who connects.
func Listen(path string) (net.Listener, error) {
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("login socket: %w", err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		l.Close()
		return nil, fmt.Errorf("login socket: %w", err)
	}
	return l, nil
}

// Serve answers login requests on l until ctx ends.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	if s.lookup == nil {
		s.lookup = func(uid uint32) (string, error) {
			u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
			if err != nil {
				return "", err
			}
			return u.Username, nil
		}
	}
	hs := &http.Server{
		Handler:           http.HandlerFunc(s.handle),
		ReadHeaderTimeout: 5 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			uid, err := peerUID(c)
			if err != nil {
				return ctx
			}
			return context.WithValue(ctx, uidKey{}, uid)
		},
	}
	go func() { <-ctx.Done(); _ = hs.Close() }()
	if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func peerUID(c net.Conn) (uint32, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0, errors.New("not a unix socket")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if cerr != nil {
		return 0, cerr
	}
	return cred.Uid, nil
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	reply := func(code int, resp Response) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(resp)
	}
	uid, ok := r.Context().Value(uidKey{}).(uint32)
	if !ok {
		reply(http.StatusForbidden, Response{Error: "the login socket could not tell who you are (no peer credentials)"})
		return
	}
	name, err := s.lookup(uid)
	if err != nil {
		reply(http.StatusForbidden, Response{Error: fmt.Sprintf("uid %d has no login name on the master's host: %v", uid, err)})
		return
	}
	var req Request
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
		reply(http.StatusBadRequest, Response{Error: "bad login request: " + err.Error()})
		return
	}
	pub, err := parsePublicKey(req.PublicKey)
	if err != nil {
		reply(http.StatusBadRequest, Response{Error: err.Error()})
		return
	}
	if s.Known != nil {
		if err := s.Known(name); err != nil {
			reply(http.StatusForbidden, Response{Error: err.Error()})
			return
		}
	}
	id := pki.Identity{Role: pki.RoleUser, Name: name}
	_, certPEM, err := s.CA.Sign(pki.Request{Identity: id, TTL: s.TTL}, pub)
	if err != nil {
		reply(http.StatusBadRequest, Response{Error: err.Error()})
		return
	}
	s.Log.Info("login: issued a user certificate", "user", name, "uid", uid)
	reply(http.StatusOK, Response{Certificate: string(certPEM), CA: string(s.CA.CertPEM)})
}

func parsePublicKey(s string) (*ecdsa.PublicKey, error) {
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		return nil, errors.New("login request: no PEM public key")
	}
	k, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("login request: %w", err)
	}
	ek, ok := k.(*ecdsa.PublicKey)
	if !ok {
		return nil, errors.New("login request: want an ECDSA P-256 key")
	}
	return ek, nil
}

// Login asks the master at socket for a user certificate and writes it
// into dir as user-NAME.crt/.key with ca.crt (replacing earlier files
// atomically, so running clients pick the new one up). It returns the
// identity and expiry of the new certificate.
func Login(ctx context.Context, socket, dir string) (pki.Identity, time.Time, error) {
	var id pki.Identity
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return id, time.Time{}, err
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return id, time.Time{}, err
	}
	body, _ := json.Marshal(Request{PublicKey: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))})
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}, Timeout: 30 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://login/", bytes.NewReader(body))
	if err != nil {
		return id, time.Time{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return id, time.Time{}, fmt.Errorf("login socket %s: %w (is the master holding the CA running on this host?)", socket, err)
	}
	defer resp.Body.Close()
	var out Response
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
		return id, time.Time{}, fmt.Errorf("login: %s: %w", resp.Status, err)
	}
	if out.Error != "" {
		return id, time.Time{}, fmt.Errorf("login refused: %s", out.Error)
	}
	certs, err := pki.ParseCertificates([]byte(out.Certificate))
	if err != nil {
		return id, time.Time{}, fmt.Errorf("login: %w", err)
	}
	if id, err = pki.IdentityOf(certs[0]); err != nil {
		return id, time.Time{}, fmt.Errorf("login: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return id, time.Time{}, err
	}
	is := &pki.Issued{Identity: id, Cert: certs[0], CertPEM: []byte(out.Certificate),
		KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})}
	if _, _, err := is.Write(dir, id.BaseName()); err != nil {
		return id, time.Time{}, err
	}
	if err := pki.WriteFileAtomic(filepath.Join(dir, pki.CACertFile), []byte(out.CA), 0o644); err != nil {
		return id, time.Time{}, err
	}
	return id, certs[0].NotAfter, nil
}
