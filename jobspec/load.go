package jobspec

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"

	"go.yaml.in/yaml/v3"
)

// Load is what hpcsub and the server call on a job file: Parse, Defaults and
// Validate together, returning every problem of all three at once as
// Problems, sorted by position. A value that Parse already reported (say a
// size that does not parse) is not reported again by Validate. On success the
// Spec has every default filled and is within every limit.
func Load(filename string, data []byte) (*Spec, error) {
	s, probs, fatal := parse(filename, data)
	if fatal {
		return nil, probs.err()
	}
	s.Defaults()
	if err := s.Validate(); err != nil {
		vprobs, _ := err.(Problems)
		for _, vp := range vprobs {
			if !reported(probs, vp.Path) {
				probs = append(probs, vp)
			}
		}
	}
	if len(probs) > 0 {
		slices.SortStableFunc(probs, func(a, b Problem) int {
			// problems without a position go last
			return cmp.Or(cmp.Compare(lineKey(a), lineKey(b)), cmp.Compare(a.Col, b.Col))
		})
		return nil, probs.err()
	}
	return s, nil
}

// reported reports whether a parse problem covers path (is at it or above it).
func reported(probs Problems, path string) bool {
	for _, p := range probs {
		if p.Path != "" && under(path, p.Path) {
			return true
		}
	}
	return false
}

func lineKey(p Problem) int {
	if p.Line == 0 {
		return int(^uint(0) >> 1)
	}
	return p.Line
}

// Canonical returns s as canonical YAML: every default filled, fields in
// the order of the Spec type, sizes and durations in their canonical
// spelling, env sorted by name, stages always as {from, to}. Equal specs give
// identical bytes, and Load(Canonical()) gives a Spec Equal to s with
// defaults. s is not changed. An invalid spec gives its Problems instead.
func (s *Spec) Canonical() ([]byte, error) {
	c, err := s.canonical()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("jobspec: encoding canonical YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("jobspec: encoding canonical YAML: %w", err)
	}
	return buf.Bytes(), nil
}

// CanonicalJSON is Canonical as compact JSON (no HTML escaping, no final
// newline), the form the server stores in
// model.Job.SpecJSON. Same field names, order and spellings; json.Unmarshal
// into a Spec reads it back.
func (s *Spec) CanonicalJSON() ([]byte, error) {
	c, err := s.canonical()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // scripts keep their '<', '>' and '&' readable
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("jobspec: encoding canonical JSON: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// canonical returns a defaulted, validated copy of s.
func (s *Spec) canonical() (*Spec, error) {
	c := s.Clone()
	c.Defaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("jobspec: spec is not valid: %w", err)
	}
	return c, nil
}
