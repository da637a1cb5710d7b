package server

import (
	"testing"
	"time"

	"vhpc/scheduler/core"
)

func TestPriorityDetail(t *testing.T) {
	base := core.Explanation{Rank: 3, Estimate: time.Hour}
	starving, urgent := base, base
	starving.Starving, urgent.Urgent = true, true
	tests := []struct {
		name string
		ex   core.Explanation
		want string
	}{
		{"by priority", base, "rank 3 in the queue; runtime estimate 1h0m0s"},
		{"starving", starving, "rank 3 in the queue; runtime estimate 1h0m0s; starving: waited past the starvation age, ordered ahead of younger jobs"},
		{"urgent", urgent, "rank 3 in the queue; runtime estimate 1h0m0s; urgent: slowed down past the slowdown guard, ordered ahead of the others"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := priorityDetail(tc.ex); got != tc.want {
				t.Errorf("priorityDetail = %q, want %q", got, tc.want)
			}
		})
	}
}
