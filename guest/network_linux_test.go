package guest

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vhpc/guestproto"
)

// fakeLinks records configureNetwork's calls; the interface with the MAC
// appears after appearAfter lookups (-1: never).
type fakeLinks struct {
	mac         []byte
	appearAfter int
	lookups     int
	calls       []string
}

func (f *fakeLinks) byMAC(mac []byte) (string, error) {
	f.lookups++
	if f.appearAfter >= 0 && f.lookups > f.appearAfter && bytes.Equal(mac, f.mac) {
		return "eth7", nil
	}
	return "", nil
}
func (f *fakeLinks) up(name string) error { f.calls = append(f.calls, "up "+name); return nil }
func (f *fakeLinks) setAddr(name string, p netip.Prefix) error {
	f.calls = append(f.calls, "addr "+name+" "+p.String())
	return nil
}
func (f *fakeLinks) setMTU(name string, mtu int) error {
	f.calls = append(f.calls, fmt.Sprintf("mtu %s %d", name, mtu))
	return nil
}
func (f *fakeLinks) setHostname(name string) error {
	f.calls = append(f.calls, "hostname "+name)
	return nil
}
func (f *fakeLinks) loadDriver() error { f.calls = append(f.calls, "load driver"); return nil }

func TestConfigureNetwork(t *testing.T) {
	n := guestproto.NewNetwork(1, 3, testSecret)
	n.MTU = 1450
	mac, _ := parseMAC(n.MAC)
	tests := []struct {
		name        string
		appearAfter int
		wait        time.Duration
		wantCalls   string
		wantErr     string
	}{
		{name: "present", appearAfter: 0, wait: time.Second,
			wantCalls: "up lo, addr eth7 10.77.0.2/16, mtu eth7 1450, up eth7, hostname node1"},
		{name: "appears while probing", appearAfter: 5, wait: 5 * time.Second,
			wantCalls: "up lo, addr eth7 10.77.0.2/16, mtu eth7 1450, up eth7, hostname node1"},
		{name: "never appears", appearAfter: -1, wait: 300 * time.Millisecond,
			wantCalls: "up lo, load driver", wantErr: "no interface with MAC 52:54:00:77:00:02 after 300ms"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hosts := filepath.Join(t.TempDir(), "etc", "hosts")
			f := &fakeLinks{mac: mac, appearAfter: tc.appearAfter}
			err := configureNetwork(slog.New(slog.DiscardHandler), f, n, hosts, tc.wait)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(f.calls, ", "); got != tc.wantCalls {
				t.Errorf("calls %q, want %q", got, tc.wantCalls)
			}
			if tc.wantErr != "" {
				return
			}
			b, err := os.ReadFile(hosts)
			if err != nil {
				t.Fatal(err)
			}
			want := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.77.0.1\tnode0\n10.77.0.2\tnode1\n10.77.0.3\tnode2\n"
			if string(b) != want {
				t.Errorf("hosts %q, want %q", b, want)
			}
		})
	}
}

func TestParseMAC(t *testing.T) {
	tests := []struct {
		in   string
		want string
		err  bool
	}{
		{"52:54:00:77:00:02", "525400770002", false},
		{"AA:bb:0C:dd:ee:ff", "aabb0cddeeff", false},
		{"52:54:00:77:00", "", true},
		{"52-54-00-77-00-02", "", true},
		{"52:54:00:77:00:zz", "", true},
		{"52:54:00:77:00:002", "", true},
	}
	for _, tc := range tests {
		got, err := parseMAC(tc.in)
		if fmt.Sprintf("%x", got) != tc.want || (err != nil) != tc.err {
			t.Errorf("parseMAC(%q) = %x, %v", tc.in, got, err)
		}
	}
}

func TestIoctlLinksByMAC(t *testing.T) {
	sys := t.TempDir()
	for name, mac := range map[string]string{"lo": "00:00:00:00:00:00", "eth0": "52:54:00:12:34:56", "eth1": "52:54:00:77:00:02"} {
		os.MkdirAll(filepath.Join(sys, name), 0o755)
		os.WriteFile(filepath.Join(sys, name, "address"), []byte(mac+"\n"), 0o644)
	}
	os.MkdirAll(filepath.Join(sys, "bonding_masters"), 0o755) // no address file
	o := ioctlLinks{sysNet: sys}
	for mac, want := range map[string]string{"52:54:00:77:00:02": "eth1", "52:54:00:77:00:03": ""} {
		m, _ := parseMAC(mac)
		if got, err := o.byMAC(m); got != want || err != nil {
			t.Errorf("byMAC(%s) = %q, %v; want %q", mac, got, err, want)
		}
	}
	if _, err := (ioctlLinks{sysNet: filepath.Join(sys, "none")}).byMAC([]byte{1}); err == nil {
		t.Error("no error for a missing sysfs")
	}
}

// TestIoctlLinks runs the real interface calls on a veth interface in a
// network (and UTS) namespace of its own: root only, with iproute2.
func TestIoctlLinks(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root (network namespace)")
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("needs iproute2's ip")
	}
	errc := make(chan error, 1)
	go func() {
		// The namespaces belong to this locked thread only; it is never
		// unlocked, so it ends with the goroutine and nothing else runs
		// in them.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET | unix.CLONE_NEWUTS); err != nil {
			errc <- fmt.Errorf("skip: unshare: %w", err)
			return
		}
		errc <- func() error {
			// A veth pair: dummy is not in every kernel.
			if out, err := exec.Command(ip, "link", "add", "vhpc0", "address", "52:54:00:77:00:02", "type", "veth", "peer", "name", "vhpc1").CombinedOutput(); err != nil {
				return fmt.Errorf("skip: ip link add veth: %v: %s", err, out)
			}
			o := ioctlLinks{}
			for _, step := range []func() error{
				func() error { return o.up("lo") },
				func() error { return o.setAddr("vhpc0", netip.MustParsePrefix("10.77.0.2/16")) },
				func() error { return o.setMTU("vhpc0", 1450) },
				func() error { return o.up("vhpc0") },
				func() error { return o.setHostname("node1") },
			} {
				if err := step(); err != nil {
					return err
				}
			}
			out, err := exec.Command(ip, "-o", "addr", "show", "dev", "vhpc0").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "inet 10.77.0.2/16 brd 10.77.255.255") {
				return fmt.Errorf("addresses: %v: %s", err, out)
			}
			out, err = exec.Command(ip, "-o", "link", "show", "lo").CombinedOutput()
			if err != nil || !strings.Contains(string(out), ",UP") {
				return fmt.Errorf("lo: %v: %s", err, out)
			}
			var u unix.Utsname
			if err := unix.Uname(&u); err != nil || unix.ByteSliceToString(u.Nodename[:]) != "node1" {
				return fmt.Errorf("hostname %q, %v", unix.ByteSliceToString(u.Nodename[:]), err)
			}
			if err := o.setAddr("vhpc0", netip.MustParsePrefix("fd00::1/64")); err == nil {
				return fmt.Errorf("IPv6 accepted")
			}
			if err := o.up("nosuch0"); err == nil {
				return fmt.Errorf("no error for a missing interface")
			}
			return nil
		}()
	}()
	if err := <-errc; err != nil {
		if msg, ok := strings.CutPrefix(err.Error(), "skip: "); ok {
			t.Skip(msg)
		}
		t.Fatal(err)
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil && unix.ByteSliceToString(u.Nodename[:]) == "node1" {
		t.Error("the test's hostname leaked out of its namespace")
	}
}
