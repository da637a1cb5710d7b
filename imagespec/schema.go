package imagespec

import (
	"encoding/json"
	"fmt"

	"github.com/invopop/jsonschema"
)

// SchemaID is the $id of the schema Schema returns.
const SchemaID = "https://vhpc.invalid/schemas/image-v1.json"

// Schema returns the JSON Schema (draft 2020-12) of an image spec, from the
// Go types, for editors and for `hpc image schema` later. It is a help:
// Validate is the authority (package names, paths, kernel arguments).
func Schema() ([]byte, error) {
	r := &jsonschema.Reflector{ExpandedStruct: true, RequiredFromJSONSchemaTags: true, FieldNameTag: "json"}
	s := r.Reflect(&Spec{})
	s.ID = SchemaID
	s.Title = "vhpc image spec (v1)"
	s.Description = "A department image: Debian base, packages, files, environment, disk size and guest template. Build with `hpc image build SPEC.yaml`."
	if name, ok := s.Properties.Get("name"); ok {
		name.Pattern = `^[a-z0-9][a-z0-9._-]{0,63}/[a-z0-9][a-z0-9._-]{0,63}(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?$`
	}
	if pk, ok := s.Properties.Get("packages"); ok && pk.Items != nil {
		pk.Items.Pattern = packageRE.String()
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("imagespec: encoding JSON schema: %w", err)
	}
	return append(b, '\n'), nil
}
