package jobspec

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func TestParseQuantity(t *testing.T) {
	tests := []struct {
		name, in string
		want     Quantity
		err      string // fragment of the error; "" means success
	}{
		{"plain bytes", "1024", 1024, ""},
		{"zero", "0", 0, ""},
		{"bytes unit", "100B", 100, ""},
		{"KiB", "4KiB", 4 * KiB, ""},
		{"MiB", "512MiB", 512 * MiB, ""},
		{"GiB", "4GiB", 4 * GiB, ""},
		{"TiB", "2TiB", 2 * TiB, ""},
		{"PiB", "1PiB", PiB, ""},
		{"EiB", "1EiB", EiB, ""},
		{"Kubernetes Gi", "4Gi", 4 * GiB, ""},
		{"lower case gib", "4gib", 4 * GiB, ""},
		{"fraction", "1.5GiB", 1536 * MiB, ""},
		{"fraction rounds up", "0.1KiB", 103, ""},
		{"decimal G", "10G", 10_000_000_000, ""},
		{"decimal GB", "4GB", 4_000_000_000, ""},
		{"decimal K", "2K", 2000, ""},
		{"decimal kB", "2kB", 2000, ""},
		{"decimal M", "1.5M", 1_500_000, ""},
		{"space before unit", "4 GiB", 4 * GiB, ""},
		{"surrounding space", " 4GiB ", 4 * GiB, ""},
		{"max int64", "9223372036854775807", math.MaxInt64, ""},
		{"empty", "", 0, "empty size"},
		{"negative", "-4GiB", 0, "is negative"},
		{"parsecs", "4 parsecs", 0, `unknown unit "parsecs"`},
		{"bits", "4Gb2", 0, "unknown unit"},
		{"no number", "GiB", 0, "does not start with a number"},
		{"dot only", "4.GiB", 0, "no digits after the '.'"},
		{"leading dot", ".5GiB", 0, "does not start with a number"},
		{"exponent", "1e9", 0, "unknown unit"},
		{"hex", "0x10", 0, "unknown unit"},
		{"overflow", "9223372036854775808", 0, "is too large"},
		{"overflow unit", "8EiB", 0, "is too large"},
		{"too long", strings.Repeat("1", 100), 0, "too long"},
		{"two numbers", "1 2", 0, "unknown unit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseQuantity(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseQuantity(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.err)
				}
				if !strings.Contains(err.Error(), "want a size") && !strings.Contains(err.Error(), "the most is") {
					t.Errorf("error %q does not say what is allowed", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseQuantity(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestQuantityString(t *testing.T) {
	tests := []struct {
		name string
		in   Quantity
		want string
	}{
		{"zero", 0, "0"},
		{"bytes", 1000 + 1, "1001"},
		{"KiB", KiB, "1KiB"},
		{"decimal K", 1000, "1K"},
		{"MiB", 512 * MiB, "512MiB"},
		{"GiB", 4 * GiB, "4GiB"},
		{"1.5GiB", 1536 * MiB, "1536MiB"},
		{"decimal shorter", 10_000_000_000, "10G"},
		{"odd bytes", 1536, "1536"},
		{"negative", -4 * GiB, "-4GiB"},
		{"min int64", math.MinInt64, "-8EiB"},
		{"max int64", math.MaxInt64, "9223372036854775807"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.String(); got != tt.want {
				t.Fatalf("Quantity(%d).String() = %q; want %q", int64(tt.in), got, tt.want)
			}
			if tt.in < 0 {
				return
			}
			back, err := ParseQuantity(tt.want)
			if err != nil || back != tt.in {
				t.Fatalf("ParseQuantity(%q) = %d, %v; want %d", tt.want, back, err, tt.in)
			}
		})
	}
}

func TestQuantityMiB(t *testing.T) {
	tests := []struct {
		name string
		in   Quantity
		want int64
	}{
		{"zero", 0, 0},
		{"one byte rounds up", 1, 1},
		{"exact", 512 * MiB, 512},
		{"just over", GiB + 1, 1025},
		{"decimal", 1_000_000_000, 954},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.MiB(); got != tt.want {
				t.Fatalf("Quantity(%d).MiB() = %d; want %d", int64(tt.in), got, tt.want)
			}
		})
	}
}

func TestQuantityJSON(t *testing.T) {
	b, err := json.Marshal(4 * GiB)
	if err != nil || string(b) != `"4GiB"` {
		t.Fatalf("Marshal = %s, %v; want \"4GiB\"", b, err)
	}
	for _, in := range []string{`"4GiB"`, `4294967296`} {
		var q Quantity
		if err := json.Unmarshal([]byte(in), &q); err != nil || q != 4*GiB {
			t.Errorf("Unmarshal(%s) = %d, %v; want 4GiB", in, q, err)
		}
	}
	var q Quantity
	if err := json.Unmarshal([]byte(`"4 parsecs"`), &q); err == nil {
		t.Errorf("Unmarshal(4 parsecs) succeeded")
	}
	if err := json.Unmarshal([]byte(`true`), &q); err == nil {
		t.Errorf("Unmarshal(true) succeeded")
	}
}
