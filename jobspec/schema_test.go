package jobspec

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestSchema(t *testing.T) {
	b, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := json.Unmarshal(b, &root); err != nil {
		t.Fatalf("Schema is not valid JSON: %v", err)
	}
	if got := root["$schema"]; got != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema = %v", got)
	}
	defs, _ := root["$defs"].(map[string]any)
	// every field of every type is a property with a description
	check := func(typ string, schema map[string]any, v any) {
		props, _ := schema["properties"].(map[string]any)
		if props == nil {
			t.Fatalf("%s: no properties in %v", typ, schema)
		}
		names := jsonTags(v)
		if len(props) != len(names) {
			t.Errorf("%s: %d properties, %d fields", typ, len(props), len(names))
		}
		for _, n := range names {
			p, ok := props[n].(map[string]any)
			if !ok {
				t.Errorf("%s: field %q missing from the schema", typ, n)
				continue
			}
			if d, _ := p["description"].(string); d == "" {
				t.Errorf("%s.%s: no description", typ, n)
			}
		}
	}
	check("Spec", root, Spec{})
	for _, v := range []any{Resources{}, Array{}, Dependency{}} {
		name := reflect.TypeOf(v).Name()
		d, _ := defs[name].(map[string]any)
		if d == nil {
			t.Fatalf("$defs.%s missing", name)
		}
		check(name, d, v)
	}
	// Stage has a custom schema: a path or {from, to}
	stage, _ := defs["Stage"].(map[string]any)
	oneOf, _ := stage["oneOf"].([]any)
	if len(oneOf) != 2 {
		t.Fatalf("Stage schema: %v", stage)
	}
	check("Stage", oneOf[1].(map[string]any), Stage{})
	for _, name := range []string{"Quantity", "Duration"} {
		if d, _ := defs[name].(map[string]any); d == nil || d["description"] == "" {
			t.Errorf("$defs.%s missing or undescribed", name)
		}
	}
	if req, _ := root["required"].([]any); len(req) != 1 || req[0] != "name" {
		t.Errorf("required = %v; want [name]", root["required"])
	}
	if root["additionalProperties"] != false {
		t.Errorf("unknown fields are not refused by the schema")
	}
	// stable output
	b2, _ := Schema()
	if string(b) != string(b2) {
		t.Errorf("Schema output is not stable")
	}
}
