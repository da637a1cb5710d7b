package jobspec

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/invopop/jsonschema"
	"go.yaml.in/yaml/v3"
)

// Quantity is a size in bytes: memory, scratch disk, hugepages, GPU memory.
// In a job file it is written with a unit: "512MiB", "4GiB", "1.5GiB" (binary,
// powers of 1024), "10G" or "10GB" (decimal, powers of 1000) or a plain number
// of bytes. Units are matched case-insensitively. Fractions are rounded up to
// a whole byte. The scheduler works in MiB; see MiB.
type Quantity int64

// Byte multiples, for Go callers and tests.
const (
	KiB Quantity = 1 << (10 * (iota + 1))
	MiB
	GiB
	TiB
	PiB
	EiB
)

// unit is one accepted size suffix.
type unit struct {
	name string // canonical spelling, as printed
	size uint64
}

// binaryUnits and decimalUnits are the canonical units, largest first; String
// picks from these.
var (
	binaryUnits = []unit{
		{"EiB", 1 << 60}, {"PiB", 1 << 50}, {"TiB", 1 << 40},
		{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	}
	decimalUnits = []unit{
		{"E", 1e18}, {"P", 1e15}, {"T", 1e12}, {"G", 1e9}, {"M", 1e6}, {"K", 1e3},
	}
)

// unitSize maps every accepted suffix, lower-cased, to its size in bytes.
var unitSize = map[string]uint64{
	"": 1, "b": 1,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40, "pib": 1 << 50, "eib": 1 << 60,
	"ki": 1 << 10, "mi": 1 << 20, "gi": 1 << 30, "ti": 1 << 40, "pi": 1 << 50, "ei": 1 << 60,
	"k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "p": 1e15, "e": 1e18,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "pb": 1e15, "eb": 1e18,
}

// quantityHelp is appended to every quantity syntax error.
const quantityHelp = "want a size like 512MiB, 4GiB, 1.5GiB, 10G or a number of bytes " +
	"(binary units KiB MiB GiB TiB PiB, decimal units K M G T P)"

// maxQuantityText bounds the text ParseQuantity looks at, so a megabyte of
// digits costs nothing.
const maxQuantityText = 40

// ParseQuantity parses a size as written in a job file ("4GiB", "10G",
// "1.5GiB", "1024"). The error message quotes s and says what is accepted;
// the decoder uses it verbatim as a Problem message.
func ParseQuantity(s string) (Quantity, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("empty size; %s", quantityHelp)
	}
	if len(t) > maxQuantityText {
		return 0, fmt.Errorf("%s is too long for a size; %s", quote(s), quantityHelp)
	}
	if t[0] == '-' {
		return 0, fmt.Errorf("%s is negative; %s", quote(s), quantityHelp)
	}
	// number: digits [ '.' digits ]
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	intEnd := i
	if i < len(t) && t[i] == '.' {
		i++
		for i < len(t) && t[i] >= '0' && t[i] <= '9' {
			i++
		}
		if i == intEnd+1 {
			return 0, fmt.Errorf("%s has no digits after the '.'; %s", quote(s), quantityHelp)
		}
	}
	if intEnd == 0 {
		return 0, fmt.Errorf("%s does not start with a number; %s", quote(s), quantityHelp)
	}
	num := t[:i]
	suffix := strings.TrimLeft(t[i:], " ")
	size, ok := unitSize[strings.ToLower(suffix)]
	if !ok {
		return 0, fmt.Errorf("%s has unknown unit %q; %s", quote(s), suffix, quantityHelp)
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, fmt.Errorf("%s is not a number; %s", quote(s), quantityHelp)
	}
	r.Mul(r, new(big.Rat).SetInt(new(big.Int).SetUint64(size)))
	// round up to whole bytes
	q, rem := new(big.Int).QuoRem(r.Num(), r.Denom(), new(big.Int))
	if rem.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() {
		return 0, fmt.Errorf("%s is too large; the most is %s", quote(s), Quantity(math.MaxInt64))
	}
	return Quantity(q.Int64()), nil
}

// String returns the canonical spelling: the shortest of the exact forms
// with the largest binary unit, the largest decimal unit, or plain bytes;
// ties go in that order ("1KiB", not "1024"). ParseQuantity(q.String()) == q for every q >= 0.
func (q Quantity) String() string {
	if q == 0 {
		return "0"
	}
	sign := ""
	u := uint64(q)
	if q < 0 {
		sign = "-"
		u = uint64(-(q + 1)) + 1 // no overflow for MinInt64
	}
	best := ""
	for _, units := range [][]unit{binaryUnits, decimalUnits} {
		for _, un := range units {
			if u%un.size == 0 {
				if c := strconv.FormatUint(u/un.size, 10) + un.name; best == "" || len(c) < len(best) {
					best = c
				}
				break
			}
		}
	}
	if b := strconv.FormatUint(u, 10); best == "" || len(b) < len(best) {
		best = b
	}
	return sign + best
}

// MiB returns q in MiB, rounded up: the unit of the scheduler's model.
func (q Quantity) MiB() int64 {
	m := int64(q / MiB)
	if q%MiB > 0 {
		m++
	}
	return m
}

// MarshalYAML writes the canonical string form.
func (q Quantity) MarshalYAML() (any, error) { return q.String(), nil }

// UnmarshalYAML accepts what ParseQuantity accepts. Parse does not use it (it
// decodes the node tree itself); it is for callers that yaml.Unmarshal a Spec.
func (q *Quantity) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a size, got %s", n.Line, kindName(n))
	}
	v, err := ParseQuantity(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*q = v
	return nil
}

// MarshalJSON writes the canonical string form, as CanonicalJSON stores it.
func (q Quantity) MarshalJSON() ([]byte, error) { return json.Marshal(q.String()) }

// UnmarshalJSON accepts a string that ParseQuantity accepts or a number of bytes.
func (q *Quantity) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n json.Number
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("quantity: want a string or a number: %w", errors.Join(err, err2))
		}
		s = n.String()
	}
	v, err := ParseQuantity(s)
	if err != nil {
		return fmt.Errorf("quantity: %w", err)
	}
	*q = v
	return nil
}

// JSONSchema describes Quantity for Schema: a size string or a byte count.
func (Quantity) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{
		Description: "A size: a number with a unit, e.g. 512MiB, 4GiB, 1.5GiB (binary), 10G (decimal), or a number of bytes.",
		OneOf: []*jsonschema.Schema{
			{Type: "string", Pattern: `^[0-9]+(\.[0-9]+)? *([KkMmGgTtPpEe][iI]?)?[bB]?$`},
			{Type: "integer", Minimum: json.Number("0")},
		},
		Examples: []any{"512MiB", "4GiB", "10G"},
	}
}
