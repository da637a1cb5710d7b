package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"vhpc/client"
	"vhpc/jobspec"
	"vhpc/scheduler/model"
	"vhpc/scheduler/server"
	"vhpc/security/authz"
	"vhpc/security/login"
	"vhpc/security/pki"
	"vhpc/security/regtoken"
)

// secFlags are the security flags of `hpcd server` and `hpcd dev`.
type secFlags struct {
	pkiDir      string // --pki-dir
	insecure    bool   // --insecure
	loginSocket string // --login-socket (server; dev always has one)
	tokenDir    string // --registry-token-dir (server)
}

func (f *secFlags) register(cmd *cobra.Command, dev bool) {
	fs := cmd.Flags()
	if dev {
		fs.StringVar(&f.pkiDir, "pki-dir", "", "the dev cluster's CA and certificates (default DATA-DIR/pki, created on first start)")
		fs.BoolVar(&f.insecure, "insecure", false, "serve plaintext without identities, ACLs or audit log (anyone who reaches the port may do anything; clients need VHPC_CREDENTIALS=none)")
		return
	}
	fs.StringVar(&f.pkiDir, "pki-dir", defaultPKIDir(), "directory with ca.crt, revoked.txt and this member's server-ID.crt/.key (`hpcd tls init`, `hpcd tls issue --server ID`); replaced files are picked up without a restart")
	fs.BoolVar(&f.insecure, "insecure", false, "serve plaintext without identities, ACLs or audit log (tests only; clients need VHPC_CREDENTIALS=none)")
	fs.StringVar(&f.loginSocket, "login-socket", "", "serve `hpcsub login` for users of this host on this Unix socket (needs ca.key in --pki-dir)")
	fs.StringVar(&f.tokenDir, "registry-token-dir", "", "directory with the registry token key, registry-token.key/.crt (`hpcd tls init` makes it; default --pki-dir, none with --insecure): this member signs the tokens the registry takes; the registry trusts registry-token.crt")
}

// apply sets cfg.Security (or cfg.Insecure) for member id, and
// cfg.RegistryTokens from the registry token key.
func (f *secFlags) apply(cfg *server.Config, id string) error {
	if err := f.loadTokens(cfg); err != nil {
		return err
	}
	if f.insecure {
		cfg.Insecure = true
		return nil
	}
	rl, err := pki.NewReloader(pki.FilesIn(f.pkiDir, "server-"+id), pki.ReloadOptions{Logger: cfg.Logger})
	if err != nil {
		return usageError{fmt.Errorf("%w (create the CA with `hpcd tls init --out %s --name %s`, or run a plaintext test member with --insecure)", err, f.pkiDir, id)}
	}
	cfg.Security = &server.Security{TLS: rl}
	return nil
}

// loadTokens reads the registry token key of --registry-token-dir (else
// --pki-dir on a secure member). A secure member without one warns: it
// signs no tokens, so its registry must be open.
func (f *secFlags) loadTokens(cfg *server.Config) error {
	dir := f.tokenDir
	if dir == "" && f.insecure {
		return nil
	}
	if dir == "" {
		dir = f.pkiDir
	}
	iss, err := regtoken.Load(dir, regtoken.Config{})
	switch {
	case errors.Is(err, fs.ErrNotExist) && f.tokenDir == "":
		cfg.Logger.Warn("no registry token key: this member signs no registry tokens, so the registry must be open to anyone who reaches it (`hpcd tls init` makes the key)", "dir", dir)
		return nil
	case err != nil:
		return usageError{fmt.Errorf("registry token key in %s: %w", dir, err)}
	}
	cfg.RegistryTokens = iss
	if why := tokensInClear(cfg.ImageRegistry); why != "" {
		cfg.Logger.Warn(why, "registry", cfg.ImageRegistry)
	}
	return nil
}

// tokensInClear says why registry tokens sent to registryURL could be
// read on the wire: a plain http:// URL on a host that is not loopback
// ("" for https, loopback and no registry). The registry should then be
// served over https (docker-registry's http.tls) with a certificate every
// host trusts (the system's trust store: update-ca-certificates).
func tokensInClear(registryURL string) string {
	u, err := url.Parse(registryURL)
	if err != nil || u.Scheme != "http" {
		return ""
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return ""
	}
	return "the registry is plain http on a network address: the registry tokens this member signs (15 minutes each) cross the network in clear; serve the registry over https (docker-registry http.tls, a certificate the hosts trust) and pass --registry https://..."
}

// serveLogin runs the login socket with the CA of pkiDir until ctx ends:
// local users of the cluster get a user certificate for their own name.
func serveLogin(ctx context.Context, s *server.Server, pkiDir, path string, log *slog.Logger) error {
	ca, err := pki.LoadCA(pkiDir, pki.Options{})
	if err != nil {
		return fmt.Errorf("--login-socket needs the CA key: %w", err)
	}
	l, err := login.Listen(path)
	if err != nil {
		return err
	}
	srv := &login.Server{CA: ca, Log: log, Known: func(name string) error {
		if s.FSM().Store().Snapshot().User(name) == nil {
			return fmt.Errorf("%s is not a user of this cluster: an operator adds users with `hpcd user add %s --department DEPT`", name, name)
		}
		return nil
	}}
	go func() {
		if err := srv.Serve(ctx, l); err != nil {
			log.Error("login socket stopped", "err", err)
		}
	}()
	log.Info("serving hpcsub login", "socket", path)
	return nil
}

// devSecurity is what `hpcd dev` makes on first start and reuses later:
// the CA, its server certificate, the in-process agent's certificate, an
// operator credential for the user running hpcd and a user credential for
// the local user (admin of the default department and of public images).
type devSecurity struct {
	pkiDir   string
	agent    *client.Credentials
	operator *client.Credentials
	user     string // the local user's name
	userDir  string // where the local user's credential went ("" if not written)
}

// devMarker marks a credentials directory `hpcd dev` filled: a later dev
// cluster (a new CA) may replace its files; any other directory is left alone.
const devMarker = ".hpcd-dev"

// localUser is who runs `hpcd dev`: the sudo caller when run with sudo.
func localUser() (*user.User, error) {
	if os.Geteuid() == 0 {
		if name := os.Getenv("SUDO_USER"); name != "" && name != "root" {
			if u, err := user.Lookup(name); err == nil {
				return u, nil
			}
		}
	}
	return user.Current()
}

func setupDevSecurity(dataDir, pkiDir, credsOut, node string, log *slog.Logger) (*devSecurity, error) {
	if pkiDir == "" {
		pkiDir = filepath.Join(dataDir, "pki")
	}
	ca, err := pki.LoadCA(pkiDir, pki.Options{})
	if errors.Is(err, fs.ErrNotExist) {
		ca, err = pki.InitCA(pkiDir, "vhpc dev CA", pki.Options{})
		if err == nil {
			log.Info("dev: created the cluster CA", "dir", pkiDir)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("dev CA: %w", err)
	}
	issue := func(req pki.Request, dir string) error {
		is, err := ca.Issue(req)
		if err != nil {
			return err
		}
		_, _, err = is.Write(dir, req.Identity.BaseName())
		return err
	}
	loop := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if err := issue(pki.Request{Identity: pki.Identity{Role: pki.RoleServer, Name: "dev"}, DNSNames: []string{"localhost"}, IPs: loop}, pkiDir); err != nil {
		return nil, err
	}
	agentID := pki.Identity{Role: pki.RoleAgent, Name: node}
	if err := issue(pki.Request{Identity: agentID}, pkiDir); err != nil {
		return nil, err
	}
	me, err := user.Current()
	if err != nil {
		return nil, err
	}
	opID := pki.Identity{Role: pki.RoleOperator, Name: me.Username}
	if err := issue(pki.Request{Identity: opID}, pkiDir); err != nil {
		return nil, err
	}
	local, err := localUser()
	if err != nil {
		return nil, err
	}
	if _, err := regtoken.Ensure(pkiDir, regtoken.Config{}); err != nil {
		return nil, fmt.Errorf("dev registry token key: %w", err)
	}
	d := &devSecurity{pkiDir: pkiDir, user: local.Username}
	if d.agent, err = client.LoadCredentials(pkiDir, pki.RoleAgent); err != nil {
		return nil, err
	}
	if d.operator, err = client.LoadCredentials(pkiDir, pki.RoleOperator); err != nil {
		return nil, err
	}

	// The local user's credential, into their credentials directory.
	userDir := credsOut
	if userDir == "" {
		home := local.HomeDir
		if local.Uid == me.Uid {
			if h, err := os.UserHomeDir(); err == nil {
				home = h // $HOME, as the local user's clients see it
			}
		}
		userDir = filepath.Join(home, ".config", "vhpc")
	}
	if ok, why := mayFill(userDir, ca.CertPEM); !ok {
		log.Warn("dev: not writing the local user's credential: "+why, "dir", userDir)
	} else {
		if err := fillCredentials(userDir, ca, pki.Identity{Role: pki.RoleUser, Name: local.Username}, local, filepath.Join(dataDir, "login.sock")); err != nil {
			return nil, err
		}
		d.userDir = userDir
		log.Info("dev: wrote the local user's credential", "user", local.Username, "dir", userDir)
	}
	// The operator's, for `hpcd operator` and `hpcd user` as the user running hpcd.
	opDir := credsOut
	if opDir == "" {
		home, _ := os.UserHomeDir()
		opDir = filepath.Join(home, ".config", "vhpc")
	}
	if ok, _ := mayFill(opDir, ca.CertPEM); ok {
		if err := fillCredentials(opDir, ca, opID, me, ""); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// mayFill reports whether dev may write into dir: it is new or empty, was
// filled by an hpcd dev (marker), or already trusts this CA.
func mayFill(dir string, caPEM []byte) (bool, string) {
	if _, err := os.Stat(filepath.Join(dir, devMarker)); err == nil {
		return true, ""
	}
	have, err := os.ReadFile(filepath.Join(dir, pki.CACertFile))
	if errors.Is(err, fs.ErrNotExist) {
		return true, ""
	}
	if err == nil && bytes.Equal(have, caPEM) {
		return true, ""
	}
	return false, "it holds another cluster's credentials (no " + devMarker + " in it); set --credentials-out, or VHPC_CREDENTIALS for clients"
}

// fillCredentials writes ca.crt, id's certificate and key (and the login
// socket's path) into dir, owned by u.
func fillCredentials(dir string, ca *pki.CA, id pki.Identity, u *user.User, socket string) error {
	is, err := ca.Issue(pki.Request{Identity: id})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	files := []string{dir}
	c, k, err := is.Write(dir, id.BaseName())
	if err != nil {
		return err
	}
	files = append(files, c, k)
	for name, data := range map[string][]byte{pki.CACertFile: ca.CertPEM, devMarker: []byte("written by hpcd dev; a later hpcd dev may replace these files\n")} {
		p := filepath.Join(dir, name)
		if err := pki.WriteFileAtomic(p, data, 0o644); err != nil {
			return err
		}
		files = append(files, p)
	}
	if socket != "" {
		p := filepath.Join(dir, login.SocketFile)
		if err := pki.WriteFileAtomic(p, []byte(socket+"\n"), 0o644); err != nil {
			return err
		}
		files = append(files, p)
	}
	if os.Geteuid() == 0 && u.Uid != "0" {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, f := range append(files, filepath.Dir(dir)) {
			if err := os.Lchown(f, uid, gid); err != nil {
				return err
			}
		}
	}
	return nil
}

// addDevUser records the local user once the dev master leads: member of
// every department (the examples use default, physics and studio), admin
// of the default department and of the public images (the demo pushes
// public/python:1).
func addDevUser(ctx context.Context, s *server.Server, name string) error {
	return s.PutUser(ctx, model.User{Name: name, Departments: []string{authz.AllDepartments},
		AdminOf: []string{jobspec.DefaultDepartment, model.PublicDepartment}})
}
