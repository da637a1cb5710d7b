package guestid

import (
	"errors"
	"testing"
)

func TestParseRange(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Range
		wantErr bool
	}{
		{in: "600000-600999", want: Range{Base: 600000, Count: 1000}},
		{in: "200000-200000", want: Range{Base: 200000, Count: 1}},
		{in: "0-999", wantErr: true},        // root and people
		{in: "99999-100010", wantErr: true}, // starts below the floor
		{in: "600010-600000", wantErr: true},
		{in: "600000", wantErr: true},
		{in: "a-b", wantErr: true},
		{in: "600000-4294967295", wantErr: true}, // -1 is no id
	} {
		got, err := ParseRange(tc.in)
		if (err != nil) != tc.wantErr || (!tc.wantErr && got != tc.want) {
			t.Errorf("ParseRange(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestParseLabel(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    ID
		wantErr bool
	}{
		{in: "+600001:+64055", want: ID{UID: 600001, GID: 64055}},
		{in: "600001:64055", want: ID{UID: 600001, GID: 64055}},
		{in: "libvirt-qemu:libvirt-qemu", wantErr: true},
		{in: "+600001", wantErr: true},
		{in: "+-1:+1", wantErr: true},
	} {
		got, err := ParseLabel(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseLabel(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
	if id := (ID{UID: 600001, GID: 64055}); id.Label() != "+600001:+64055" {
		t.Errorf("Label = %q", id.Label())
	}
}

// Two pools on one lock directory stand for two agents on one host: they
// never hand out the same id, skip ids running domains carry, and run out
// with ErrExhausted.
func TestPoolsOnOneHostNeverShareAnID(t *testing.T) {
	dir := t.TempDir()
	r := Range{Base: 700000, Count: 4}
	a, err := Open(r, 64055, dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(r, 64055, dir)
	if err != nil {
		t.Fatal(err)
	}
	busy := map[int]bool{700001: true} // a running guest nobody has adopted yet
	seen := map[int]bool{}
	for i, p := range []*Pool{a, b, a} {
		id, err := p.Acquire(busy)
		if err != nil {
			t.Fatalf("acquire %d: %v", i, err)
		}
		if seen[id.UID] || busy[id.UID] || id.GID != 64055 {
			t.Fatalf("acquire %d gave %+v (seen %v, busy %v)", i, id, seen, busy)
		}
		seen[id.UID] = true
	}
	if _, err := b.Acquire(busy); !errors.Is(err, ErrExhausted) {
		t.Fatalf("fourth acquire: %v, want ErrExhausted", err)
	}
	// An id a gives back is free for b; one a still holds is not b's to adopt.
	a.Release(ID{UID: 700000, GID: 64055})
	if id, err := b.Acquire(busy); err != nil || id.UID != 700000 {
		t.Fatalf("after release: %+v, %v", id, err)
	}
	// a took 700000 and 700003, b 700002 (700001 is busy).
	if err := b.Adopt(ID{UID: 700003}); err == nil {
		t.Fatal("b adopted an id a holds")
	}
	if err := a.Adopt(ID{UID: 800000}); err == nil {
		t.Fatal("adopted an id outside the range")
	}
	if err := a.Adopt(ID{UID: 700003}); err != nil {
		t.Fatalf("re-adopting its own id: %v", err)
	}
}

func TestOpenRefusesABadRange(t *testing.T) {
	if _, err := Open(Range{Base: 0, Count: 10}, 0, t.TempDir()); err == nil {
		t.Fatal("a range with root in it was accepted")
	}
}
