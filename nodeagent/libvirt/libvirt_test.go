package libvirt

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"libvirt.org/go/libvirtxml"
)

func TestConnectErrorSaysWhatToDo(t *testing.T) {
	_, err := Connect("qemu:///system?socket=/nonexistent/libvirt-sock")
	if err == nil {
		t.Fatal("connected to a socket that does not exist")
	}
	for _, want := range []string{"cannot connect to libvirt at qemu:///system", "libvirtd -d"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestRealAbsentDomain checks the not-found paths against a real libvirtd
// (skipped with a message when unreachable; a failure with VHPC_E2E=1).
func TestRealAbsentDomain(t *testing.T) {
	c, err := Connect("qemu:///system")
	if err != nil {
		if os.Getenv("VHPC_E2E") == "1" {
			t.Fatal(err)
		}
		t.Skipf("libvirt unreachable: %v", err)
	}
	defer c.Close()
	ctx := context.Background()
	const name = "vhpc-test-absent-domain"
	if st, err := c.State(ctx, name); err != nil || st != StateAbsent {
		t.Errorf("State = %s, %v", st, err)
	}
	if err := c.DestroyAndUndefine(ctx, name); err != nil {
		t.Errorf("DestroyAndUndefine of an absent domain: %v", err)
	}
	if _, err := c.XML(ctx, name); !errors.Is(err, ErrNotFound) {
		t.Errorf("XML: %v, want ErrNotFound", err)
	}
	if err := c.Shutdown(ctx, name); !errors.Is(err, ErrNotFound) {
		t.Errorf("Shutdown: %v, want ErrNotFound", err)
	}
	if _, err := c.List(ctx, "vhpc-"); err != nil {
		t.Errorf("List: %v", err)
	}
}

func TestFakeAndWaitStopped(t *testing.T) {
	f := NewFake()
	started := make(chan string, 1)
	f.OnStart = func(d *libvirtxml.Domain) { started <- d.Name }
	ctx := context.Background()
	d := &libvirtxml.Domain{Type: "qemu", Name: "vhpc-1-0-0"}
	if err := f.DefineAndStart(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := f.DefineAndStart(ctx, d); err == nil {
		t.Fatal("started a running domain twice")
	}
	<-started
	if l, _ := f.List(ctx, "vhpc-"); len(l) != 1 || l[0].State != StateRunning {
		t.Fatalf("List = %v", l)
	}
	wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := WaitStopped(wctx, f, d.Name, 5*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitStopped on a running domain: %v", err)
	}
	f.Stop(d.Name)
	if st, err := WaitStopped(ctx, f, d.Name, 5*time.Millisecond); err != nil || st != StateShutoff {
		t.Fatalf("WaitStopped = %s, %v", st, err)
	}
	if err := f.DestroyAndUndefine(ctx, d.Name); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.State(ctx, d.Name); st != StateAbsent {
		t.Fatalf("state after undefine %s", st)
	}
	if f.Starts(d.Name) != 1 {
		t.Fatalf("starts %d", f.Starts(d.Name))
	}
}
