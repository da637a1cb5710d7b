// Package libvirt is the only vhpc package that talks to libvirtd (it alone
// imports libvirt.org/go/libvirt; build with -tags libvirt_dlopen so that
// no libvirt headers are needed and a host without libvirt fails at run
// time with a clear error).
//
// It offers the runner a small interface, Domains, over domain life cycle:
// define+start, ACPI shutdown, destroy+undefine, list, state, live XML.
// Fake (fake.go) implements the same interface in memory for unit tests.
package libvirt

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	golibvirt "libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"
)

// State is a domain's state as the runner needs it.
type State string

// Domain states. StateAbsent means no domain of that name is defined.
const (
	StateRunning  State = "running"
	StatePaused   State = "paused"
	StateShutdown State = "shutting-down"
	StateShutoff  State = "shutoff"
	StateCrashed  State = "crashed"
	StateOther    State = "other"
	StateAbsent   State = "absent"
)

// Stopped reports whether the domain is no longer executing guest code.
func (s State) Stopped() bool {
	return s == StateShutoff || s == StateCrashed || s == StateAbsent
}

// DomainInfo is one entry of List.
type DomainInfo struct {
	Name  string
	State State
}

// Domains is what the runner needs from libvirt. Every method is safe for
// concurrent use. Names are domain names (vm.Name); methods on a name that
// is not defined return an error wrapping ErrNotFound, except
// DestroyAndUndefine (idempotent) and State (StateAbsent).
type Domains interface {
	// DefineAndStart defines d persistently and starts it. If the start
	// fails, the definition is removed again.
	DefineAndStart(ctx context.Context, d *libvirtxml.Domain) error
	// Shutdown asks the guest to power off (ACPI power button).
	Shutdown(ctx context.Context, name string) error
	// DestroyAndUndefine stops the domain hard (if running) and removes
	// its definition. An absent domain is not an error.
	DestroyAndUndefine(ctx context.Context, name string) error
	// State returns the domain's state, StateAbsent if it is not defined.
	State(ctx context.Context, name string) (State, error)
	// List returns the defined domains whose name starts with prefix.
	List(ctx context.Context, prefix string) ([]DomainInfo, error)
	// XML returns the domain's live definition.
	XML(ctx context.Context, name string) (*libvirtxml.Domain, error)
}

// ErrNotFound is wrapped by errors about domains that are not defined.
var ErrNotFound = errors.New("domain not found")

// Conn is a connection to libvirtd implementing Domains.
type Conn struct {
	uri  string
	mu   sync.Mutex // serializes reconnects; the libvirt handle itself is thread-safe
	conn *golibvirt.Connect
}

var _ Domains = (*Conn)(nil)

// Connect opens uri (e.g. "qemu:///system"). The error says how to start
// libvirtd when it is not reachable.
func Connect(uri string) (*Conn, error) {
	c, err := golibvirt.NewConnect(uri)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to libvirt at %s: %s; start it with `libvirtd -d` (and `virtlogd -d`), or run scripts/start-libvirt.sh: %w",
			uri, message(err), err)
	}
	return &Conn{uri: uri, conn: c}, nil
}

// URI returns the connection URI.
func (c *Conn) URI() string { return c.uri }

// Close closes the connection.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil
	}
	_, err := c.conn.Close()
	c.conn = nil
	if err != nil {
		return fmt.Errorf("close libvirt connection: %w", err)
	}
	return nil
}

// message extracts libvirt's message from its verbose error type.
func message(err error) string {
	var le golibvirt.Error
	if errors.As(err, &le) {
		return le.Message
	}
	return err.Error()
}

func isNoDomain(err error) bool {
	var le golibvirt.Error
	return errors.As(err, &le) && le.Code == golibvirt.ERR_NO_DOMAIN
}

func isNotRunning(err error) bool {
	var le golibvirt.Error
	return errors.As(err, &le) && le.Code == golibvirt.ERR_OPERATION_INVALID
}

// connect returns the live connection, reconnecting once when libvirtd
// was restarted under us.
func (c *Conn) connect() (*golibvirt.Connect, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		if alive, err := c.conn.IsAlive(); err == nil && alive {
			return c.conn, nil
		}
		_, _ = c.conn.Close()
		c.conn = nil
	}
	nc, err := golibvirt.NewConnect(c.uri)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to libvirt at %s: %s; start it with `libvirtd -d`: %w", c.uri, message(err), err)
	}
	c.conn = nc
	return nc, nil
}

func (c *Conn) lookup(name string) (*golibvirt.Domain, error) {
	conn, err := c.connect()
	if err != nil {
		return nil, err
	}
	d, err := conn.LookupDomainByName(name)
	if err != nil {
		if isNoDomain(err) {
			return nil, fmt.Errorf("domain %s: %w", name, ErrNotFound)
		}
		return nil, fmt.Errorf("look up domain %s: %s: %w", name, message(err), err)
	}
	return d, nil
}

// DefineAndStart implements Domains.
func (c *Conn) DefineAndStart(ctx context.Context, d *libvirtxml.Domain) error {
	x, err := d.Marshal()
	if err != nil {
		return fmt.Errorf("encode domain %s: %w", d.Name, err)
	}
	conn, err := c.connect()
	if err != nil {
		return err
	}
	dom, err := conn.DomainDefineXML(x)
	if err != nil {
		return fmt.Errorf("define domain %s: %s: %w", d.Name, message(err), err)
	}
	defer dom.Free()
	if err := dom.Create(); err != nil {
		uerr := dom.Undefine()
		return errors.Join(fmt.Errorf("start domain %s: %s: %w", d.Name, message(err), err), wrapIf(uerr, "undefine after failed start"))
	}
	return nil
}

func wrapIf(err error, what string) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Shutdown implements Domains (ACPI power button).
func (c *Conn) Shutdown(ctx context.Context, name string) error {
	dom, err := c.lookup(name)
	if err != nil {
		return err
	}
	defer dom.Free()
	if err := dom.ShutdownFlags(golibvirt.DOMAIN_SHUTDOWN_ACPI_POWER_BTN); err != nil {
		if isNotRunning(err) {
			return nil
		}
		return fmt.Errorf("shut down domain %s: %s: %w", name, message(err), err)
	}
	return nil
}

// DestroyAndUndefine implements Domains.
func (c *Conn) DestroyAndUndefine(ctx context.Context, name string) error {
	dom, err := c.lookup(name)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer dom.Free()
	if err := dom.Destroy(); err != nil && !isNotRunning(err) && !isNoDomain(err) {
		return fmt.Errorf("destroy domain %s: %s: %w", name, message(err), err)
	}
	if err := dom.UndefineFlags(golibvirt.DOMAIN_UNDEFINE_MANAGED_SAVE | golibvirt.DOMAIN_UNDEFINE_NVRAM); err != nil && !isNoDomain(err) {
		return fmt.Errorf("undefine domain %s: %s: %w", name, message(err), err)
	}
	return nil
}

func convState(s golibvirt.DomainState) State {
	switch s {
	case golibvirt.DOMAIN_RUNNING, golibvirt.DOMAIN_BLOCKED:
		return StateRunning
	case golibvirt.DOMAIN_PAUSED, golibvirt.DOMAIN_PMSUSPENDED:
		return StatePaused
	case golibvirt.DOMAIN_SHUTDOWN:
		return StateShutdown
	case golibvirt.DOMAIN_SHUTOFF:
		return StateShutoff
	case golibvirt.DOMAIN_CRASHED:
		return StateCrashed
	}
	return StateOther
}

// State implements Domains.
func (c *Conn) State(ctx context.Context, name string) (State, error) {
	dom, err := c.lookup(name)
	if errors.Is(err, ErrNotFound) {
		return StateAbsent, nil
	}
	if err != nil {
		return "", err
	}
	defer dom.Free()
	s, _, err := dom.GetState()
	if err != nil {
		if isNoDomain(err) {
			return StateAbsent, nil
		}
		return "", fmt.Errorf("state of domain %s: %s: %w", name, message(err), err)
	}
	return convState(s), nil
}

// List implements Domains.
func (c *Conn) List(ctx context.Context, prefix string) ([]DomainInfo, error) {
	conn, err := c.connect()
	if err != nil {
		return nil, err
	}
	doms, err := conn.ListAllDomains(0)
	if err != nil {
		return nil, fmt.Errorf("list domains: %s: %w", message(err), err)
	}
	var out []DomainInfo
	for i := range doms {
		d := &doms[i]
		name, err := d.GetName()
		if err == nil && strings.HasPrefix(name, prefix) {
			st, _, serr := d.GetState()
			if serr == nil {
				out = append(out, DomainInfo{Name: name, State: convState(st)})
			}
		}
		d.Free()
	}
	return out, nil
}

// XML implements Domains.
func (c *Conn) XML(ctx context.Context, name string) (*libvirtxml.Domain, error) {
	dom, err := c.lookup(name)
	if err != nil {
		return nil, err
	}
	defer dom.Free()
	x, err := dom.GetXMLDesc(0)
	if err != nil {
		return nil, fmt.Errorf("XML of domain %s: %s: %w", name, message(err), err)
	}
	var d libvirtxml.Domain
	if err := d.Unmarshal(x); err != nil {
		return nil, fmt.Errorf("decode XML of domain %s: %w", name, err)
	}
	return &d, nil
}

// WaitStopped polls d until the domain name is stopped (shut off, crashed
// or gone) or ctx ends, and returns the last state seen. interval <= 0
// means 200ms. Polling keeps this free of libvirt's global event loop; a
// state query is cheap.
func WaitStopped(ctx context.Context, d Domains, name string, interval time.Duration) (State, error) {
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		st, err := d.State(ctx, name)
		if err != nil {
			return st, err
		}
		if st.Stopped() {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-t.C:
		}
	}
}
