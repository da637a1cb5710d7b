package agent

import (
	"fmt"
	"net/netip"

	"vhpc/api"
	"vhpc/guestproto"
	"vhpc/nodeagent/netplane"
	"vhpc/nodeagent/runner"
)

// taskNetwork is the runner's view of an allocation's gang network
// (Allocation.gang and network_secret, filled by the master for MPI and
// multi-node jobs); nil when the job has none. local is this node's
// underlay ("IP:PORT", Node.Underlay). A gang spread over nodes needs an
// underlay on each of them; the error says which one lacks it.
func taskNetwork(al *api.Allocation, local string) (*runner.TaskNetwork, error) {
	secret := al.GetNetworkSecret()
	if secret == "" {
		return nil, nil
	}
	gang := al.GetGang()
	if len(gang) == 0 || len(gang) > guestproto.MaxGuests {
		return nil, fmt.Errorf("allocation %s: a network secret but a gang of %d nodes", al.GetId(), len(gang))
	}
	tn := &runner.TaskNetwork{Guest: *guestproto.NewNetwork(int(al.GetRank()), len(gang), secret)}
	tn.Guest.MTU = netplane.DefaultMTU
	for i, m := range gang {
		if int(m.GetRank()) != i {
			return nil, fmt.Errorf("allocation %s: gang member %d has rank %d", al.GetId(), i, m.GetRank())
		}
		if i == int(al.GetRank()) {
			continue
		}
		if m.GetUnderlay() == "" {
			return nil, fmt.Errorf("node %s (rank %d of job %d) has no underlay address for job networks: start its hpc-agent with --underlay IP[:PORT]", m.GetNode(), i, al.GetJob())
		}
		u, err := netplane.ParseUnderlay(m.GetUnderlay())
		if err != nil {
			return nil, fmt.Errorf("node %s (rank %d): %w", m.GetNode(), i, err)
		}
		tn.Remotes = append(tn.Remotes, netplane.Remote{Underlay: u, MACs: []string{guestproto.GuestMAC(i)}})
	}
	switch {
	case local != "":
		u, err := netplane.ParseUnderlay(local)
		if err != nil {
			return nil, fmt.Errorf("this node's underlay: %w", err)
		}
		tn.Local = u
	case len(tn.Remotes) > 0:
		return nil, fmt.Errorf("this node (rank %d of job %d) has no underlay address for job networks: start hpc-agent with --underlay IP[:PORT]", al.GetRank(), al.GetJob())
	default:
		// A one-node gang (an MPI job on one node) has no VXLAN device;
		// the endpoint is never used.
		tn.Local = netplane.Underlay{IP: netip.AddrFrom4([4]byte{127, 0, 0, 1}), Port: netplane.DefaultPort}
	}
	return tn, nil
}
