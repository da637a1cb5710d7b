package agent

import (
	"strings"
	"testing"

	"vhpc/api"
	"vhpc/guestproto"
)

func TestNormalizeUnderlay(t *testing.T) {
	cases := []struct{ in, want, err string }{
		{"", "", ""},
		{"10.0.0.7", "10.0.0.7:4789", ""},
		{"10.0.0.7:4790", "10.0.0.7:4790", ""},
		{"127.0.0.1:4789", "127.0.0.1:4789", ""},
		{"10.0.0.7:0", "", "want an IPv4 address"},
		{"fe80::1", "", "want an IPv4 address"},
		{"node7", "", "want an IPv4 address"},
		{"10.0.0.7:99999", "", "want an IPv4 address"},
	}
	for _, c := range cases {
		got, err := NormalizeUnderlay(c.in)
		if got != c.want || (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("NormalizeUnderlay(%q) = %q, %v; want %q, error with %q", c.in, got, err, c.want, c.err)
		}
	}
}

// TestTaskNetworkFromTheGang: the runner's network of rank 1 of a
// two-node gang points at rank 0's node; a node without an underlay is
// named in the error; a job without a secret has no network.
func TestTaskNetworkFromTheGang(t *testing.T) {
	secret := strings.Repeat("ab", 32)
	gang := []*api.GangMember{{Rank: 0, Node: "m1", Underlay: "127.0.0.1:4789"}, {Rank: 1, Node: "m2", Underlay: "127.0.0.1:4790"}}
	al := &api.Allocation{Id: "7.0.1.1", Job: 7, Rank: 1, Gang: gang, NetworkSecret: secret}
	tn, err := taskNetwork(al, "127.0.0.1:4790")
	if err != nil {
		t.Fatal(err)
	}
	if tn.Local.String() != "127.0.0.1:4790" || len(tn.Remotes) != 1 || tn.Remotes[0].Underlay.String() != "127.0.0.1:4789" ||
		tn.Remotes[0].MACs[0] != guestproto.GuestMAC(0) || tn.Guest.Rank != 1 || tn.Guest.Hostname != "node1" ||
		len(tn.Guest.Peers) != 2 || tn.Guest.Secret != secret || tn.Guest.Validate() != nil {
		t.Fatalf("network %+v", tn)
	}
	if _, err := taskNetwork(al, ""); err == nil || !strings.Contains(err.Error(), "this node (rank 1 of job 7) has no underlay") {
		t.Fatalf("no local underlay: %v", err)
	}
	gang[0].Underlay = ""
	if _, err := taskNetwork(al, "127.0.0.1:4790"); err == nil || !strings.Contains(err.Error(), "node m1 (rank 0 of job 7) has no underlay") {
		t.Fatalf("no remote underlay: %v", err)
	}
	one := &api.Allocation{Id: "8.0.0.1", Job: 8, Gang: gang[:1], NetworkSecret: secret}
	if tn, err := taskNetwork(one, ""); err != nil || len(tn.Remotes) != 0 || len(tn.Guest.Peers) != 1 {
		t.Fatalf("one-node MPI gang: %+v %v", tn, err)
	}
	if tn, err := taskNetwork(&api.Allocation{Id: "9.0.0.1"}, ""); tn != nil || err != nil {
		t.Fatalf("no network: %+v %v", tn, err)
	}
}
