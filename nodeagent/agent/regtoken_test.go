package agent

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestAllocTokensRenewBeforeExpiry: a held token is reused while more
// than tokenMargin of it is left, and asked for again after that (here
// without a client, so asking fails, naming the allocation).
func TestAllocTokensRenewBeforeExpiry(t *testing.T) {
	now := time.Date(2026, 12, 1, 4, 0, 0, 0, time.UTC)
	cases := []struct {
		name    string
		left    time.Duration
		wantErr bool
	}{
		{"fresh", 10 * time.Minute, false},
		{"just over the margin", tokenMargin + time.Second, false},
		{"inside the margin", tokenMargin - time.Second, true},
		{"expired", -time.Minute, true},
	}
	for _, tc := range cases {
		tk := &allocTokens{alloc: "7.0.0.1", now: func() time.Time { return now }, token: "held", expires: now.Add(tc.left)}
		got, err := tk.source(context.Background(), "physics/sim")
		switch {
		case tc.wantErr && (err == nil || !strings.Contains(err.Error(), "7.0.0.1")):
			t.Errorf("%s: %q, %v; want a new token asked for", tc.name, got, err)
		case !tc.wantErr && (err != nil || got != "held"):
			t.Errorf("%s: %q, %v; want the held token", tc.name, got, err)
		}
	}
}
