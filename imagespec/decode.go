package imagespec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"

	"vhpc/jobspec"
)

// MaxFileBytes is the largest spec file accepted.
const MaxFileBytes = 256 << 10

// Parse decodes an image spec strictly. Every problem is reported at once,
// each with line:col: unknown fields (with a suggestion), duplicate
// fields, values of the wrong kind, YAML anchors/aliases (refused, as in
// job.yaml), several documents. It does not fill defaults or check values:
// Load does. The error is jobspec.Problems; filename is used in messages.
func Parse(filename string, data []byte) (*Spec, error) {
	d := checker{file: filename, pos: map[string][2]int{}}
	root := d.document(data)
	if root == nil || len(d.probs) > 0 {
		return nil, d.probs
	}
	d.walk(root, reflect.TypeFor[Spec](), "")
	if len(d.probs) > 0 {
		return nil, d.probs
	}
	s := Spec{pos: d.pos}
	if err := root.Decode(&s); err != nil {
		// The walk checked kinds; what is left is a value the types
		// refuse (a size that does not parse).
		return nil, jobspec.Problems{{File: filename, Line: root.Line, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	return &s, nil
}

// checker walks the YAML tree against the Go types, collecting problems.
type checker struct {
	file  string
	probs jobspec.Problems
	pos   map[string][2]int // path -> line, col, for Validate's messages
}

func (d *checker) add(n *yaml.Node, path, format string, args ...any) {
	p := jobspec.Problem{File: d.file, Path: path, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		p.Line, p.Col = n.Line, n.Column
	}
	d.probs = append(d.probs, p)
}

// document returns the top mapping, or nil after a whole-file problem.
func (d *checker) document(data []byte) *yaml.Node {
	if len(data) > MaxFileBytes {
		d.add(nil, "", "file is %d bytes; an image spec is at most %d", len(data), MaxFileBytes)
		return nil
	}
	if bytes.IndexByte(data, 0) >= 0 {
		d.add(nil, "", "binary file (NUL byte); want a UTF-8 YAML text file")
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.add(nil, "", "empty file; want a mapping with at least name")
		} else {
			d.add(nil, "", "invalid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		return nil
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		d.add(&next, "", "more than one YAML document ('---'); want one image per file")
		return nil
	}
	root := &doc
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		root = doc.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		d.add(root, "", "the document is not a mapping; want fields like name:, packages:")
		return nil
	}
	return root
}

// walk checks n against type t: mappings of structs only have known keys,
// once each; lists, maps and scalars are where the type wants them.
func (d *checker) walk(n *yaml.Node, t reflect.Type, path string) {
	d.pos[path] = [2]int{n.Line, n.Column}
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		d.add(n, path, "YAML anchors and aliases are not supported in image specs; write the value out")
		return
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // unset
	}
	if t == reflect.TypeFor[jobspec.Quantity]() {
		d.want(n, path, yaml.ScalarNode, "a size like 4GiB")
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if !d.want(n, path, yaml.MappingNode, "a mapping") {
			return
		}
		fields := map[string]reflect.Type{}
		var names []string
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			fields[name] = t.Field(i).Type
			names = append(names, name)
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			kp := join(path, k.Value)
			ft, ok := fields[k.Value]
			switch {
			case !ok:
				d.add(k, kp, "%s", unknownField(k.Value, names))
			case seen[k.Value]:
				d.add(k, kp, "duplicate field; each field may appear once")
			default:
				seen[k.Value] = true
				d.walk(v, ft, kp)
			}
		}
	case reflect.Slice:
		if !d.want(n, path, yaml.SequenceNode, "a list") {
			return
		}
		for i, item := range n.Content {
			d.walk(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.Map:
		if !d.want(n, path, yaml.MappingNode, "a mapping of names to values") {
			return
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if seen[k.Value] {
				d.add(k, join(path, k.Value), "duplicate name")
			}
			seen[k.Value] = true
			d.walk(n.Content[i+1], t.Elem(), join(path, k.Value))
		}
	default:
		if d.want(n, path, yaml.ScalarNode, "a string") && n.ShortTag() != "!!str" && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0 {
			if tag := n.ShortTag(); tag == "!!bool" {
				d.add(n, path, "%q is a boolean in YAML; quote it (\"%s\") if you mean the string", n.Value, n.Value)
			}
		}
	}
}

// want reports a node of the wrong kind.
func (d *checker) want(n *yaml.Node, path string, kind yaml.Kind, what string) bool {
	if n.Kind == kind {
		return true
	}
	names := map[yaml.Kind]string{yaml.ScalarNode: "a single value", yaml.SequenceNode: "a list", yaml.MappingNode: "a mapping"}
	d.add(n, path, "is %s; want %s", names[n.Kind], what)
	return false
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// unknownField says a key is unknown and suggests the closest known one.
func unknownField(key string, names []string) string {
	lk := strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(key))
	best, bestDist := "", 3
	for _, n := range names {
		ln := strings.ToLower(n)
		dist := jobspec.EditDistance(lk, ln)
		if ln == lk || (len(lk) >= 3 && strings.HasPrefix(ln, lk)) {
			dist = 0
		}
		if dist < bestDist {
			best, bestDist = n, dist
		}
	}
	if best != "" {
		return fmt.Sprintf("unknown field; did you mean %q?", best)
	}
	return "unknown field; want one of " + strings.Join(names, ", ")
}
