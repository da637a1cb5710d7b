package netplane

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseUnderlay(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr string
	}{
		{"127.0.0.1", "127.0.0.1:4789", ""},
		{"127.0.0.1:4790", "127.0.0.1:4790", ""},
		{"10.1.2.3:1", "10.1.2.3:1", ""},
		{"::1", "[::1]:4789", ""},
		{"[fd00::7]:4790", "[fd00::7]:4790", ""},
		{"::ffff:10.0.0.1", "10.0.0.1:4789", ""},
		{"", "", "want IP or IP:PORT"},
		{"host.example:4789", "", "want IP or IP:PORT"},
		{"127.0.0.1:0", "", "port 0"},
		{"127.0.0.1:70000", "", "want IP or IP:PORT"},
		{"0.0.0.0", "", "unicast"},
		{"239.1.1.1", "", "unicast"},
		{"fe80::1%eth0", "", "zoned"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			u, err := ParseUnderlay(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseUnderlay(%q) = %v, %v; want error containing %q", tc.in, u, err, tc.wantErr)
				}
				return
			}
			if err != nil || u.String() != tc.want {
				t.Fatalf("ParseUnderlay(%q) = %v, %v; want %s", tc.in, u, err, tc.want)
			}
		})
	}
}

func TestDefaultVNI(t *testing.T) {
	tests := []struct {
		job  uint64
		task int64
		want uint32
	}{
		{0, 0, 1},
		{1, 0, 2},
		{41, 0, 42},
		{MaxVNI - 1, 0, MaxVNI},
		{MaxVNI, 0, 1}, // wraps: the documented caveat
		{1<<64 - 1, 0, uint32((1<<64-1)%MaxVNI) + 1},
		{1, 1, uint32((1+2654435761)%MaxVNI) + 1},
	}
	for _, tc := range tests {
		got := DefaultVNI(tc.job, tc.task)
		if got != tc.want {
			t.Errorf("DefaultVNI(%d, %d) = %d, want %d", tc.job, tc.task, got, tc.want)
		}
		if got < 1 || got > MaxVNI {
			t.Errorf("DefaultVNI(%d, %d) = %d out of 1..%d", tc.job, tc.task, got, MaxVNI)
		}
	}
}

func TestNames(t *testing.T) {
	seen := map[string]bool{}
	for _, ns := range []string{"a", "t", "0123abcd", "zzzzzzzzzzzzzzzz"} {
		for _, key := range []Key{{0, 0}, {1, 0}, {1, 1}, {1<<64 - 1, 1<<63 - 1}, {7, -1}} {
			br, vx := Names(ns, key)
			for _, n := range []string{br, vx} {
				if len(n) != 15 || strings.ContainsAny(n, "/ :.") {
					t.Errorf("Names(%q, %v) gives %q: want 15 characters, no separators", ns, key, n)
				}
				if seen[n] {
					t.Errorf("name %q given twice", n)
				}
				seen[n] = true
			}
			if !strings.HasPrefix(br, "vb"+nsTag(ns)) || vx != "vx"+br[2:] {
				t.Errorf("Names(%q, %v) = %q, %q: want vb/vx + the namespace tag + the same id", ns, key, br, vx)
			}
			if b2, _ := Names(ns, key); b2 != br {
				t.Errorf("Names is not deterministic: %q then %q", br, b2)
			}
			gotNS, gotKey, ok := parseAlias(alias(ns, key))
			if !ok || gotNS != ns || gotKey != key {
				t.Errorf("alias round trip of %q %v: %q %v %v", ns, key, gotNS, gotKey, ok)
			}
		}
	}
}

func TestParseAliasRejects(t *testing.T) {
	for _, s := range []string{"", "vhpc-net", "vhpc-net ns=a job=1", "vhpc-net ns=A job=1 task=0", "vhpc-net ns=a job=-1 task=0",
		"vhpc-net ns=a job=1 task=x", "vhpc-net ns=a task=0 job=1", "vhpc-net ns=a job=1 task=0 extra=1", "libvirt vnet0"} {
		if ns, k, ok := parseAlias(s); ok {
			t.Errorf("parseAlias(%q) = %q %v, want rejected", s, ns, k)
		}
	}
}

func TestJobNetCheck(t *testing.T) {
	local := Underlay{IP: netip.MustParseAddr("10.0.0.1"), Port: 4789}
	remote := Underlay{IP: netip.MustParseAddr("10.0.0.2"), Port: 4789}
	good := func() JobNet {
		return JobNet{Key: Key{Job: 5}, VNI: 6, Local: local, Remotes: []Remote{{Underlay: remote}}}
	}
	tests := []struct {
		name string
		mod  func(*JobNet)
		want string
	}{
		{"ok", func(*JobNet) {}, ""},
		{"ok with MACs", func(n *JobNet) { n.Remotes[0].MACs = []string{"52:54:00:77:00:02"} }, ""},
		{"no VNI", func(n *JobNet) { n.VNI = 0 }, "VNI"},
		{"VNI too large", func(n *JobNet) { n.VNI = 1 << 24 }, "VNI"},
		{"small MTU", func(n *JobNet) { n.MTU = 576 }, "MTU"},
		{"no local", func(n *JobNet) { n.Local = Underlay{} }, "local"},
		{"remote is local", func(n *JobNet) { n.Remotes[0].Underlay = local }, "twice"},
		{"remote twice", func(n *JobNet) { n.Remotes = append(n.Remotes, n.Remotes[0]) }, "twice"},
		{"mixed families", func(n *JobNet) { n.Remotes[0].Underlay.IP = netip.MustParseAddr("fd00::2") }, "families"},
		{"bad MAC", func(n *JobNet) { n.Remotes[0].MACs = []string{"52:54:00:77:00"} }, "MAC"},
		{"multicast MAC", func(n *JobNet) { n.Remotes[0].MACs = []string{"01:00:5e:00:00:01"} }, "unicast"},
		{"zero MAC", func(n *JobNet) { n.Remotes[0].MACs = []string{"00:00:00:00:00:00"} }, "unicast"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := good()
			tc.mod(&n)
			got, err := n.check()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got.MTU != DefaultMTU {
					t.Errorf("MTU = %d, want the default %d", got.MTU, DefaultMTU)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("check() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
