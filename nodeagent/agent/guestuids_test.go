package agent

import (
	"strings"
	"testing"

	"vhpc/nodeagent/guestid"
)

func TestParseGuestUIDs(t *testing.T) {
	for _, tc := range []struct {
		in      string
		ids     guestid.Range
		shared  bool
		wantErr string
	}{
		{in: ""},
		{in: "shared", shared: true},
		{in: "700000-700009", ids: guestid.Range{Base: 700000, Count: 10}},
		{in: "0-999", wantErr: "ids of no user of this host"},
		{in: "600010-600000", wantErr: "want FIRST <= LAST"},
		{in: "lots", wantErr: "want FIRST-LAST"},
		{in: "root", wantErr: "or shared"},
	} {
		ids, shared, err := parseGuestUIDs(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: err %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || ids != tc.ids || shared != tc.shared {
			t.Errorf("%q: %+v %v %v, want %+v %v", tc.in, ids, shared, err, tc.ids, tc.shared)
		}
	}
}
