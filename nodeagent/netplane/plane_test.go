package netplane

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// requireNetAdmin skips a test that makes real network devices unless the
// process is root with CAP_NET_ADMIN; with VHPC_E2E=1 it fails instead.
func requireNetAdmin(t *testing.T) {
	t.Helper()
	reason := ""
	if os.Geteuid() != 0 {
		reason = "not root"
	} else if !hasCapNetAdmin() {
		reason = "no CAP_NET_ADMIN"
	}
	if reason == "" {
		return
	}
	if os.Getenv("VHPC_E2E") == "1" {
		t.Fatalf("VHPC_E2E=1 but %s: this test makes bridges, VXLAN devices and network namespaces", reason)
	}
	t.Skipf("%s: this test makes real network devices; run as root (VHPC_E2E=1 makes this a failure)", reason)
}

func hasCapNetAdmin() bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<unix.CAP_NET_ADMIN) != 0
		}
	}
	return false
}

// testPlane is a plane of a fresh random namespace; its networks are
// removed when the test ends.
func testPlane(t *testing.T) *Plane {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	p, err := New("t"+hex.EncodeToString(b), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := p.Cleanup(func(Key) bool { return false }); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return p
}

// freePorts returns n UDP ports that are free now.
func freePorts(t *testing.T, n int) []uint16 {
	t.Helper()
	var out []uint16
	var conns []*net.UDPConn
	for range n {
		c, err := net.ListenUDP("udp", &net.UDPAddr{})
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		out = append(out, uint16(c.LocalAddr().(*net.UDPAddr).Port))
	}
	for _, c := range conns {
		c.Close()
	}
	return out
}

func loopback(port uint16) Underlay {
	return Underlay{IP: netip.MustParseAddr("127.0.0.1"), Port: port}
}

func readSysctl(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/" + path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// checkNet verifies the devices of n as Ensure made them.
func checkNet(t *testing.T, p *Plane, n JobNet) {
	t.Helper()
	brName, vxName := p.Names(n.Key)
	br, err := netlink.LinkByName(brName)
	if err != nil {
		t.Fatalf("bridge: %v", err)
	}
	mtu := n.MTU
	if mtu == 0 {
		mtu = DefaultMTU
	}
	if br.Type() != "bridge" || br.Attrs().MTU != mtu || br.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("bridge %s: type %s, MTU %d, flags %v; want an up bridge of MTU %d", brName, br.Type(), br.Attrs().MTU, br.Attrs().Flags, mtu)
	}
	if addrs, err := netlink.AddrList(br, netlink.FAMILY_ALL); err != nil || len(addrs) != 0 {
		t.Errorf("bridge %s has addresses %v (%v); want none", brName, addrs, err)
	}
	if v := readSysctl(t, "net/ipv6/conf/"+brName+"/disable_ipv6"); v != "1" {
		t.Errorf("bridge %s: disable_ipv6 = %s", brName, v)
	}
	if v := readSysctl(t, "net/ipv4/conf/"+brName+"/rp_filter"); v != "1" {
		t.Errorf("bridge %s: rp_filter = %s", brName, v)
	}
	l, err := netlink.LinkByName(vxName)
	if len(n.Remotes) == 0 {
		if err == nil {
			t.Errorf("VXLAN %s exists for a single-node network", vxName)
		}
		return
	}
	if err != nil {
		t.Fatalf("VXLAN: %v", err)
	}
	vx, ok := l.(*netlink.Vxlan)
	if !ok {
		t.Fatalf("%s is a %s", vxName, l.Type())
	}
	if uint32(vx.VxlanId) != n.VNI || vx.Port != int(n.Local.Port) || !vx.SrcAddr.Equal(net.IP(n.Local.IP.AsSlice())) || vx.Learning {
		t.Errorf("VXLAN %s: VNI %d port %d local %s learning %v; want VNI %d port %d local %s learning off",
			vxName, vx.VxlanId, vx.Port, vx.SrcAddr, vx.Learning, n.VNI, n.Local.Port, n.Local.IP)
	}
	if vx.MasterIndex != br.Attrs().Index || vx.MTU != mtu || vx.Flags&net.FlagUp == 0 {
		t.Errorf("VXLAN %s: master %d MTU %d flags %v; want up in %s (%d) with MTU %d", vxName, vx.MasterIndex, vx.MTU, vx.Flags, brName, br.Attrs().Index, mtu)
	}
	have, err := fdbList(vx.Index, n.Local.Port)
	if err != nil {
		t.Fatal(err)
	}
	want := wantFDB(n)
	slices.SortFunc(have, cmpFDB)
	slices.SortFunc(want, cmpFDB)
	if !slices.Equal(have, want) {
		t.Errorf("FDB of %s:\n have %v\n want %v", vxName, have, want)
	}
}

func cmpFDB(a, b fdbEntry) int {
	return strings.Compare(a.MAC+" "+a.Dst.String(), b.MAC+" "+b.Dst.String())
}

func requireGone(t *testing.T, p *Plane, key Key) {
	t.Helper()
	br, vx := p.Names(key)
	for _, name := range []string{br, vx} {
		if _, err := netlink.LinkByName(name); err == nil {
			t.Errorf("%s still exists", name)
		}
	}
}

// TestEnsureRemove: Ensure makes the bridge and VXLAN with the right VNI,
// port, FDB and no address; again it changes nothing; with other remotes
// it converges; Remove leaves nothing, twice.
func TestEnsureRemove(t *testing.T) {
	requireNetAdmin(t)
	p := testPlane(t)
	ports := freePorts(t, 3)
	n := JobNet{Key: Key{Job: 123456789}, VNI: DefaultVNI(123456789, 0), Local: loopback(ports[0]),
		Remotes: []Remote{
			{Underlay: Underlay{IP: netip.MustParseAddr("127.0.0.2"), Port: DefaultPort}, MACs: []string{"52:54:00:77:00:02"}},
			{Underlay: loopback(ports[1])},
		}}
	br, err := p.Ensure(n)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := p.Names(n.Key); br != want {
		t.Errorf("Ensure returned %q, want %q", br, want)
	}
	checkNet(t, p, n)
	vx0, _ := netlink.LinkByName("vx" + br[2:])
	if _, err := p.Ensure(n); err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	checkNet(t, p, n)
	if vx1, _ := netlink.LinkByName("vx" + br[2:]); vx1 == nil || vx1.Attrs().Index != vx0.Attrs().Index {
		t.Errorf("second Ensure replaced the VXLAN device")
	}

	n.Remotes = []Remote{{Underlay: loopback(ports[2]), MACs: []string{"52:54:00:77:00:03"}}}
	n.MTU = 1400
	if _, err := p.Ensure(n); err != nil {
		t.Fatalf("Ensure with other remotes: %v", err)
	}
	checkNet(t, p, n)

	n.Local.Port = ports[1] // another port: the device is replaced
	if _, err := p.Ensure(n); err != nil {
		t.Fatalf("Ensure with another local port: %v", err)
	}
	checkNet(t, p, n)

	n.Remotes = nil // single node: no VXLAN device
	if _, err := p.Ensure(n); err != nil {
		t.Fatalf("Ensure without remotes: %v", err)
	}
	checkNet(t, p, n)

	for range 2 {
		if err := p.Remove(n.Key); err != nil {
			t.Fatal(err)
		}
		requireGone(t, p, n.Key)
	}
}

// TestForeignDevice: a device with one of our names but not our alias is
// never used or removed.
func TestForeignDevice(t *testing.T) {
	requireNetAdmin(t)
	p := testPlane(t)
	key := Key{Job: 77}
	br, _ := p.Names(key)
	la := netlink.NewLinkAttrs()
	la.Name = br
	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil {
		t.Fatal(err)
	}
	defer netlink.LinkDel(&netlink.Bridge{LinkAttrs: la})
	n := JobNet{Key: key, VNI: 78, Local: loopback(freePorts(t, 1)[0])}
	if _, err := p.Ensure(n); err == nil || !strings.Contains(err.Error(), "not touching it") {
		t.Errorf("Ensure over a foreign device: %v", err)
	}
	if err := p.Remove(key); err == nil {
		t.Errorf("Remove of a foreign device succeeded")
	}
	if _, err := netlink.LinkByName(br); err != nil {
		t.Errorf("foreign device gone: %v", err)
	}
}

// TestListCleanup: Cleanup removes the networks of its own namespace that
// keep rejects, and nothing of another namespace.
func TestListCleanup(t *testing.T) {
	requireNetAdmin(t)
	a, b := testPlane(t), testPlane(t)
	ports := freePorts(t, 2)
	mk := func(p *Plane, job uint64, local, remote uint16) {
		t.Helper()
		if _, err := p.Ensure(JobNet{Key: Key{Job: job}, VNI: DefaultVNI(job, 0), Local: loopback(local),
			Remotes: []Remote{{Underlay: loopback(remote)}}}); err != nil {
			t.Fatal(err)
		}
	}
	mk(a, 1, ports[0], ports[1])
	mk(a, 2, ports[0], ports[1])
	mk(b, 1, ports[1], ports[0])
	devs, err := List()
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, d := range devs {
		count[d.Namespace+"/"+strconv.FormatUint(d.Key.Job, 10)+"/"+d.Kind]++
	}
	for _, k := range []string{a.ns + "/1/bridge", a.ns + "/1/vxlan", a.ns + "/2/bridge", a.ns + "/2/vxlan", b.ns + "/1/bridge", b.ns + "/1/vxlan"} {
		if count[k] != 1 {
			t.Errorf("List: %d of %s, want 1 (%v)", count[k], k, devs)
		}
	}
	gone, err := a.Cleanup(func(k Key) bool { return k.Job == 1 })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gone, []Key{{Job: 2}}) {
		t.Errorf("Cleanup removed %v, want job 2 only", gone)
	}
	requireGone(t, a, Key{Job: 2})
	for _, p := range []*Plane{a, b} {
		br, vx := p.Names(Key{Job: 1})
		for _, name := range []string{br, vx} {
			if _, err := netlink.LinkByName(name); err != nil {
				t.Errorf("Cleanup removed %s (%s job 1): %v", name, p.ns, err)
			}
		}
	}
}

// guestNS is a network namespace standing in for a guest: a veth whose
// host end is a port of a job bridge, the other end eth0 inside.
type guestNS struct {
	ns     netns.NsHandle
	h      *netlink.Handle
	host   string // the host end's name
	hostIx int
}

func newGuestNS(t *testing.T, bridge string, addr netip.Prefix, mtu int) *guestNS {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New() // switches this thread into it
	if err != nil {
		t.Fatal(err)
	}
	if err := netns.Set(orig); err != nil {
		t.Fatalf("back to the original network namespace: %v", err) // the thread stays locked and dies
	}
	g := &guestNS{ns: ns}
	t.Cleanup(func() { g.ns.Close() })
	if g.h, err = netlink.NewHandleAt(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.h.Close)
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	g.host = "vht" + hex.EncodeToString(b)
	br, err := netlink.LinkByName(bridge)
	if err != nil {
		t.Fatal(err)
	}
	la := netlink.NewLinkAttrs()
	la.Name, la.MTU, la.MasterIndex = g.host, mtu, br.Attrs().Index
	veth := &netlink.Veth{LinkAttrs: la, PeerName: "vhg" + hex.EncodeToString(b)}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netlink.LinkDel(veth) })
	hl, err := netlink.LinkByName(g.host)
	if err != nil {
		t.Fatal(err)
	}
	g.hostIx = hl.Attrs().Index
	peer, err := netlink.LinkByName(veth.PeerName)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetNsFd(peer, int(ns)); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(hl); err != nil {
		t.Fatal(err)
	}
	in, err := g.h.LinkByName(veth.PeerName)
	if err != nil {
		t.Fatal(err)
	}
	lo, err := g.h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := g.h.AddrAdd(in, &netlink.Addr{IPNet: &net.IPNet{IP: addr.Addr().AsSlice(), Mask: net.CIDRMask(addr.Bits(), 32)}}); err != nil {
		t.Fatal(err)
	}
	for _, l := range []netlink.Link{lo, in} {
		if err := g.h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

// inNS runs f (which opens sockets) with this thread in g's namespace;
// sockets keep the namespace they were opened in.
func (g *guestNS) inNS(t *testing.T, f func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer orig.Close()
	if err := netns.Set(g.ns); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	f()
	if err := netns.Set(orig); err != nil {
		t.Fatalf("back to the original network namespace: %v", err) // the thread stays locked and dies
	}
	runtime.UnlockOSThread()
}

// dial opens a UDP socket in g.
func (g *guestNS) dial(t *testing.T, to netip.AddrPort) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	var err error
	g.inNS(t, func() { c, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to)) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// listen opens a UDP socket in g.
func (g *guestNS) listen(t *testing.T, at netip.AddrPort) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	var err error
	g.inNS(t, func() { c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(at)) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// received reports whether c gets want within d.
func received(t *testing.T, c *net.UDPConn, want []byte, d time.Duration) bool {
	t.Helper()
	buf := make([]byte, 65536)
	deadline := time.Now().Add(d)
	for {
		if err := c.SetReadDeadline(deadline); err != nil {
			t.Fatal(err)
		}
		n, err := c.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(buf[:n], want) {
			return true
		}
	}
}

// TestTwoNodesOneHost is the cross-host proof without VMs: two planes (two
// agents' namespaces) on one host with the same job and VNI but different
// underlay ports; a "guest" namespace on each bridge; datagrams of full
// MTU size cross the VXLAN both ways. A third network with the same VNI
// and port as one of them is refused (the VNI wrap-around caveat).
func TestTwoNodesOneHost(t *testing.T) {
	requireNetAdmin(t)
	a, b := testPlane(t), testPlane(t)
	ports := freePorts(t, 2)
	key := Key{Job: 4242}
	vni := DefaultVNI(key.Job, key.Task)
	na := JobNet{Key: key, VNI: vni, Local: loopback(ports[0]), Remotes: []Remote{{Underlay: loopback(ports[1]), MACs: nil}}}
	nb := JobNet{Key: key, VNI: vni, Local: loopback(ports[1]), Remotes: []Remote{{Underlay: loopback(ports[0])}}}
	bra, err := a.Ensure(na)
	if err != nil {
		t.Fatal(err)
	}
	brb, err := b.Ensure(nb)
	if err != nil {
		t.Fatal(err)
	}
	if bra == brb {
		t.Fatalf("two namespaces share bridge %s", bra)
	}
	checkNet(t, a, na)
	checkNet(t, b, nb)

	ga := newGuestNS(t, bra, netip.MustParsePrefix("10.77.0.1/16"), DefaultMTU)
	gb := newGuestNS(t, brb, netip.MustParsePrefix("10.77.0.2/16"), DefaultMTU)
	for _, g := range []struct {
		p   *Plane
		key Key
	}{{a, key}, {b, key}} {
		if err := g.p.Seal(g.key); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range []*guestNS{ga, gb} {
		if v := readSysctl(t, "net/ipv4/conf/"+g.host+"/rp_filter"); v != "1" {
			t.Errorf("port %s not sealed: rp_filter %s", g.host, v)
		}
	}

	srvB := gb.listen(t, netip.MustParseAddrPort("10.77.0.2:9000"))
	srvA := ga.listen(t, netip.MustParseAddrPort("10.77.0.1:9000"))
	// Full-size datagram: IP 20 + UDP 8 + payload = the MTU, no fragments.
	big := bytes.Repeat([]byte("x"), DefaultMTU-28)
	cliA := ga.dial(t, netip.MustParseAddrPort("10.77.0.2:9000"))
	cliB := gb.dial(t, netip.MustParseAddrPort("10.77.0.1:9000"))
	ok := false
	for range 10 { // the first datagrams may go while ARP resolves
		if _, err := cliA.Write(big); err != nil {
			t.Fatal(err)
		}
		if received(t, srvB, big, 300*time.Millisecond) {
			ok = true
			break
		}
	}
	if !ok {
		t.Fatalf("no datagram from guest A (%s) reached guest B (%s) across VNI %d", bra, brb, vni)
	}
	if _, err := cliB.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if !received(t, srvA, []byte("pong"), 2*time.Second) {
		t.Fatalf("no datagram from guest B reached guest A")
	}

	// Same VNI and port on one host: the kernel refuses a second device.
	c := testPlane(t)
	if _, err := c.Ensure(JobNet{Key: Key{Job: 4242 + MaxVNI}, VNI: vni, Local: loopback(ports[0]),
		Remotes: []Remote{{Underlay: loopback(ports[1])}}}); err == nil {
		t.Errorf("a second network with VNI %d on port %d was made", vni, ports[0])
	} else {
		t.Logf("same VNI and port refused, as documented: %v", err)
	}
}

// TestHostUnreachable: a guest on a job bridge cannot reach a service of
// the host, neither through the bridge (sealed by Ensure) nor through its
// own port with a link-local destination MAC (sealed by Seal).
func TestHostUnreachable(t *testing.T) {
	requireNetAdmin(t)
	p := testPlane(t)
	key := Key{Job: 99}
	bridge, err := p.Ensure(JobNet{Key: key, VNI: 100, Local: loopback(freePorts(t, 1)[0])})
	if err != nil {
		t.Fatal(err)
	}
	g := newGuestNS(t, bridge, netip.MustParsePrefix("10.77.0.1/16"), DefaultMTU)

	// A host service on an address of another interface (weak host model).
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	la := netlink.NewLinkAttrs()
	la.Name = "vhd" + hex.EncodeToString(b)
	dummy := &netlink.Bridge{LinkAttrs: la} // no dummy driver in every kernel
	if err := netlink.LinkAdd(dummy); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netlink.LinkDel(dummy) })
	hostIP := netip.MustParseAddr("198.51.100.77")
	if err := netlink.AddrAdd(dummy, &netlink.Addr{IPNet: &net.IPNet{IP: hostIP.AsSlice(), Mask: net.CIDRMask(32, 32)}}); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(dummy); err != nil {
		t.Fatal(err)
	}
	srv, err := net.ListenUDP("udp", &net.UDPAddr{Port: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	svc := netip.AddrPortFrom(hostIP, uint16(srv.LocalAddr().(*net.UDPAddr).Port))

	in, err := g.h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var eth netlink.Link
	for _, l := range in {
		if l.Type() == "veth" {
			eth = l
		}
	}
	if err := g.h.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Dst: &net.IPNet{IP: hostIP.AsSlice(), Mask: net.CIDRMask(32, 32)}}); err != nil {
		t.Fatal(err)
	}
	brLink, err := netlink.LinkByName(bridge)
	if err != nil {
		t.Fatal(err)
	}
	// send sends to the host service with the frame addressed to mac.
	round := 0
	send := func(mac net.HardwareAddr) bool {
		t.Helper()
		if err := g.h.NeighSet(&netlink.Neigh{LinkIndex: eth.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
			IP: hostIP.AsSlice(), HardwareAddr: mac}); err != nil {
			t.Fatal(err)
		}
		c := g.dial(t, svc)
		round++ // each round its own message: earlier copies may still be queued
		msg := []byte("knock " + mac.String() + " " + strconv.Itoa(round))
		for range 3 {
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
		}
		return received(t, srv, msg, 500*time.Millisecond)
	}
	lldp := net.HardwareAddr{0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e}

	if send(brLink.Attrs().HardwareAddr) {
		t.Errorf("a guest reached the host service %s through bridge %s", svc, bridge)
	}
	// Controls, showing what the sealing is for (when rp_filter is off
	// host-wide): a bridge without an address but unsealed takes packets
	// for the host's other addresses (weak host model), and an unsealed
	// port hands a link-local-addressed frame to the host's stack.
	open := readSysctl(t, "net/ipv4/conf/all/rp_filter") == "0" && readSysctl(t, "net/ipv4/conf/"+g.host+"/rp_filter") == "0"
	if err := os.WriteFile("/proc/sys/net/ipv4/conf/"+bridge+"/rp_filter", []byte("0"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := send(brLink.Attrs().HardwareAddr); open && !got {
		t.Logf("control: the unsealed bridge %s did not take a packet for the host on this kernel", bridge)
	} else if got {
		t.Logf("control: the unsealed bridge %s took a packet for the host, as expected", bridge)
	}
	if got := send(lldp); open && !got {
		t.Logf("control: the unsealed port %s did not pass a link-local frame up on this kernel", g.host)
	} else if got {
		t.Logf("control: the unsealed port %s passed a link-local frame to the host, as expected", g.host)
	}
	if err := p.Seal(key); err != nil {
		t.Fatal(err)
	}
	if send(lldp) {
		t.Errorf("after Seal a guest reached the host service %s through its port %s", svc, g.host)
	}
	if send(brLink.Attrs().HardwareAddr) {
		t.Errorf("after Seal a guest reached the host service %s through bridge %s", svc, bridge)
	}
}
