package runner

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"libvirt.org/go/libvirtxml"

	"vhpc/guestproto"
	"vhpc/nodeagent/libvirt"
	"vhpc/nodeagent/netplane"
)

// fakeNets records what the runner asks of the job network plane.
type fakeNets struct {
	mu         sync.Mutex
	ensured    []netplane.JobNet
	sealed     []netplane.Key
	removed    []netplane.Key
	live       map[netplane.Key]bool
	failEnsure error
}

func newFakeNets() *fakeNets { return &fakeNets{live: map[netplane.Key]bool{}} }

func (f *fakeNets) Ensure(n netplane.JobNet) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ensured = append(f.ensured, n)
	f.live[n.Key] = true
	if f.failEnsure != nil {
		return "", f.failEnsure
	}
	br, _ := netplane.Names("t", n.Key)
	return br, nil
}

func (f *fakeNets) Seal(k netplane.Key) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sealed = append(f.sealed, k)
	return nil
}

func (f *fakeNets) Remove(k netplane.Key) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, k)
	delete(f.live, k)
	return nil
}

func (f *fakeNets) Cleanup(keep func(netplane.Key) bool) ([]netplane.Key, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var gone []netplane.Key
	for k := range f.live {
		if !keep(k) {
			gone = append(gone, k)
			delete(f.live, k)
		}
	}
	return gone, nil
}

const testSecret = "0123456789abcdef0123456789abcdef"

// netTask is rank 1 of a two-node MPI job.
func netTask(alloc string) Task {
	tk := fakeTask(alloc)
	tk.Rank = 1
	tk.MPI, tk.TasksPerNode, tk.CPUsPerTask = "openmpi", 2, 1
	tk.Network = &TaskNetwork{
		Local:   netplane.Underlay{IP: netip.MustParseAddr("127.0.0.1"), Port: 4790},
		Remotes: []netplane.Remote{{Underlay: netplane.Underlay{IP: netip.MustParseAddr("127.0.0.1"), Port: 4789}, MACs: []string{guestproto.GuestMAC(0)}}},
		Guest:   *guestproto.NewNetwork(1, 2, testSecret),
	}
	return tk
}

func TestRunWithNetwork(t *testing.T) {
	var seen struct {
		sync.Mutex
		ifaces []libvirtxml.DomainInterface
		req    guestproto.Request
		err    error
	}
	r, _ := fakeRunner(t, func(f *libvirt.Fake, d *libvirtxml.Domain) {
		seen.Lock()
		seen.ifaces = d.Devices.Interfaces
		seen.req, seen.err = guestproto.ReadRequest(shareOf(d))
		seen.Unlock()
		exitWith(0, "")(f, d)
	})
	nets := newFakeNets()
	r.nets = nets
	tk := netTask("9.0.1")
	res, err := r.Run(context.Background(), tk, nil)
	if err != nil || res.State != "completed" {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	key := netplane.Key{Job: 9}
	if len(nets.ensured) != 1 {
		t.Fatalf("Ensure called %d times", len(nets.ensured))
	}
	n := nets.ensured[0]
	if n.Key != key || n.VNI != netplane.DefaultVNI(9, 0) || n.MTU != netplane.DefaultMTU || n.Local != tk.Network.Local || !slices.EqualFunc(n.Remotes, tk.Network.Remotes, func(a, b netplane.Remote) bool {
		return a.Underlay == b.Underlay && slices.Equal(a.MACs, b.MACs)
	}) {
		t.Errorf("Ensure(%+v), want key %v, default VNI and MTU, the task's underlays", n, key)
	}
	if !slices.Equal(nets.sealed, []netplane.Key{key}) || !slices.Equal(nets.removed, []netplane.Key{key}) {
		t.Errorf("sealed %v, removed %v; want %v once each", nets.sealed, nets.removed, key)
	}
	seen.Lock()
	defer seen.Unlock()
	br, _ := netplane.Names("t", key)
	if len(seen.ifaces) != 1 || seen.ifaces[0].Source.Bridge.Bridge != br || seen.ifaces[0].MAC.Address != guestproto.GuestMAC(1) ||
		seen.ifaces[0].Model.Type != "virtio" || seen.ifaces[0].MTU == nil || seen.ifaces[0].MTU.Size != netplane.DefaultMTU {
		t.Errorf("domain interfaces %+v; want one virtio NIC on %s with MAC %s and MTU %d", seen.ifaces, br, guestproto.GuestMAC(1), netplane.DefaultMTU)
	}
	if seen.err != nil {
		t.Fatal(seen.err)
	}
	q := seen.req
	if q.Network == nil || q.Network.Rank != 1 || len(q.Network.Peers) != 2 || q.Network.Secret != testSecret ||
		q.Network.MTU != netplane.DefaultMTU || q.MPI != "openmpi" || q.TasksPerNode != 2 || q.CPUsPerTask != 1 {
		t.Errorf("job.json: %+v (network %+v)", q, q.Network)
	}
}

func TestNetworkCleanupPaths(t *testing.T) {
	key := netplane.Key{Job: 9}
	tests := []struct {
		name string
		run  func(t *testing.T, r *Runner, f *libvirt.Fake, nets *fakeNets)
	}{
		{"failed Ensure", func(t *testing.T, r *Runner, _ *libvirt.Fake, nets *fakeNets) {
			nets.failEnsure = errors.New("no CAP_NET_ADMIN")
			if _, err := r.Run(context.Background(), netTask("9.0.1"), nil); err == nil || !strings.Contains(err.Error(), "CAP_NET_ADMIN") {
				t.Fatalf("Run: %v", err)
			}
		}},
		{"failed start", func(t *testing.T, r *Runner, f *libvirt.Fake, _ *fakeNets) {
			f.FailStart = errors.New("qemu died")
			if _, err := r.Run(context.Background(), netTask("9.0.1"), nil); err == nil {
				t.Fatal("Run succeeded")
			}
		}},
		{"adopt", func(t *testing.T, r *Runner, f *libvirt.Fake, _ *fakeNets) {
			tk := netTask("9.0.1")
			if _, err := r.start(context.Background(), tk, nil); err != nil {
				t.Fatal(err)
			}
			d, _ := f.XML(context.Background(), r.DomainName(tk))
			exitWith(0, "")(f, d)
			if res, err := r.Adopt(context.Background(), tk, nil); err != nil || res.State != "completed" {
				t.Fatalf("Adopt = %+v, %v", res, err)
			}
		}},
		{"adopt lost", func(t *testing.T, r *Runner, _ *libvirt.Fake, nets *fakeNets) {
			nets.live[key] = true
			if res, err := r.Adopt(context.Background(), netTask("9.0.1"), nil); err != nil || !strings.Contains(res.Reason, "lost") {
				t.Fatalf("Adopt = %+v, %v", res, err)
			}
		}},
		{"remove", func(t *testing.T, r *Runner, _ *libvirt.Fake, _ *fakeNets) {
			tk := netTask("9.0.1")
			if _, err := r.start(context.Background(), tk, nil); err != nil {
				t.Fatal(err)
			}
			if err := r.Remove(context.Background(), tk); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, f := fakeRunner(t, nil)
			nets := newFakeNets()
			r.nets = nets
			tc.run(t, r, f, nets)
			if len(nets.live) != 0 || !slices.Contains(nets.removed, key) {
				t.Errorf("networks left %v, removed %v", nets.live, nets.removed)
			}
		})
	}
}

func TestNetworkRejects(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Task)
		want string
	}{
		{"MPI without network", func(tk *Task) { tk.Network = nil }, "needs a network"},
		{"rank mismatch", func(tk *Task) { tk.Rank = 0 }, "rank"},
		{"bad secret", func(tk *Task) { tk.Network.Guest.Secret = "x" }, "secret"},
		{"MTUs disagree", func(tk *Task) { tk.Network.MTU, tk.Network.Guest.MTU = 1450, 8950 }, "MTU"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, f := fakeRunner(t, nil)
			nets := newFakeNets()
			r.nets = nets
			tk := netTask("9.0.1")
			tc.mod(&tk)
			if _, err := r.Run(context.Background(), tk, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v, want an error about %q", err, tc.want)
			}
			if f.Starts(r.DomainName(tk)) != 0 || len(nets.live) != 0 {
				t.Errorf("a rejected task started a domain or left a network")
			}
		})
	}
}

// TestCleanupNets: at start-up the networks of jobs without a domain go,
// those with one stay.
func TestCleanupNets(t *testing.T) {
	r, _ := fakeRunner(t, nil)
	nets := newFakeNets()
	r.nets = nets
	tk := netTask("9.0.1")
	if _, err := r.start(context.Background(), tk, nil); err != nil {
		t.Fatal(err)
	}
	nets.live[netplane.Key{Job: 10}] = true
	nets.live[netplane.Key{Job: 9, Task: 3}] = true
	r.cleanupNets(context.Background())
	if len(nets.live) != 1 || !nets.live[netplane.Key{Job: 9}] {
		t.Errorf("networks after cleanup: %v, want job 9 task 0 only", nets.live)
	}
	if err := r.Remove(context.Background(), tk); err != nil {
		t.Fatal(err)
	}
}
