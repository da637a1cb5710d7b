package guest

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// TCP for the launcher on raw sockets: package net links the cgo resolver
// (runtime/cgo) whenever cgo is on, and hpc-guest must stay static however
// it is built (cmd/hpc-guest's import-graph test). The sockets are
// non-blocking and wrapped in *os.File, so reads, writes, accepts and
// connects wait in the Go runtime's poller and deadlines work.

// tcpConn is one TCP connection.
type tcpConn struct {
	f      *os.File
	remote string
}

func (c *tcpConn) Read(p []byte) (int, error)          { return c.f.Read(p) }
func (c *tcpConn) Write(p []byte) (int, error)         { return c.f.Write(p) }
func (c *tcpConn) Close() error                        { return c.f.Close() }
func (c *tcpConn) SetDeadline(t time.Time) error       { return c.f.SetDeadline(t) }
func (c *tcpConn) SetReadDeadline(t time.Time) error   { return c.f.SetReadDeadline(t) }
func (c *tcpConn) RemoteAddr() string                  { return c.remote }
func (c *tcpConn) setWriteDeadline(t time.Time) error  { return c.f.SetWriteDeadline(t) }
func (c *tcpConn) control(fn func(fd int) error) error { return control(c.f, fn) }

// CloseWrite shuts the sending half down (the peer reads EOF).
func (c *tcpConn) CloseWrite() error {
	return c.control(func(fd int) error { return unix.Shutdown(fd, unix.SHUT_WR) })
}

func control(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// tcpSocket opens a non-blocking TCP socket for ap and returns it with
// ap as a socket address.
func tcpSocket(ap netip.AddrPort) (int, unix.Sockaddr, error) {
	var sa unix.Sockaddr
	family := unix.AF_INET
	switch a := ap.Addr().Unmap(); {
	case a.Is4():
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}
	case a.Is6():
		sa, family = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}, unix.AF_INET6
	default:
		return -1, nil, fmt.Errorf("bad address %s", ap)
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, nil, fmt.Errorf("socket: %w", err)
	}
	return fd, sa, nil
}

func addrPortOf(sa unix.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
	}
	return netip.AddrPort{}
}

// Listener is a listening TCP socket (the launcher's).
type Listener struct {
	f    *os.File
	addr netip.AddrPort
}

// Listen listens on addr (port 0: any free port; Addr tells which).
func Listen(addr netip.AddrPort) (*Listener, error) {
	fd, sa, err := tcpSocket(addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("listen on %s: SO_REUSEADDR: %w", addr, err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("listen on %s: bind: %w", addr, err)
	}
	if err := unix.Listen(fd, 128); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	bound, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("listen on %s: getsockname: %w", addr, err)
	}
	return &Listener{f: os.NewFile(uintptr(fd), "tcp-listener"), addr: addrPortOf(bound)}, nil
}

// Addr is the address the listener is bound to.
func (l *Listener) Addr() netip.AddrPort { return l.addr }

// Close stops the listener; a blocked Accept returns an error.
func (l *Listener) Close() error { return l.f.Close() }

// Accept waits for the next connection.
func (l *Listener) Accept() (*tcpConn, error) {
	rc, err := l.f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var nfd int
	var sa unix.Sockaddr
	var aerr error
	err = rc.Read(func(fd uintptr) bool {
		nfd, sa, aerr = unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		return aerr != unix.EAGAIN && aerr != unix.EINTR
	})
	if err != nil {
		return nil, err
	}
	if aerr != nil {
		return nil, fmt.Errorf("accept: %w", aerr)
	}
	return &tcpConn{f: os.NewFile(uintptr(nfd), "tcp"), remote: addrPortOf(sa).String()}, nil
}

// dialTCP connects to addr within timeout.
func dialTCP(addr netip.AddrPort, timeout time.Duration) (*tcpConn, error) {
	fd, sa, err := tcpSocket(addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	if err := unix.Connect(fd, sa); err != nil && err != unix.EINPROGRESS && err != unix.EINTR {
		unix.Close(fd)
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	c := &tcpConn{f: os.NewFile(uintptr(fd), "tcp"), remote: addr.String()}
	if err := c.setWriteDeadline(time.Now().Add(timeout)); err != nil {
		c.Close()
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	rc, err := c.f.SyscallConn()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	var cerr error
	err = rc.Write(func(fd uintptr) bool {
		// As package net does: connected once the socket has a peer;
		// SO_ERROR says why not.
		soerr, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			cerr = err
			return true
		}
		switch e := unix.Errno(soerr); e {
		case 0, unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
		default:
			cerr = e
			return true
		}
		if _, err := unix.Getpeername(int(fd)); err == nil {
			return true
		}
		return false
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		c.Close()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("timed out after %s", timeout)
		}
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	_ = c.setWriteDeadline(time.Time{})
	return c, nil
}

// resolveHost turns a HOST and a port into an address:
// HOST is an IP address or a name in hostsFile (the job's /etc/hosts).
func resolveHost(host string, port int, hostsFile string) (netip.AddrPort, error) {
	if port < 1 || port > 65535 {
		return netip.AddrPort{}, fmt.Errorf("port %d", port)
	}
	h := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if a, err := netip.ParseAddr(h); err == nil {
		return netip.AddrPortFrom(a, uint16(port)), nil
	}
	f, err := os.Open(hostsFile)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("resolve %q: %w", host, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fs := strings.Fields(line)
		if len(fs) < 2 {
			continue
		}
		a, err := netip.ParseAddr(fs[0])
		if err != nil {
			continue
		}
		for _, name := range fs[1:] {
			if strings.EqualFold(name, host) {
				return netip.AddrPortFrom(a, uint16(port)), nil
			}
		}
	}
	return netip.AddrPort{}, fmt.Errorf("resolve %q: not in %s", host, hostsFile)
}

// parseAddrPort parses "ip:port" (a PeerAddr's address).
func parseAddrPort(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return ap, fmt.Errorf("launcher address %q: %w", s, err)
	}
	return ap, nil
}
