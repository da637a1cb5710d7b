package imagestore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"vhpc/imagestore"
)

// TestRenewingToken: a held token is answered while more than the margin
// of it is left; inside the margin or expired, fetch is asked, its token
// kept, and a failed fetch is returned and asked again on the next call.
func TestRenewingToken(t *testing.T) {
	now := time.Date(2026, 12, 1, 4, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	cases := []struct {
		name      string
		held      string
		left      time.Duration
		wantFetch bool
	}{
		{"fresh", "held", 10 * time.Minute, false},
		{"just over the margin", "held", imagestore.TokenRenewMargin + time.Second, false},
		{"inside the margin", "held", imagestore.TokenRenewMargin - time.Second, true},
		{"expired", "held", -time.Minute, true},
		{"none yet", "", 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fetches := 0
			src := imagestore.RenewingToken(tc.held, now.Add(tc.left), clock, func(context.Context) (string, time.Time, error) {
				fetches++
				return "new", now.Add(15 * time.Minute), nil
			})
			for range 2 { // the second call answers what the first kept
				got, err := src(context.Background(), "physics/sim")
				want := tc.held
				if tc.wantFetch {
					want = "new"
				}
				if err != nil || got != want {
					t.Fatalf("token %q, %v; want %q", got, err, want)
				}
			}
			if want := map[bool]int{false: 0, true: 1}[tc.wantFetch]; fetches != want {
				t.Errorf("%d fetches; want %d", fetches, want)
			}
		})
	}
	t.Run("failed fetch", func(t *testing.T) {
		fail := true
		src := imagestore.RenewingToken("", time.Time{}, clock, func(context.Context) (string, time.Time, error) {
			if fail {
				return "", time.Time{}, errors.New("master unreachable")
			}
			return "new", now.Add(15 * time.Minute), nil
		})
		if _, err := src(context.Background(), "r"); err == nil || err.Error() != "master unreachable" {
			t.Fatalf("err %v; want the fetch's error", err)
		}
		fail = false
		if got, err := src(context.Background(), "r"); err != nil || got != "new" {
			t.Fatalf("after the failure: %q, %v; want a fresh fetch", got, err)
		}
	})
}
