package vmimages

import (
	"bytes"
	"strconv"
	"testing"
)

// readCpio parses a newc archive back into name -> (mode, data) for tests.
func readCpio(t *testing.T, b []byte) map[string]cpioEntry {
	t.Helper()
	out := map[string]cpioEntry{}
	off := 0
	hex := func(i int) uint32 {
		v, err := strconv.ParseUint(string(b[off+6+8*i:off+6+8*i+8]), 16, 32)
		if err != nil {
			t.Fatalf("bad hex field %d at %d: %v", i, off, err)
		}
		return uint32(v)
	}
	align := func(n int) int { return (n + 3) &^ 3 }
	for {
		if string(b[off:off+6]) != "070701" {
			t.Fatalf("bad magic at %d: %q", off, b[off:off+6])
		}
		mode, size, namesize, maj, minor := hex(1), hex(6), hex(11), hex(9), hex(10)
		name := string(b[off+110 : off+110+int(namesize)-1])
		dataOff := align(off + 110 + int(namesize))
		data := b[dataOff : dataOff+int(size)]
		off = align(dataOff + int(size))
		if name == "TRAILER!!!" {
			if off != len(b) {
				t.Fatalf("trailing bytes after trailer: %d", len(b)-off)
			}
			return out
		}
		out[name] = cpioEntry{name: name, mode: mode, data: bytes.Clone(data), rdevMaj: maj, rdevMin: minor}
	}
}

func TestCpioRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := &cpioWriter{w: &buf}
	entries := []cpioEntry{
		{name: "/bin", mode: cpioDir | 0o755},
		{name: "bin/sh", mode: cpioSymlink | 0o777, data: []byte("busybox")},
		{name: "/dev/console", mode: cpioCharDev | 0o600, rdevMaj: 5, rdevMin: 1},
		{name: "init", mode: cpioFile | 0o755, data: []byte("#!/bin/sh\necho odd-length\n")},
	}
	for _, e := range entries {
		if err := w.add(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.addReader("etc/x", 0o644, 3, bytes.NewReader([]byte("abc"))); err != nil {
		t.Fatal(err)
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	got := readCpio(t, buf.Bytes())
	tests := []struct {
		name string
		mode uint32
		data string
		maj  uint32
	}{
		{"bin", cpioDir | 0o755, "", 0},
		{"bin/sh", cpioSymlink | 0o777, "busybox", 0},
		{"dev/console", cpioCharDev | 0o600, "", 5},
		{"init", cpioFile | 0o755, "#!/bin/sh\necho odd-length\n", 0},
		{"etc/x", cpioFile | 0o644, "abc", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, ok := got[tc.name]
			if !ok {
				t.Fatalf("missing %s in %v", tc.name, got)
			}
			if e.mode != tc.mode || string(e.data) != tc.data || e.rdevMaj != tc.maj {
				t.Errorf("got mode %o data %q maj %d, want %o %q %d", e.mode, e.data, e.rdevMaj, tc.mode, tc.data, tc.maj)
			}
		})
	}
}

func TestCpioShortReader(t *testing.T) {
	w := &cpioWriter{w: &bytes.Buffer{}}
	if err := w.addReader("x", 0o644, 10, bytes.NewReader([]byte("abc"))); err == nil {
		t.Fatal("want error for a reader shorter than the declared size")
	}
}
