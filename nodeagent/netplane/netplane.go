// Package netplane gives the guests of one multi-node job (one gang: a job,
// or one task of an array job) a private layer-2 network that spans its
// nodes and reaches nothing else: not other jobs' guests, not the host.
//
// On every node of the gang the runner (nodeagent/runner) calls
// Plane.Ensure before it starts the guest and Plane.Remove after the guest
// is gone. Ensure makes
//
//   - a Linux bridge without any IP address, IPv6 disabled, and the host's
//     stack closed on it (see Plane.Seal): the guest's tap (created by
//     libvirt from <interface type="bridge">) is its port;
//   - when the gang has guests on other nodes, a VXLAN device on that
//     bridge: the gang's VNI, learning off, this node's underlay address
//     and UDP port, and static FDB entries (all-zero MAC, appended) to
//     every other node's underlay ip:port, so broadcast and unknown
//     unicast reach each other node once, plus one unicast entry per known
//     guest MAC behind a remote so known unicast goes to its node only.
//
// Device names are `vb` (bridge) and `vx` (VXLAN) followed by 4 hex digits
// of a hash of the plane's namespace and 9 hex digits of a hash of the
// namespace, job and task: 15 characters, the most a Linux interface name
// may have. The names only have to be unique; what a device is, is written
// in its alias ("vhpc-net ns=<ns> job=<job> task=<task>"), so that List
// and Cleanup (a restarted agent) find every device of a namespace, and
// Ensure and Remove never touch a device whose alias is not the one they
// expect (a hash collision is an error, never a shared network).
//
// The package needs CAP_NET_ADMIN and a writable /proc/sys for Ensure,
// Remove, Seal and Cleanup (List works unprivileged). Devices live in the
// network namespace of the calling process: libvirtd's QEMU runs in the
// root namespace, so the agent does too.
package netplane

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"vhpc/nodeagent/vm"
)

// DefaultPort is the IANA VXLAN port, the underlay port when none is given.
const DefaultPort = 4789

// DefaultMTU is the job network's MTU when JobNet.MTU is 0: a 1500-byte
// underlay less the VXLAN overhead over IPv4 (Overhead4). Every guest of a
// gang must use the same MTU (the runner passes it to the guest's NIC).
const DefaultMTU = 1450

// Overhead4 and Overhead6 are the bytes VXLAN adds over an IPv4 or IPv6
// underlay (outer Ethernet 14 + IP 20/40 + UDP 8 + VXLAN 8): the job
// network's MTU is the underlay MTU less this.
const (
	Overhead4 = 50
	Overhead6 = 70
)

// MaxVNI is the largest VNI DefaultVNI returns (0xFFFFFF is left out;
// some switches reserve it).
const MaxVNI = 1<<24 - 2

// aliasPrefix starts the alias of every device this package makes.
const aliasPrefix = "vhpc-net "

// Underlay is a node's VXLAN endpoint: the address and UDP port its VXLAN
// devices send from and listen on. Each node agent has one; two agents on
// one host (tests) need different ports, since the kernel allows one
// device per VNI and port whatever the local address.
type Underlay struct {
	IP   netip.Addr
	Port uint16
}

// String is "IP:PORT" ("[IPv6]:PORT").
func (u Underlay) String() string { return netip.AddrPortFrom(u.IP, u.Port).String() }

// ParseUnderlay parses "IP", "IP:PORT" or "[IPv6]:PORT"; the port defaults
// to DefaultPort. The agent calls it on its configured underlay address.
func ParseUnderlay(s string) (Underlay, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		u := Underlay{IP: ap.Addr().Unmap(), Port: ap.Port()}
		return u, u.check()
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return Underlay{}, fmt.Errorf("underlay %q: want IP or IP:PORT", s)
	}
	u := Underlay{IP: ip.Unmap(), Port: DefaultPort}
	return u, u.check()
}

func (u Underlay) check() error {
	switch {
	case !u.IP.IsValid():
		return errors.New("underlay: no IP address")
	case u.IP.Zone() != "":
		return fmt.Errorf("underlay %s: zoned (link-local) addresses are not supported", u)
	case u.IP.IsUnspecified() || u.IP.IsMulticast():
		return fmt.Errorf("underlay %s: want a unicast address", u)
	case u.Port == 0:
		return fmt.Errorf("underlay %s: port 0", u)
	}
	return nil
}

// Remote is another node of the gang.
type Remote struct {
	Underlay Underlay
	// MACs are the guest MACs on that node (guestproto.GuestMAC of its
	// ranks); optional. Each gets a unicast FDB entry so that traffic to
	// it is not flooded to every node.
	MACs []string
}

// Key names one gang's network on a node: a job, or one task of an array
// job (a multi-node array job runs one gang per task, and two of them may
// share a node).
type Key struct {
	Job  uint64
	Task int64
}

func (k Key) String() string { return fmt.Sprintf("job %d task %d", k.Job, k.Task) }

// JobNet is what Ensure needs to build one gang's network on this node.
type JobNet struct {
	Key
	// VNI is the gang's VXLAN network identifier, the same on all its
	// nodes: 1..16777215 (DefaultVNI gives one).
	VNI uint32
	// MTU of the bridge and VXLAN device, and of the guests' interfaces;
	// 0 = DefaultMTU. It must be at most the underlay MTU less Overhead4
	// (Overhead6) and the same on every node of the gang.
	MTU int
	// Local is this node's underlay endpoint.
	Local Underlay
	// Remotes are the gang's other nodes; none = a single-node network
	// (no VXLAN device).
	Remotes []Remote
}

// DefaultVNI derives a gang's VNI from its key: job%MaxVNI + 1 for a plain
// job (task 0), mixed with the task for array tasks. It is deterministic,
// so every node computes the same VNI without being told.
//
// Caveat: 24 bits wrap. Jobs MaxVNI apart (and, rarely, an array task and
// another job) share a VNI. Two gangs with the same VNI cannot coexist on
// one node (Ensure fails: the kernel refuses a second device with the same
// VNI and port), so they can only meet when their node sets are disjoint,
// and then no FDB entry of one points at the other; the one window is a
// node that just left one gang (Remove) and joined the other while a
// stale peer still floods to it. The master assigning VNIs unique among
// running gangs would close it.
func DefaultVNI(job uint64, task int64) uint32 {
	v := job
	if task != 0 {
		v += uint64(task) * 2654435761 // Knuth's multiplicative hash constant
	}
	return uint32(v%MaxVNI) + 1
}

// check validates n and fills in the defaults.
func (n JobNet) check() (JobNet, error) {
	if n.VNI == 0 || n.VNI > 1<<24-1 {
		return n, fmt.Errorf("netplane: %s: VNI %d: want 1..%d", n.Key, n.VNI, 1<<24-1)
	}
	if n.MTU == 0 {
		n.MTU = DefaultMTU
	}
	if n.MTU < 1280 || n.MTU > 65535-Overhead6 {
		return n, fmt.Errorf("netplane: %s: MTU %d: want 1280..%d", n.Key, n.MTU, 65535-Overhead6)
	}
	if err := n.Local.check(); err != nil {
		return n, fmt.Errorf("netplane: %s: local %w", n.Key, err)
	}
	seen := map[Underlay]bool{n.Local: true}
	for _, r := range n.Remotes {
		if err := r.Underlay.check(); err != nil {
			return n, fmt.Errorf("netplane: %s: remote %w", n.Key, err)
		}
		if r.Underlay.IP.Is4() != n.Local.IP.Is4() {
			return n, fmt.Errorf("netplane: %s: remote %s and local %s are of different IP families", n.Key, r.Underlay, n.Local)
		}
		if seen[r.Underlay] {
			return n, fmt.Errorf("netplane: %s: underlay %s listed twice (or is the local one)", n.Key, r.Underlay)
		}
		seen[r.Underlay] = true
		for _, m := range r.MACs {
			if _, err := parseUnicastMAC(m); err != nil {
				return n, fmt.Errorf("netplane: %s: remote %s: %w", n.Key, r.Underlay, err)
			}
		}
	}
	return n, nil
}

// parseUnicastMAC accepts a 6-byte unicast MAC ("52:54:00:77:00:01").
func parseUnicastMAC(s string) (net.HardwareAddr, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return nil, fmt.Errorf("MAC %q: want six colon-separated hex bytes", s)
	}
	if hw[0]&1 != 0 || string(hw) == string(make([]byte, 6)) {
		return nil, fmt.Errorf("MAC %q: want a unicast address", s)
	}
	return hw, nil
}

// Names are the bridge and VXLAN device names of key in namespace ns
// (see the package comment). The runner passes the bridge to the domain.
func Names(ns string, key Key) (bridge, vxlan string) {
	tag := nsTag(ns)
	sum := sha256.Sum256([]byte(ns + "/" + strconv.FormatUint(key.Job, 10) + "/" + strconv.FormatInt(key.Task, 10)))
	id := hex.EncodeToString(sum[:5])[:9]
	return "vb" + tag + id, "vx" + tag + id
}

// nsTag is 4 hex digits of a hash of the namespace.
func nsTag(ns string) string {
	sum := sha256.Sum256([]byte(ns))
	return hex.EncodeToString(sum[:2])
}

// alias is the alias of both devices of key in namespace ns.
func alias(ns string, key Key) string {
	return fmt.Sprintf("%sns=%s job=%d task=%d", aliasPrefix, ns, key.Job, key.Task)
}

// parseAlias reverses alias; ok is false for any other string.
func parseAlias(s string) (ns string, key Key, ok bool) {
	rest, found := strings.CutPrefix(s, aliasPrefix)
	if !found {
		return "", key, false
	}
	f := strings.Fields(rest)
	if len(f) != 3 {
		return "", key, false
	}
	nsv, ok1 := strings.CutPrefix(f[0], "ns=")
	jobv, ok2 := strings.CutPrefix(f[1], "job=")
	taskv, ok3 := strings.CutPrefix(f[2], "task=")
	if !ok1 || !ok2 || !ok3 || vm.CheckNamespace(nsv) != nil {
		return "", key, false
	}
	job, err1 := strconv.ParseUint(jobv, 10, 64)
	task, err2 := strconv.ParseInt(taskv, 10, 64)
	if err1 != nil || err2 != nil {
		return "", key, false
	}
	return nsv, Key{Job: job, Task: task}, true
}
