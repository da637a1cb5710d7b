package jobspec

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/invopop/jsonschema"
	"go.yaml.in/yaml/v3"
)

// Duration is a wall-clock limit. In a job file it is written as
// "30m", "4h", "1d", "2d12h", "1h30m", "90s" (units d, h, m, s, largest
// first, each at most once), as "MM:SS", "HH:MM:SS" or "D-HH:MM:SS" (Slurm
// style), or as a plain number of seconds. Job files have whole seconds.
type Duration time.Duration

// Day is 24 hours, the largest unit of a Duration.
const Day = 24 * time.Hour

// durationHelp is appended to every duration syntax error.
const durationHelp = "want a duration like 30m, 4h, 1d, 2d12h, 01:30:00, 2-00:00:00 or a number of seconds"

// maxDurationText bounds the text ParseDuration looks at.
const maxDurationText = 40

// maxDurationSeconds keeps every intermediate sum far from overflow; values
// this large are rejected by Validate anyway (the limit is MaxWalltime).
const maxDurationSeconds = 1 << 40

// ParseDuration parses a duration as written in a job file. The error message
// quotes s and says what is accepted; the decoder uses it verbatim.
func ParseDuration(s string) (Duration, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("empty duration; %s", durationHelp)
	}
	if len(t) > maxDurationText {
		return 0, fmt.Errorf("%s is too long for a duration; %s", quote(s), durationHelp)
	}
	if t[0] == '-' {
		return 0, fmt.Errorf("%s is negative; %s", quote(s), durationHelp)
	}
	var secs int64
	var err error
	switch {
	case allDigits(t):
		secs, err = atoiBounded(t)
	case strings.ContainsAny(t, ":-"):
		secs, err = parseClock(t)
	case strings.HasSuffix(t, "ms") || strings.HasSuffix(t, "us") || strings.HasSuffix(t, "µs") || strings.HasSuffix(t, "ns"):
		err = errors.New("has a sub-second unit; walltimes are whole seconds")
	default:
		secs, err = parseUnits(t)
	}
	if err != nil {
		return 0, fmt.Errorf("%s %w; %s", quote(s), err, durationHelp)
	}
	return Duration(time.Duration(secs) * time.Second), nil
}

// parseUnits parses "2d12h30m15s": numbers each followed by one of d h m s,
// in that order, each at most once.
func parseUnits(t string) (int64, error) {
	const order = "dhms"
	mult := [4]int64{86400, 3600, 60, 1}
	next := 0 // index into order of the smallest unit still allowed
	var total int64
	for len(t) > 0 {
		i := 0
		for i < len(t) && t[i] >= '0' && t[i] <= '9' {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("has %q where a number belongs", t)
		}
		if i == len(t) {
			return 0, fmt.Errorf("ends in a number without a unit")
		}
		n, err := atoiBounded(t[:i])
		if err != nil {
			return 0, err
		}
		u := strings.IndexByte(order, t[i])
		if u < 0 {
			if t[i] == '.' {
				return 0, errors.New("has a fraction; write 1h30m, not 1.5h")
			}
			return 0, fmt.Errorf("has unknown unit %q (units are d, h, m, s)", t[i:])
		}
		if u < next {
			return 0, errors.New("has units out of order or repeated (write them largest first, each once)")
		}
		next = u + 1
		total += n * mult[u]
		if total > maxDurationSeconds {
			return 0, errors.New("is too long")
		}
		t = t[i+1:]
	}
	return total, nil
}

// parseClock parses "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM" and "D-HH:MM:SS".
// Fields after the first are at most 59 (hours at most 23 after a day count).
func parseClock(t string) (int64, error) {
	var days int64
	hasDays := false
	if d, rest, ok := strings.Cut(t, "-"); ok {
		if !allDigits(d) {
			return 0, errors.New("has a bad day count before '-'")
		}
		n, err := atoiBounded(d)
		if err != nil {
			return 0, err
		}
		days, hasDays, t = n, true, rest
	}
	parts := strings.Split(t, ":")
	nums := make([]int64, len(parts))
	for i, p := range parts {
		if !allDigits(p) {
			return 0, fmt.Errorf("has %q where a number belongs", p)
		}
		n, err := atoiBounded(p)
		if err != nil {
			return 0, err
		}
		if i > 0 && n > 59 {
			return 0, fmt.Errorf("has %d minutes or seconds; the most is 59", n)
		}
		nums[i] = n
	}
	var h, m, s int64
	switch {
	case hasDays && len(nums) == 1:
		h = nums[0]
	case hasDays && len(nums) == 2:
		h, m = nums[0], nums[1]
	case len(nums) == 3:
		h, m, s = nums[0], nums[1], nums[2]
	case !hasDays && len(nums) == 2:
		m, s = nums[0], nums[1]
	default:
		return 0, errors.New("has the wrong number of ':' fields (use MM:SS, HH:MM:SS or D-HH:MM:SS)")
	}
	if hasDays && h > 23 {
		return 0, fmt.Errorf("has %d hours after a day count; the most is 23", h)
	}
	total := days*86400 + h*3600 + m*60 + s
	if total > maxDurationSeconds || total < 0 {
		return 0, errors.New("is too long")
	}
	return total, nil
}

// allDigits reports whether s is one or more ASCII digits.
func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// atoiBounded parses a run of digits that must stay below maxDurationSeconds.
func atoiBounded(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > maxDurationSeconds {
		return 0, errors.New("is too long")
	}
	return n, nil
}

// Std returns d as a time.Duration, for the server and the agents.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String returns the canonical form: units d, h, m, s, largest first, zero
// units left out ("2d12h", "1h30m", "45s"; "0s" for zero). A duration that is
// not whole seconds (only possible from Go) falls back to time.Duration's form.
// ParseDuration(d.String()) == d for whole-second d >= 0.
func (d Duration) String() string {
	td := time.Duration(d)
	if td < 0 || td%time.Second != 0 {
		return td.String()
	}
	if td == 0 {
		return "0s"
	}
	secs := int64(td / time.Second)
	var b strings.Builder
	for _, u := range []struct {
		n    int64
		name byte
	}{{86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}} {
		if q := secs / u.n; q > 0 {
			b.WriteString(strconv.FormatInt(q, 10))
			b.WriteByte(u.name)
			secs -= q * u.n
		}
	}
	return b.String()
}

// MarshalYAML writes the canonical string form.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML accepts what ParseDuration accepts. Parse does not use it; it
// is for callers that yaml.Unmarshal a Spec.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration, got %s", n.Line, kindName(n))
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = v
	return nil
}

// MarshalJSON writes the canonical string form, as CanonicalJSON stores it.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON accepts a string that ParseDuration accepts or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n json.Number
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("duration: want a string or a number: %w", errors.Join(err, err2))
		}
		s = n.String()
	}
	v, err := ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	*d = v
	return nil
}

// JSONSchema describes Duration for Schema.
func (Duration) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{
		Description: "A duration: 30m, 4h, 1d, 2d12h (units d h m s, largest first), MM:SS, HH:MM:SS, D-HH:MM:SS, or a number of seconds.",
		OneOf: []*jsonschema.Schema{
			{Type: "string", Pattern: `^([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$|^([0-9]+-)?[0-9]+(:[0-9]{1,2}){0,2}$`},
			{Type: "integer", Minimum: json.Number("1")},
		},
		Examples: []any{"30m", "4h", "2d12h", "01:30:00"},
	}
}
