package jobspec

import (
	"encoding/json"
	"fmt"

	"github.com/invopop/jsonschema"
	"go.yaml.in/yaml/v3"
)

// SchemaID is the $id of the schema Schema returns.
const SchemaID = "https://vhpc.invalid/schemas/job-v1.json"

// Schema returns the JSON Schema (draft 2020-12) of a job file, generated from
// the Go types with a description for every field, for editors (the YAML
// language server) and for `hpcsub schema`. It is a help, not the authority:
// rules that a schema cannot say (hugepages <= memory, ".." in paths) are
// Validate's. The output is indented and stable.
func Schema() ([]byte, error) {
	r := &jsonschema.Reflector{
		ExpandedStruct:             true,
		RequiredFromJSONSchemaTags: true,
		FieldNameTag:               "json",
	}
	s := r.Reflect(&Spec{})
	s.ID = SchemaID
	s.Title = "vhpc job.yaml (v1)"
	s.Description = "A batch job for vhpc: what to run (command or script), where (image, partition), " +
		"with what (resources per node) and for how long (walltime). Submit with `hpcsub job.yaml`."
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("jobspec: encoding JSON schema: %w", err)
	}
	return append(b, '\n'), nil
}

// JSONSchemaExtend adds what the struct tags cannot say to the schema of a
// Spec: exactly one of command and script, and the rule for env names.
func (Spec) JSONSchemaExtend(s *jsonschema.Schema) {
	s.OneOf = []*jsonschema.Schema{
		{Required: []string{"command"}, Not: &jsonschema.Schema{Required: []string{"script"}}},
		{Required: []string{"script"}, Not: &jsonschema.Schema{Required: []string{"command"}}},
	}
	if env, ok := s.Properties.Get("env"); ok {
		env.PropertyNames = &jsonschema.Schema{Pattern: "^[A-Za-z_][A-Za-z0-9_]*$", MaxLength: ptr(uint64(MaxEnvNameLen))}
	}
}

// JSONSchema describes Stage: a path, or a mapping of from and to.
func (Stage) JSONSchema() *jsonschema.Schema {
	path := &jsonschema.Schema{Type: "string", MinLength: ptr(uint64(1)), MaxLength: ptr(uint64(MaxStagePathLen)), Pattern: `^[^/]`}
	props := jsonschema.NewProperties()
	props.Set("from", &jsonschema.Schema{Type: "string", Description: "Source path, relative; no '..', not absolute.", MinLength: path.MinLength, MaxLength: path.MaxLength, Pattern: path.Pattern})
	props.Set("to", &jsonschema.Schema{Type: "string", Description: "Destination path, relative; no '..', not absolute. Default: the same as from.", MinLength: path.MinLength, MaxLength: path.MaxLength, Pattern: path.Pattern})
	return &jsonschema.Schema{
		Description: "A file or folder to stage: a relative path (the same on both sides) or {from, to}.",
		OneOf: []*jsonschema.Schema{
			path,
			{Type: "object", Properties: props, Required: []string{"from"}, AdditionalProperties: jsonschema.FalseSchema},
		},
	}
}

func ptr[T any](v T) *T { return &v }

// UnmarshalJSON accepts the short form "path" (From = To) or {"from", "to"}.
func (st *Stage) UnmarshalJSON(b []byte) error {
	var p string
	if err := json.Unmarshal(b, &p); err == nil {
		*st = Stage{From: p, To: p}
		return nil
	}
	type plain Stage // no methods: no recursion
	var v plain
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("stage: want a path or {\"from\", \"to\"}: %w", err)
	}
	*st = Stage(v)
	return nil
}

// UnmarshalYAML accepts the short form "path" (From = To) or {from, to}. Parse
// does not use it; it is for callers that yaml.Unmarshal a Spec.
func (st *Stage) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*st = Stage{From: n.Value, To: n.Value}
		return nil
	}
	type plain Stage
	var v plain
	if err := n.Decode(&v); err != nil {
		return fmt.Errorf("stage: want a path or {from, to}: %w", err)
	}
	*st = Stage(v)
	return nil
}
