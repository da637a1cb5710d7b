// Package jobspec is the job.yaml schema, version 1: the file a user writes
// and `hpcsub job.yaml` submits.
//
//	job.yaml bytes
//	   │  Parse     strict decode of the yaml.Node tree: unknown fields,
//	   │            kinds, units; every problem with line:col
//	   ▼
//	*Spec ── Defaults ──► Validate ──► Canonical / CanonicalJSON
//	   (Load = Parse + Defaults + Validate, all problems at once)
//
// hpcsub calls Load and prints the Problems (nothing is sent on error); the
// server calls Load or Validate again on receipt and stores CanonicalJSON in
// the job; the scheduler derives its request from the validated Spec; the
// agent reads Script/Command, Env and the staging lists. Schema produces
// the JSON Schema behind `hpcsub schema` for editors.
//
// Guarantees: Parse and Load never panic, whatever the bytes; input is
// bounded (MaxFileBytes, MaxYAMLNodes; YAML anchors and aliases are refused,
// so no alias bomb can expand); a Spec that validates is within every Max*
// limit; Load(Canonical()) gives an Equal Spec.
//
// The package imports nothing else of vhpc (DESIGN.md: it sits at the bottom).
// See README.md for the schema by example, the units, limits and error format.
package jobspec
