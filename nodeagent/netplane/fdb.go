package netplane

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// fdbEntry is one remote of a VXLAN device's forwarding database: frames
// to MAC (all zeros: broadcast and unknown unicast) go to Dst.
//
// vishvananda/netlink's Neigh has no destination port (NDA_PORT), which a
// remote on another port than our own needs (two agents on one host), so
// these few requests are built with its nl package directly.
type fdbEntry struct {
	MAC string // net.HardwareAddr.String()
	Dst Underlay
}

var zeroMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}

// fdbList returns the remote entries (NTF_SELF with a destination) of the
// VXLAN device ifindex; devPort is the device's own port, which the kernel
// leaves out of entries that use it.
func fdbList(ifindex int, devPort uint16) ([]fdbEntry, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETNEIGH, unix.NLM_F_DUMP)
	req.AddData(&netlink.Ndmsg{Family: unix.AF_BRIDGE})
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWNEIGH)
	if err != nil {
		return nil, fmt.Errorf("list FDB: %w", err)
	}
	var out []fdbEntry
	for _, m := range msgs {
		if len(m) < unix.SizeofNdMsg {
			continue
		}
		idx := int(int32(nl.NativeEndian().Uint32(m[4:8])))
		flags := m[10]
		if idx != ifindex || flags&unix.NTF_SELF == 0 {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[unix.SizeofNdMsg:])
		if err != nil {
			return nil, fmt.Errorf("list FDB: %w", err)
		}
		var e fdbEntry
		e.Dst.Port = devPort
		for _, a := range attrs {
			switch a.Attr.Type {
			case unix.NDA_LLADDR:
				e.MAC = net.HardwareAddr(a.Value).String()
			case unix.NDA_DST:
				if ip, ok := netip.AddrFromSlice(a.Value); ok {
					e.Dst.IP = ip.Unmap()
				}
			case unix.NDA_PORT:
				if len(a.Value) == 2 {
					e.Dst.Port = binary.BigEndian.Uint16(a.Value)
				}
			}
		}
		if e.Dst.IP.IsValid() && e.MAC != "" {
			out = append(out, e)
		}
	}
	return out, nil
}

// fdbChange adds (append) or deletes one remote entry of the VXLAN device
// ifindex: `bridge fdb append|del MAC dev DEV dst IP port PORT self permanent`.
func fdbChange(add bool, ifindex int, e fdbEntry) error {
	mac, err := net.ParseMAC(e.MAC)
	if err != nil {
		return fmt.Errorf("FDB entry: %w", err)
	}
	typ, flags := unix.RTM_DELNEIGH, unix.NLM_F_ACK
	if add {
		typ, flags = unix.RTM_NEWNEIGH, unix.NLM_F_ACK|unix.NLM_F_CREATE|unix.NLM_F_APPEND
	}
	req := nl.NewNetlinkRequest(typ, flags)
	req.AddData(&netlink.Ndmsg{Family: unix.AF_BRIDGE, Index: uint32(ifindex),
		State: unix.NUD_PERMANENT | unix.NUD_NOARP, Flags: unix.NTF_SELF})
	req.AddData(nl.NewRtAttr(unix.NDA_LLADDR, mac))
	req.AddData(nl.NewRtAttr(unix.NDA_DST, e.Dst.IP.AsSlice()))
	port := make([]byte, 2)
	binary.BigEndian.PutUint16(port, e.Dst.Port)
	req.AddData(nl.NewRtAttr(unix.NDA_PORT, port))
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil {
		op := "delete"
		if add {
			op = "add"
		}
		return fmt.Errorf("%s FDB entry %s -> %s: %w", op, e.MAC, e.Dst, err)
	}
	return nil
}

// wantFDB is the FDB n calls for: the all-zero MAC to every remote, and
// each remote's guest MACs to it.
func wantFDB(n JobNet) []fdbEntry {
	var out []fdbEntry
	for _, r := range n.Remotes {
		out = append(out, fdbEntry{MAC: zeroMAC.String(), Dst: r.Underlay})
	}
	for _, r := range n.Remotes {
		for _, m := range r.MACs {
			hw, _ := parseUnicastMAC(m) // checked by JobNet.check
			out = append(out, fdbEntry{MAC: hw.String(), Dst: r.Underlay})
		}
	}
	return out
}
