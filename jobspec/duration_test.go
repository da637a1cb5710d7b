package jobspec

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		name, in string
		want     time.Duration
		err      string // fragment of the error; "" means success
	}{
		{"minutes", "30m", 30 * time.Minute, ""},
		{"hours", "4h", 4 * time.Hour, ""},
		{"day", "1d", Day, ""},
		{"days and hours", "2d12h", 60 * time.Hour, ""},
		{"all units", "1d2h3m4s", Day + 2*time.Hour + 3*time.Minute + 4*time.Second, ""},
		{"hours minutes", "1h30m", 90 * time.Minute, ""},
		{"seconds unit", "90s", 90 * time.Second, ""},
		{"plain seconds", "300", 300 * time.Second, ""},
		{"zero", "0", 0, ""},
		{"MM:SS", "05:30", 5*time.Minute + 30*time.Second, ""},
		{"MM:SS over an hour", "90:00", 90 * time.Minute, ""},
		{"HH:MM:SS", "01:30:00", 90 * time.Minute, ""},
		{"HH:MM:SS many hours", "48:00:00", 48 * time.Hour, ""},
		{"D-HH", "2-12", 60 * time.Hour, ""},
		{"D-HH:MM", "1-00:30", Day + 30*time.Minute, ""},
		{"D-HH:MM:SS", "1-02:03:04", Day + 2*time.Hour + 3*time.Minute + 4*time.Second, ""},
		{"spaces", " 5m ", 5 * time.Minute, ""},
		{"empty", "", 0, "empty duration"},
		{"negative", "-1h", 0, "is negative"},
		{"fraction", "1.5h", 0, "has a fraction"},
		{"milliseconds", "5ms", 0, "sub-second unit"},
		{"unknown unit", "2w", 0, `unknown unit "w"`},
		{"out of order", "30m1h", 0, "out of order"},
		{"repeated", "1h1h", 0, "out of order"},
		{"no unit after number", "1h30", 0, "without a unit"},
		{"unit without number", "h", 0, "where a number belongs"},
		{"words", "one hour", 0, "where a number belongs"},
		{"minutes over 59", "01:60:00", 0, "the most is 59"},
		{"hours over 23 with days", "1-24:00:00", 0, "the most is 23"},
		{"four fields", "1:2:3:4", 0, "wrong number of ':'"},
		{"empty field", "1::2", 0, "where a number belongs"},
		{"bad day", "x-01:00:00", 0, "bad day count"},
		{"nothing after dash", "1-", 0, "where a number belongs"},
		{"huge", "99999999999999999999s", 0, "too long"},
		{"huge days", "99999999999d", 0, "too long"},
		{"too long text", strings.Repeat("1h", 50), 0, "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseDuration(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.err)
				}
				if !strings.Contains(err.Error(), "want a duration") {
					t.Errorf("error %q does not say what is allowed", err)
				}
				return
			}
			if err != nil || got.Std() != tt.want {
				t.Fatalf("ParseDuration(%q) = %v, %v; want %v", tt.in, got.Std(), err, tt.want)
			}
		})
	}
}

func TestDurationString(t *testing.T) {
	tests := []struct {
		name string
		in   time.Duration
		want string
	}{
		{"zero", 0, "0s"},
		{"seconds", 45 * time.Second, "45s"},
		{"minutes", 5 * time.Minute, "5m"},
		{"hour and a half", 90 * time.Minute, "1h30m"},
		{"day", Day, "1d"},
		{"days and hours", 60 * time.Hour, "2d12h"},
		{"everything", Day + time.Hour + time.Minute + time.Second, "1d1h1m1s"},
		{"thirty days", 30 * Day, "30d"},
		{"sub-second falls back", 1500 * time.Millisecond, "1.5s"},
		{"negative falls back", -time.Hour, "-1h0m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Duration(tt.in)
			if got := d.String(); got != tt.want {
				t.Fatalf("Duration(%v).String() = %q; want %q", tt.in, got, tt.want)
			}
			if tt.in < 0 || tt.in%time.Second != 0 {
				return
			}
			back, err := ParseDuration(tt.want)
			if err != nil || back != d {
				t.Fatalf("ParseDuration(%q) = %v, %v; want %v", tt.want, back, err, tt.in)
			}
		})
	}
}

func TestDurationJSON(t *testing.T) {
	b, err := json.Marshal(Duration(90 * time.Minute))
	if err != nil || string(b) != `"1h30m"` {
		t.Fatalf("Marshal = %s, %v; want \"1h30m\"", b, err)
	}
	for _, in := range []string{`"1h30m"`, `5400`, `"01:30:00"`} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err != nil || d.Std() != 90*time.Minute {
			t.Errorf("Unmarshal(%s) = %v, %v; want 1h30m", in, d, err)
		}
	}
	var d Duration
	if err := json.Unmarshal([]byte(`"soon"`), &d); err == nil {
		t.Errorf("Unmarshal(soon) succeeded")
	}
}
