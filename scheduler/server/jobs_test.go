package server

import (
	"testing"

	"vhpc/scheduler/core"
)

func TestGuardNote(t *testing.T) {
	tests := []struct {
		name string
		ex   core.Explanation
		want string
	}{
		{"by priority", core.Explanation{}, ""},
		{"starving", core.Explanation{Starving: true}, "; starving: ordered ahead of younger jobs"},
		{"urgent", core.Explanation{Urgent: true}, "; urgent: slowed down past the slowdown guard, ordered ahead of the others"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := guardNote(tc.ex); got != tc.want {
				t.Errorf("guardNote = %q, want %q", got, tc.want)
			}
		})
	}
}
