package main

import (
	"strings"
	"testing"
)

func TestParseDataQuotas(t *testing.T) {
	cases := []struct {
		in   string
		want map[string]int64
		err  string
	}{
		{"", nil, ""},
		{"physics=100GiB", map[string]int64{"physics": 100 << 30}, ""},
		{"physics=1TiB, chemistry=512", map[string]int64{"physics": 1 << 40, "chemistry": 512}, ""},
		{"physics", nil, "want department=SIZE"},
		{"=1GiB", nil, "want department=SIZE"},
		{"physics=1GiB,physics=2GiB", nil, "twice"},
		{"physics=lots", nil, "want a size"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseDataQuotas(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || len(got) != len(tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %d, want %d", k, got[k], v)
				}
			}
		})
	}
}
