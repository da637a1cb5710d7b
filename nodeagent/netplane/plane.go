package netplane

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	"github.com/vishvananda/netlink"

	"vhpc/nodeagent/vm"
)

// Plane makes and removes the job networks of one runner namespace (the
// runner's domain namespace, Config.Namespace). Its methods are safe for
// concurrent use on distinct keys.
type Plane struct {
	ns      string
	log     *slog.Logger
	procSys string // /proc/sys
}

// New returns the plane of namespace ns (1..16 of [a-z0-9], as the
// runner's domain namespace); it touches nothing on the host. log nil =
// slog.Default().
func New(ns string, log *slog.Logger) (*Plane, error) {
	if err := vm.CheckNamespace(ns); err != nil {
		return nil, fmt.Errorf("netplane: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Plane{ns: ns, log: log.With("component", "netplane"), procSys: "/proc/sys"}, nil
}

// Names returns the bridge and VXLAN device names of key in this plane.
func (p *Plane) Names(key Key) (bridge, vxlan string) { return Names(p.ns, key) }

// Ensure makes (or repairs) the network n on this node and returns the
// bridge the guest's NIC joins. It is idempotent and converges: run again
// with the same n after an agent restart it changes nothing; with other
// remotes it rewrites the FDB; a VXLAN device with the wrong VNI, port or
// local address is replaced. It never touches a device of the same name
// whose alias is not n's (an error). On error the caller still owns
// whatever was made and calls Remove.
func (p *Plane) Ensure(n JobNet) (string, error) {
	n, err := n.check()
	if err != nil {
		return "", err
	}
	brName, vxName := p.Names(n.Key)
	br, err := p.ensureBridge(brName, n)
	if err != nil {
		return "", fmt.Errorf("netplane: %s: %w", n.Key, err)
	}
	if len(n.Remotes) == 0 {
		err = p.removeLink(vxName, n.Key, "vxlan")
	} else {
		err = p.ensureVxlan(vxName, br, n)
	}
	if err != nil {
		return "", fmt.Errorf("netplane: %s: %w", n.Key, err)
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return "", fmt.Errorf("netplane: %s: bring up %s: %w", n.Key, brName, err)
	}
	if err := p.seal(br); err != nil {
		return "", fmt.Errorf("netplane: %s: %w", n.Key, err)
	}
	return brName, nil
}

func (p *Plane) ensureBridge(name string, n JobNet) (netlink.Link, error) {
	l, err := p.own(name, n.Key, "bridge")
	if err != nil {
		return nil, err
	}
	if l == nil {
		// The alias is set right after creation (netlink does not send it
		// with a new link): a crash in between leaves a device without
		// it, which Ensure refuses, and an operator removes by its name.
		off := false
		la := netlink.NewLinkAttrs()
		la.Name, la.MTU, la.Alias = name, n.MTU, alias(p.ns, n.Key)
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: la, MulticastSnooping: &off}); err != nil {
			return nil, fmt.Errorf("create bridge %s: %w", name, err)
		}
		if l, err = netlink.LinkByName(name); err != nil {
			return nil, fmt.Errorf("bridge %s: %w", name, err)
		}
		if err := netlink.LinkSetAlias(l, la.Alias); err != nil {
			return nil, fmt.Errorf("bridge %s: alias: %w", name, err)
		}
		p.log.Info("job network bridge created", "bridge", name, "job", n.Job, "task", n.Task)
	}
	// Before the link comes up, so that it never gets an IPv6 link-local
	// address; sealing again after every port is added (Seal).
	if err := p.sealLink(name); err != nil {
		return nil, err
	}
	if l.Attrs().MTU != n.MTU {
		if err := netlink.LinkSetMTU(l, n.MTU); err != nil {
			return nil, fmt.Errorf("bridge %s: MTU %d: %w", name, n.MTU, err)
		}
	}
	return l, nil
}

func (p *Plane) ensureVxlan(name string, br netlink.Link, n JobNet) error {
	l, err := p.own(name, n.Key, "vxlan")
	if err != nil {
		return err
	}
	if vx, ok := l.(*netlink.Vxlan); ok {
		local, _ := netip.AddrFromSlice(vx.SrcAddr)
		if uint32(vx.VxlanId) != n.VNI || vx.Port != int(n.Local.Port) || local.Unmap() != n.Local.IP || vx.Learning {
			p.log.Warn("job network VXLAN device differs, replacing it", "vxlan", name, "vni", vx.VxlanId, "port", vx.Port, "local", local)
			if err := netlink.LinkDel(l); err != nil {
				return fmt.Errorf("delete %s: %w", name, err)
			}
			l = nil
		}
	}
	if l == nil {
		la := netlink.NewLinkAttrs()
		la.Name, la.MTU, la.Alias = name, n.MTU, alias(p.ns, n.Key)
		vx := &netlink.Vxlan{LinkAttrs: la, VxlanId: int(n.VNI), SrcAddr: n.Local.IP.AsSlice(),
			Port: int(n.Local.Port), Learning: false}
		if err := netlink.LinkAdd(vx); err != nil {
			return fmt.Errorf("create VXLAN %s (VNI %d, %s): %w", name, n.VNI, n.Local, err)
		}
		if l, err = netlink.LinkByName(name); err != nil {
			return fmt.Errorf("VXLAN %s: %w", name, err)
		}
		if err := netlink.LinkSetAlias(l, la.Alias); err != nil {
			return fmt.Errorf("VXLAN %s: alias: %w", name, err)
		}
		p.log.Info("job network VXLAN created", "vxlan", name, "vni", n.VNI, "local", n.Local.String(), "job", n.Job, "task", n.Task)
	}
	if err := p.sealLink(name); err != nil {
		return err
	}
	if l.Attrs().MTU != n.MTU {
		if err := netlink.LinkSetMTU(l, n.MTU); err != nil {
			return fmt.Errorf("VXLAN %s: MTU %d: %w", name, n.MTU, err)
		}
	}
	if l.Attrs().MasterIndex != br.Attrs().Index {
		if err := netlink.LinkSetMaster(l, br); err != nil {
			return fmt.Errorf("enslave %s to %s: %w", name, br.Attrs().Name, err)
		}
	}
	if err := p.syncFDB(l.Attrs().Index, n); err != nil {
		return fmt.Errorf("VXLAN %s: %w", name, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("bring up %s: %w", name, err)
	}
	return nil
}

// syncFDB makes the VXLAN device's remote entries exactly wantFDB(n).
func (p *Plane) syncFDB(ifindex int, n JobNet) error {
	have, err := fdbList(ifindex, n.Local.Port)
	if err != nil {
		return err
	}
	want := wantFDB(n)
	for _, e := range have {
		if !slices.Contains(want, e) {
			if err := fdbChange(false, ifindex, e); err != nil {
				return err
			}
		}
	}
	for _, e := range want {
		if !slices.Contains(have, e) {
			if err := fdbChange(true, ifindex, e); err != nil {
				return err
			}
		}
	}
	return nil
}

// Seal closes the host's own network stack on the bridge of key and on
// every port it has now (see sealLink); Ensure seals the bridge and the
// VXLAN device. The runner calls it after the guest started, when
// libvirt has added the guest's tap, which the host would otherwise
// answer on (link-local-addressed frames are handed to a port's own
// stack, not the bridge's). A missing bridge is not an error.
func (p *Plane) Seal(key Key) error {
	name, _ := p.Names(key)
	br, err := p.own(name, key, "bridge")
	if err != nil || br == nil {
		return err
	}
	if err := p.seal(br); err != nil {
		return fmt.Errorf("netplane: %s: %w", key, err)
	}
	return nil
}

func (p *Plane) seal(br netlink.Link) error {
	if err := p.sealLink(br.Attrs().Name); err != nil {
		return err
	}
	links, err := wholeDump(netlink.LinkList)
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index {
			if err := p.sealLink(l.Attrs().Name); err != nil {
				return err
			}
		}
	}
	// No address, ever: an address would open the host to the guests.
	addrs, err := wholeDump(func() ([]netlink.Addr, error) { return netlink.AddrList(br, netlink.FAMILY_ALL) })
	if err != nil {
		return fmt.Errorf("addresses of %s: %w", br.Attrs().Name, err)
	}
	for _, a := range addrs {
		p.log.Warn("removing an address from a job network bridge", "bridge", br.Attrs().Name, "addr", a.IPNet.String())
		if err := netlink.AddrDel(br, &a); err != nil {
			return fmt.Errorf("remove address %s from %s: %w", a.IPNet, br.Attrs().Name, err)
		}
	}
	return nil
}

// sealLink makes the host's stack ignore what arrives on dev: IPv6 off
// (no link-local address; every IPv6 packet dropped), and for IPv4 strict
// reverse-path filtering, which, on a device without an address and with
// no route through it, rejects every packet and every ARP request for any
// of the host's addresses (without it Linux, a weak host, would accept a
// packet for its address on another interface from a guest that sends it
// to the bridge's MAC), and arp_ignore=8 (never answer ARP).
func (p *Plane) sealLink(dev string) error {
	for _, s := range []struct {
		path, value string
		optional    bool // IPv6 may be off in the kernel
	}{
		{"net/ipv6/conf/" + dev + "/disable_ipv6", "1", true},
		{"net/ipv4/conf/" + dev + "/rp_filter", "1", false},
		{"net/ipv4/conf/" + dev + "/arp_ignore", "8", false},
	} {
		path := filepath.Join(p.procSys, s.path)
		if err := os.WriteFile(path, []byte(s.value), 0o644); err != nil {
			if s.optional && errors.Is(err, os.ErrNotExist) {
				continue
			}
			return fmt.Errorf("seal %s: %w", dev, err)
		}
	}
	return nil
}

// Remove deletes the VXLAN device and bridge of key, if they exist and are
// this plane's (a device of that name with another alias is an error and
// is left alone). The runner calls it after the guest is gone (libvirt
// has removed its tap); it is idempotent.
func (p *Plane) Remove(key Key) error {
	br, vx := p.Names(key)
	return errors.Join(p.removeLink(vx, key, "vxlan"), p.removeLink(br, key, "bridge"))
}

func (p *Plane) removeLink(name string, key Key, kind string) error {
	l, err := p.own(name, key, kind)
	if err != nil || l == nil {
		return err
	}
	if err := netlink.LinkDel(l); err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("netplane: delete %s: %w", name, err)
	}
	p.log.Info("job network device removed", "device", name, "job", key.Job, "task", key.Task)
	return nil
}

// own returns the link name if it is this plane's device of key and kind,
// nil if there is none, and an error if a link of that name is something
// else.
func (p *Plane) own(name string, key Key, kind string) (netlink.Link, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, nil
		}
		return nil, fmt.Errorf("netplane: look up %s: %w", name, err)
	}
	ns, k, ok := parseAlias(l.Attrs().Alias)
	if !ok || ns != p.ns || k != key || l.Type() != kind {
		return nil, fmt.Errorf("netplane: %s exists (%s, alias %q) and is not the %s of %s in namespace %s: not touching it",
			name, l.Type(), l.Attrs().Alias, kind, key, p.ns)
	}
	return l, nil
}

// Device is one device of a job network, as List finds it.
type Device struct {
	Name      string
	Kind      string // "bridge" or "vxlan"
	Namespace string
	Key       Key
}

// List returns every job network device on the host (all namespaces),
// recognised by its alias. It needs no privileges.
func List() ([]Device, error) {
	links, err := wholeDump(netlink.LinkList)
	if err != nil {
		return nil, fmt.Errorf("netplane: list links: %w", err)
	}
	var out []Device
	for _, l := range links {
		if ns, key, ok := parseAlias(l.Attrs().Alias); ok {
			out = append(out, Device{Name: l.Attrs().Name, Kind: l.Type(), Namespace: ns, Key: key})
		}
	}
	return out, nil
}

// Cleanup removes the networks of this plane's namespace whose key keep
// rejects and returns their keys: the runner calls it at start-up, keeping
// the keys that still have a domain. Devices of other namespaces are never
// touched.
func (p *Plane) Cleanup(keep func(Key) bool) ([]Key, error) {
	devs, err := List()
	if err != nil {
		return nil, err
	}
	var gone []Key
	var errs []error
	for _, d := range devs {
		if d.Namespace != p.ns || keep(d.Key) || slices.Contains(gone, d.Key) {
			continue
		}
		if err := p.Remove(d.Key); err != nil {
			errs = append(errs, err)
			continue
		}
		gone = append(gone, d.Key)
	}
	return gone, errors.Join(errs...)
}

// dumpAttempts bounds how often wholeDump repeats an interrupted dump.
const dumpAttempts = 10

// wholeDump runs a netlink dump (list) again while the kernel reports it
// was interrupted (netlink.ErrDumpInterrupted: a device or address changed
// while the dump ran, so the result may be incomplete), which happens
// whenever another job's network is built or torn down at the same time.
// Seal and List call it: sealing from a partial list could miss a port,
// and a partial List could miss a stale network. It returns the first
// complete dump, or the error once dumpAttempts dumps were all interrupted.
func wholeDump[T any](list func() ([]T, error)) ([]T, error) {
	for attempt := 1; ; attempt++ {
		out, err := list()
		if err == nil || !errors.Is(err, netlink.ErrDumpInterrupted) || attempt == dumpAttempts {
			return out, err
		}
	}
}
