package netplane

import (
	"errors"
	"fmt"
	"testing"

	"github.com/vishvananda/netlink"
)

// TestWholeDump checks that an interrupted netlink dump is run again, that
// any other error is returned at once, and that a dump interrupted every
// time gives up with the interruption after dumpAttempts tries.
func TestWholeDump(t *testing.T) {
	other := errors.New("permission denied")
	cases := []struct {
		name         string
		interrupted  int // dumps interrupted before one completes
		fail         error
		wantErr      error
		wantAttempts int
	}{
		{name: "complete at once", wantAttempts: 1},
		{name: "interrupted twice", interrupted: 2, wantAttempts: 3},
		{name: "interrupted every time", interrupted: 1 << 30, wantErr: netlink.ErrDumpInterrupted, wantAttempts: dumpAttempts},
		{name: "other error", fail: other, wantErr: other, wantAttempts: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			attempts := 0
			out, err := wholeDump(func() ([]int, error) {
				attempts++
				switch {
				case tc.fail != nil:
					return nil, fmt.Errorf("dump: %w", tc.fail)
				case attempts <= tc.interrupted:
					return []int{attempts}, netlink.ErrDumpInterrupted
				}
				return []int{attempts}, nil
			})
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if attempts != tc.wantAttempts {
				t.Fatalf("%d attempts, want %d", attempts, tc.wantAttempts)
			}
			if tc.wantErr == nil && (len(out) != 1 || out[0] != attempts) {
				t.Fatalf("got %v, want the last dump's result", out)
			}
		})
	}
}
