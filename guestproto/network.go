package guestproto

import (
	"fmt"
	"net/netip"
)

// Network is a multi-node job's private network as the master assigned it
// with the allocation: every guest of the job, its hostname and address,
// and what this guest is in it. The host writes it into Request.Network;
// hpc-guest configures the guest's interface from it, writes /etc/hosts
// and the MPI hostfile, and runs the remote-start service (the launcher
// that replaces ssh) on LauncherPort, authenticated by Secret.
type Network struct {
	// Rank is this guest's index in the job (node<Rank>).
	Rank int `json:"rank"`
	// Hostname is this guest's name ("node0", "node1", ...).
	Hostname string `json:"hostname"`
	// Address is this guest's address with its prefix ("10.77.0.1/16").
	Address string `json:"address"`
	// MAC is the address of the guest's interface on the job network; the
	// guest finds the interface by it.
	MAC string `json:"mac"`
	// Peers are all guests of the job, this one included, by rank.
	Peers []Peer `json:"peers"`
	// LauncherPort is the TCP port of every guest's remote-start service.
	LauncherPort int `json:"launcherPort"`
	// Secret (hex) authenticates remote starts between the job's guests;
	// it is the job's alone and never leaves the job's share and network.
	Secret string `json:"secret"`
	// MTU of the guest's interface: the job network's (a VXLAN segment
	// carries less than the underlay); 0 leaves the driver's default.
	MTU int `json:"mtu,omitempty"`
}

// Peer is one guest of a multi-node job.
type Peer struct {
	Rank     int    `json:"rank"`
	Hostname string `json:"hostname"`
	// Address is the guest's IP address, without a prefix.
	Address string `json:"address"`
}

// DefaultLauncherPort is the remote-start service's port in every guest.
const DefaultLauncherPort = 7400

// JobSubnet is the prefix of every job network (10.77.0.0/16). Each job
// has its own L2 segment, so every job uses the same addresses.
func JobSubnet() netip.Prefix { return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 77, 0, 0}), 16) }

// GuestAddress is the address of rank r on a job network: host r+1 of
// JobSubnet (10.77.0.1 for node0).
func GuestAddress(rank int) netip.Addr {
	b := JobSubnet().Addr().As4()
	n := rank + 1
	b[2], b[3] = byte(n>>8), byte(n)
	return netip.AddrFrom4(b)
}

// GuestMAC is the MAC address of rank r's interface on a job network
// (locally administered, unique within the job's segment).
func GuestMAC(rank int) string {
	n := rank + 1
	return fmt.Sprintf("52:54:00:77:%02x:%02x", byte(n>>8), byte(n))
}

// GuestHostname is rank r's hostname.
func GuestHostname(rank int) string { return fmt.Sprintf("node%d", rank) }

// MaxGuests bounds the guests of one job network (the addresses of
// JobSubnet, less network and broadcast).
const MaxGuests = 1<<16 - 2

// validSecret: 32..128 lower-case hex digits.
func validSecret(s string) bool {
	if len(s) < 32 || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Validate checks a network as the guest receives it.
func (n *Network) Validate() error {
	if len(n.Peers) < 1 || len(n.Peers) > MaxGuests {
		return fmt.Errorf("job.json: network: %d peers, want 1..%d", len(n.Peers), MaxGuests)
	}
	if n.Rank < 0 || n.Rank >= len(n.Peers) {
		return fmt.Errorf("job.json: network: rank %d of %d peers", n.Rank, len(n.Peers))
	}
	if _, err := netip.ParsePrefix(n.Address); err != nil {
		return fmt.Errorf("job.json: network: address: %w", err)
	}
	for i, p := range n.Peers {
		if p.Rank != i {
			return fmt.Errorf("job.json: network: peer %d has rank %d", i, p.Rank)
		}
		if _, err := netip.ParseAddr(p.Address); err != nil {
			return fmt.Errorf("job.json: network: peer %d: %w", i, err)
		}
		if p.Hostname != GuestHostname(i) {
			return fmt.Errorf("job.json: network: peer %d is named %q, want %q", i, p.Hostname, GuestHostname(i))
		}
	}
	if n.MTU != 0 && (n.MTU < 1280 || n.MTU > 65535) {
		return fmt.Errorf("job.json: network: MTU %d: want 1280..65535", n.MTU)
	}
	if n.LauncherPort < 1 || n.LauncherPort > 65535 {
		return fmt.Errorf("job.json: network: launcher port %d", n.LauncherPort)
	}
	if !validSecret(n.Secret) {
		return fmt.Errorf("job.json: network: the secret must be 32..128 lower-case hex digits")
	}
	return nil
}

// NewNetwork is the network of rank of a job of n guests, with the
// job's secret: the addresses, MACs and names follow from the ranks.
// The node agent calls it (from the allocation the master assigned).
func NewNetwork(rank, n int, secret string) *Network {
	net := &Network{Rank: rank, Hostname: GuestHostname(rank), MAC: GuestMAC(rank),
		Address:      netip.PrefixFrom(GuestAddress(rank), JobSubnet().Bits()).String(),
		LauncherPort: DefaultLauncherPort, Secret: secret}
	for r := range n {
		net.Peers = append(net.Peers, Peer{Rank: r, Hostname: GuestHostname(r), Address: GuestAddress(r).String()})
	}
	return net
}
