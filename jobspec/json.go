package jobspec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// UnmarshalJSON reads a Spec from JSON, the form CanonicalJSON writes and
// model.Job.SpecJSON holds. Like Parse, it remembers which fields the JSON
// named, so a later Defaults keeps an explicit zero as written
// (`"scratch": 0` means no scratch disk, not the 1 GiB default) and the
// canonical round trip is exact. A field the JSON leaves out is unset, as
// for a Spec built in Go. Positions are not known: messages about such a
// Spec carry no file, line or column.
func (s *Spec) UnmarshalJSON(b []byte) error {
	type fields Spec // the same fields without this method
	var f fields
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	var tree any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&tree); err != nil {
		return fmt.Errorf("jobspec: reading JSON field names: %w", err)
	}
	written := map[string]position{}
	jsonPaths("", tree, written)
	*s = Spec(f)
	s.src = &source{pos: written}
	return nil
}

// jsonPaths records the field path of every non-null value in v, in the
// path syntax Parse uses ("resources.scratch", "stageIn[0].to").
func jsonPaths(path string, v any, written map[string]position) {
	switch v := v.(type) {
	case nil:
		return
	case map[string]any:
		for k, sub := range v {
			p := k
			if path != "" {
				p = path + "." + k
			}
			jsonPaths(p, sub, written)
		}
	case []any:
		for i, sub := range v {
			jsonPaths(path+"["+strconv.Itoa(i)+"]", sub, written)
		}
	}
	if path != "" {
		written[path] = position{}
	}
}
