package guest

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"vhpc/guestproto"
)

// netPaths are the guest files a networked job writes; tests point them
// at a temporary directory.
type netPaths struct {
	etcHosts   string
	launcher   string // LauncherConfigPath
	hostfile   string // HostfilePath
	rshLink    string // RshPath ("" to skip it)
	mpiBin     string // MPIBinDir ("" to skip it)
	sysNet     string // /sys/class/net
	modulesDir string // /lib/modules/<release>, for the virtio_net fallback
}

func defaultNetPaths() netPaths {
	p := netPaths{etcHosts: "/etc/hosts", launcher: LauncherConfigPath, hostfile: HostfilePath, rshLink: RshPath, mpiBin: MPIBinDir, sysNet: "/sys/class/net"}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		p.modulesDir = filepath.Join("/lib/modules", unix.ByteSliceToString(u.Release[:]))
	}
	return p
}

// linkWait bounds the wait for the job network's interface to appear.
const linkWait = 60 * time.Second

// HostsFile returns /etc/hosts for a job network: localhost and every
// peer by its hostname.
func HostsFile(n *guestproto.Network) string {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	for _, p := range n.Peers {
		fmt.Fprintf(&b, "%s\t%s\n", p.Address, p.Hostname)
	}
	return b.String()
}

// linkOps are the kernel calls of configureNetwork: ioctlLinks in a
// guest, a fake in unit tests (the real path runs in the host side's
// end-to-end test and, for root, in a network namespace in
// TestIoctlLinks).
type linkOps interface {
	// byMAC returns the name of the interface with this MAC, "" if none.
	byMAC(mac []byte) (string, error)
	up(name string) error
	setAddr(name string, p netip.Prefix) error
	setMTU(name string, mtu int) error
	setHostname(name string) error
	// loadDriver loads the NIC's driver (virtio_net) when no interface
	// has the MAC after a while.
	loadDriver() error
}

// configureNetwork makes the guest a member of its job network: lo and
// the interface whose MAC is n.MAC up, n.Address on it, the hostname, and
// /etc/hosts. It waits up to wait for the interface (virtio_net may still
// be probing) and, when it has not appeared after a few seconds, asks
// ops to load the driver once.
func configureNetwork(log *slog.Logger, ops linkOps, n *guestproto.Network, etcHosts string, wait time.Duration) error {
	mac, err := parseMAC(n.MAC)
	if err != nil {
		return fmt.Errorf("network: mac %q: %w", n.MAC, err)
	}
	pfx, err := netip.ParsePrefix(n.Address)
	if err != nil {
		return fmt.Errorf("network: address %q: %w", n.Address, err)
	}
	if err := ops.up("lo"); err != nil {
		return fmt.Errorf("network: bring lo up: %w", err)
	}
	start, loaded := time.Now(), false
	name := ""
	for {
		name, err = ops.byMAC(mac)
		if name != "" {
			break
		}
		if !loaded && time.Since(start) > min(3*time.Second, wait/2) {
			loaded = true
			if lerr := ops.loadDriver(); lerr != nil {
				log.Warn("network: load virtio_net", "err", lerr)
			}
		}
		if time.Since(start) > wait {
			msg := fmt.Sprintf("network: no interface with MAC %s after %s (is virtio_net among the image's kernel modules?)", n.MAC, wait)
			if err != nil {
				return fmt.Errorf("%s: %w", msg, err)
			}
			return errors.New(msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := ops.setAddr(name, pfx); err != nil {
		return fmt.Errorf("network: set address %s on %s: %w", pfx, name, err)
	}
	if n.MTU > 0 {
		if err := ops.setMTU(name, n.MTU); err != nil {
			return fmt.Errorf("network: set MTU %d on %s: %w", n.MTU, name, err)
		}
	}
	if err := ops.up(name); err != nil {
		return fmt.Errorf("network: bring %s up: %w", name, err)
	}
	if err := ops.setHostname(n.Hostname); err != nil {
		return fmt.Errorf("network: set hostname %q: %w", n.Hostname, err)
	}
	if err := writeFileAtomic(etcHosts, []byte(HostsFile(n)), 0o644); err != nil {
		return fmt.Errorf("network: %w", err)
	}
	log.Info("job network configured", "interface", name, "address", pfx, "hostname", n.Hostname, "peers", len(n.Peers))
	return nil
}

// parseMAC parses a MAC address written as six colon-separated hex bytes
// (as in guestproto.Network and /sys/class/net/X/address).
func parseMAC(s string) ([]byte, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 6 {
		return nil, fmt.Errorf("MAC %q: want six hex bytes separated by colons", s)
	}
	mac := make([]byte, 6)
	for i, p := range parts {
		b, err := hex.DecodeString(p)
		if err != nil || len(b) != 1 {
			return nil, fmt.Errorf("MAC %q: want six hex bytes separated by colons", s)
		}
		mac[i] = b[0]
	}
	return mac, nil
}

// ioctlLinks configures interfaces with the classic SIOCSIF* ioctls (no
// netlink library: package net, which they all import, is off limits;
// see sock_linux.go).
type ioctlLinks struct {
	sysNet     string // /sys/class/net
	modulesDir string
}

func (o ioctlLinks) byMAC(mac []byte) (string, error) {
	ents, err := os.ReadDir(o.sysNet)
	if err != nil {
		return "", fmt.Errorf("list interfaces: %w", err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(o.sysNet, e.Name(), "address"))
		if err != nil {
			continue
		}
		if m, err := parseMAC(strings.TrimSpace(string(b))); err == nil && bytes.Equal(m, mac) {
			return e.Name(), nil
		}
	}
	return "", nil
}

func ifreqIoctl(name string, fn func(fd int, ifr *unix.Ifreq) error) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	return fn(fd, ifr)
}

func (ioctlLinks) up(name string) error {
	return ifreqIoctl(name, func(fd int, ifr *unix.Ifreq) error {
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
			return fmt.Errorf("get flags of %s: %w", name, err)
		}
		ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
		if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
			return fmt.Errorf("set flags of %s: %w", name, err)
		}
		return nil
	})
}

func (ioctlLinks) setAddr(name string, p netip.Prefix) error {
	if !p.Addr().Is4() {
		return fmt.Errorf("%s is not an IPv4 prefix", p)
	}
	m := uint32(0xffffffff) << (32 - p.Bits())
	if p.Bits() == 0 {
		m = 0
	}
	mask := []byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}
	return ifreqIoctl(name, func(fd int, ifr *unix.Ifreq) error {
		a := p.Addr().As4()
		if err := ifr.SetInet4Addr(a[:]); err != nil {
			return err
		}
		if err := unix.IoctlIfreq(fd, unix.SIOCSIFADDR, ifr); err != nil {
			return fmt.Errorf("SIOCSIFADDR: %w", err)
		}
		if err := ifr.SetInet4Addr(mask); err != nil {
			return err
		}
		if err := unix.IoctlIfreq(fd, unix.SIOCSIFNETMASK, ifr); err != nil {
			return fmt.Errorf("SIOCSIFNETMASK: %w", err)
		}
		return nil
	})
}

func (ioctlLinks) setMTU(name string, mtu int) error {
	return ifreqIoctl(name, func(fd int, ifr *unix.Ifreq) error {
		ifr.SetUint32(uint32(mtu))
		if err := unix.IoctlIfreq(fd, unix.SIOCSIFMTU, ifr); err != nil {
			return fmt.Errorf("SIOCSIFMTU: %w", err)
		}
		return nil
	})
}

func (ioctlLinks) setHostname(name string) error { return unix.Sethostname([]byte(name)) }

func (o ioctlLinks) loadDriver() error {
	if o.modulesDir == "" {
		return errors.New("no modules directory")
	}
	return loadModuleByName(o.modulesDir, "virtio_net")
}

// loadModuleByName loads name and its dependencies as modules.dep in dir
// lists them (dependencies last, loaded first). Compressed modules are
// handed to the kernel to decompress.
func loadModuleByName(dir, name string) error {
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return fmt.Errorf("open modules.dep: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		mod, deps, ok := strings.Cut(sc.Text(), ":")
		if !ok || moduleBase(mod) != name {
			continue
		}
		list := append(strings.Fields(deps), strings.TrimSpace(mod))
		for i := len(list) - 2; i >= 0; i-- { // dependencies, deepest first
			if err := loadModuleFile(filepath.Join(dir, list[i])); err != nil {
				return err
			}
		}
		return loadModuleFile(filepath.Join(dir, list[len(list)-1]))
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read modules.dep: %w", err)
	}
	return fmt.Errorf("module %s is not in %s/modules.dep (built in, or missing)", name, dir)
}

func moduleBase(p string) string {
	b := filepath.Base(strings.TrimSpace(p))
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

func loadModuleFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open module: %w", err)
	}
	defer f.Close()
	flags := 0
	if !strings.HasSuffix(path, ".ko") {
		flags = unix.MODULE_INIT_COMPRESSED_FILE
	}
	if err := unix.FinitModule(int(f.Fd()), "", flags); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("load module %s: %w", filepath.Base(path), err)
	}
	return nil
}

func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// netJobSetup is the running network side of a guest: its launcher.
type netJobSetup struct {
	job    *NetJob
	server *LauncherServer
	served chan error
}

// Close stops the launcher (ending the remote commands still running).
func (s *netJobSetup) Close() {
	_ = s.server.Close()
	<-s.served
}

// startNetworkJob configures the guest's job network and starts its
// launcher, and returns the NetJob that runs the command. out is the job's
// output (output.log and the console): a follower's launcher logs there,
// others' to log. initAndRun calls it for a request with a Network; an
// error fails the job with exit code 126.
func startNetworkJob(log *slog.Logger, req guestproto.Request, out io.Writer, work string, p netPaths) (*netJobSetup, error) {
	n := req.Network
	if err := configureNetwork(log, ioctlLinks{sysNet: p.sysNet, modulesDir: p.modulesDir}, n, p.etcHosts, linkWait); err != nil {
		return nil, err
	}
	if err := WriteLauncherConfig(p.launcher, LauncherConfig{Port: n.LauncherPort, Secret: n.Secret}, req.UID, req.GID); err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	if err := writeFileAtomic(p.hostfile, []byte(Hostfile(req)), 0o644); err != nil {
		return nil, fmt.Errorf("network: hostfile: %w", err)
	}
	if p.rshLink != "" {
		if err := linkSelf(p.rshLink); err != nil {
			return nil, fmt.Errorf("network: %w", err)
		}
	}
	if req.MPI != "" && p.mpiBin != "" {
		if err := WriteMPIShims(p.mpiBin, req.MPI, "/usr/bin"); err != nil {
			return nil, fmt.Errorf("network: %w", err)
		}
	}
	key, err := SecretKey(n.Secret)
	if err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	env := NetworkEnv(req, p.hostfile, RshPath)
	llog := log
	if req.MPI != "" && n.Rank != 0 {
		llog = slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo})).With("component", "hpc-guest")
	}
	done := make(chan struct{})
	closeDone := sync.OnceFunc(func() { close(done) })
	srv, err := NewLauncherServer(LauncherServerConfig{Key: key, Log: llog, UID: req.UID, GID: req.GID,
		Env: mergeEnv(req.Environ(), env), Dir: work, OnDone: closeDone})
	if err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	pfx, _ := netip.ParsePrefix(n.Address) // validated
	ln, err := Listen(netip.AddrPortFrom(pfx.Addr(), uint16(n.LauncherPort)))
	if err != nil {
		return nil, fmt.Errorf("network: launcher: %w", err)
	}
	served := make(chan error, 1)
	go func() {
		err := srv.Serve(ln)
		if err != nil {
			log.Error("launcher stopped", "err", err)
		}
		served <- err
	}()
	var peers []PeerAddr
	for _, peer := range n.Peers {
		if peer.Rank != n.Rank {
			a, _ := netip.ParseAddr(peer.Address) // validated
			peers = append(peers, PeerAddr{Name: peer.Hostname, Addr: netip.AddrPortFrom(a, uint16(n.LauncherPort)).String()})
		}
	}
	job := &NetJob{Client: LauncherClient{Key: key}, Peers: peers, Env: env,
		Hostfile: p.hostfile, Done: done, Log: llog}
	return &netJobSetup{job: job, server: srv, served: served}, nil
}

// linkSelf points link at this executable (replacing what is there).
func linkSelf(link string) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find hpc-guest's own path: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(link), err)
	}
	_ = os.Remove(link)
	if err := os.Symlink(self, link); err != nil {
		return fmt.Errorf("link %s: %w", link, err)
	}
	return nil
}
