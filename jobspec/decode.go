package jobspec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Bounds on the input itself, checked before and while parsing, so that no
// file can make Parse slow or large (an alias bomb, a megabyte of nesting).
const (
	// MaxFileBytes is the largest job file accepted.
	MaxFileBytes = 1 << 20
	// MaxYAMLNodes is the most YAML nodes (scalars, lists, maps) in one file.
	MaxYAMLNodes = 20000
)

// Parse decodes a job file strictly and reports every problem it finds at
// once, each with line:col: unknown or misspelt fields (with a suggestion),
// duplicate fields, values of the wrong kind, numbers and sizes that do not
// parse, and whole-file problems (empty, binary, not UTF-8, larger than
// MaxFileBytes, more than one YAML document, not a mapping, YAML anchors,
// aliases or custom tags, which are refused outright). It does not fill
// defaults and does not check ranges: that is Defaults and Validate, and Load
// does all three. filename is used only in messages.
//
// On success the Spec remembers where each value was written, for Validate.
// On failure the error is Problems and the Spec is nil. Parse never panics.
func Parse(filename string, data []byte) (*Spec, error) {
	s, probs, _ := parse(filename, data)
	if len(probs) > 0 {
		return nil, probs.err()
	}
	return s, nil
}

// parse is Parse that also returns the partial Spec on field problems, for
// Load. fatal is true when the file could not be decoded at all (the Spec is
// then empty and must not be validated).
func parse(filename string, data []byte) (s *Spec, probs Problems, fatal bool) {
	d := &decoder{file: filename, pos: map[string]position{}}
	s = &Spec{}
	if !d.document(data, s) {
		return s, d.probs, true
	}
	s.src = &source{file: filename, pos: d.pos}
	return s, d.probs, false
}

// decoder walks a yaml.Node tree into a Spec, collecting Problems.
type decoder struct {
	file  string
	probs Problems
	pos   map[string]position
}

// problem records a Problem at node n (or at the file start if n is nil).
func (d *decoder) problem(n *yaml.Node, path, value, format string, args ...any) {
	p := Problem{File: d.file, Path: path, Value: short(value), Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		p.Line, p.Col = n.Line, n.Column
	}
	d.probs = append(d.probs, p)
}

// fileProblem records a whole-file problem at a position.
func (d *decoder) fileProblem(line, col int, format string, args ...any) {
	d.probs = append(d.probs, Problem{File: d.file, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)})
}

// document checks the raw bytes, parses the YAML and decodes the top mapping
// into s. It returns false when the file as a whole is unusable.
func (d *decoder) document(data []byte, s *Spec) bool {
	if len(data) > MaxFileBytes {
		d.fileProblem(0, 0, "file is %d bytes; the most is %s (put data in stageIn files, not in job.yaml)", len(data), Quantity(MaxFileBytes))
		return false
	}
	if i := bytes.IndexByte(data, 0); i >= 0 {
		line, col := offsetPos(data, i)
		d.fileProblem(line, col, "binary file: NUL byte at offset %d; want a UTF-8 YAML text file", i)
		return false
	}
	if !utf8.Valid(data) {
		i := firstInvalidUTF8(data)
		line, col := offsetPos(data, i)
		d.fileProblem(line, col, "not UTF-8 text: invalid byte 0x%02x at offset %d; want a UTF-8 YAML text file", data[i], i)
		return false
	}
	doc, more, err := decodeYAML(data)
	if errors.Is(err, io.EOF) {
		d.fileProblem(0, 0, "empty file; want a YAML mapping with at least name and command (or script)")
		return false
	}
	if err != nil {
		line, msg := yamlErrorPos(err)
		d.fileProblem(line, 0, "invalid YAML: %s", msg)
		return false
	}
	if more != nil {
		d.fileProblem(more.Line, more.Column, "more than one YAML document ('---'); want exactly one job per file")
		return false
	}
	root := doc
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) != 1 {
			d.fileProblem(doc.Line, doc.Column, "empty document; want a YAML mapping with at least name and command (or script)")
			return false
		}
		root = doc.Content[0]
	}
	if !d.checkTree(root) {
		return false
	}
	if isNull(root) {
		d.fileProblem(root.Line, root.Column, "empty document; want a YAML mapping with at least name and command (or script)")
		return false
	}
	if root.Kind != yaml.MappingNode {
		d.fileProblem(root.Line, root.Column, "the document is %s; want a mapping of fields (name: ..., command: ...)", kindName(root))
		return false
	}
	d.pos[""] = position{root.Line, root.Column}
	decodeFields(d, s, "", root, specFields)
	return true
}

// decodeYAML parses one YAML document into a node tree without expanding
// anything. more is the start of a second document, if there is one.
// A panic inside the YAML library is turned into an error.
func decodeYAML(data []byte) (doc *yaml.Node, more *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			doc, more, err = nil, nil, fmt.Errorf("yaml: parser failed: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	doc = new(yaml.Node)
	if err := dec.Decode(doc); err != nil {
		return nil, nil, err
	}
	next := new(yaml.Node)
	switch err := dec.Decode(next); {
	case errors.Is(err, io.EOF):
		return doc, nil, nil
	case err != nil:
		// the second document does not even parse; it is still a second one
		line, _ := yamlErrorPos(err)
		return doc, &yaml.Node{Line: line}, nil
	default:
		return doc, next, nil
	}
}

// checkTree walks the whole tree once, without following aliases, and refuses
// anchors, aliases and custom tags, and trees of more than MaxYAMLNodes nodes.
// Each kind of refusal is reported once, at its first place, with a count.
func (d *decoder) checkTree(root *yaml.Node) bool {
	var firstAlias, firstAnchor *yaml.Node
	aliases, anchors, tags := 0, 0, 0
	count := 0
	stack := []*yaml.Node{root}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		count++
		if count > MaxYAMLNodes {
			d.fileProblem(n.Line, n.Column, "too many YAML values (more than %d); a job file is small", MaxYAMLNodes)
			return false
		}
		if n.Kind == yaml.AliasNode {
			if aliases++; firstAlias == nil {
				firstAlias = n
			}
			continue // never follow
		}
		if n.Anchor != "" {
			if anchors++; firstAnchor == nil {
				firstAnchor = n
			}
		}
		if n.Style&yaml.TaggedStyle != 0 && !plainTags[n.Tag] {
			if tags++; tags <= 3 {
				d.fileProblem(n.Line, n.Column, "YAML tag %s is not supported; only !!str, !!int, !!float, !!bool, !!null, !!map, !!seq", short(n.Tag))
			}
		}
		for i := len(n.Content) - 1; i >= 0; i-- {
			stack = append(stack, n.Content[i])
		}
	}
	more := func(n int) string {
		if n <= 1 {
			return ""
		}
		return fmt.Sprintf(" (and %d more)", n-1)
	}
	if firstAnchor != nil {
		d.fileProblem(firstAnchor.Line, firstAnchor.Column, "YAML anchor &%s%s: anchors are not supported in job files; write the value out", short(firstAnchor.Anchor), more(anchors))
	}
	if firstAlias != nil {
		d.fileProblem(firstAlias.Line, firstAlias.Column, "YAML alias *%s%s: aliases are not supported in job files; write the value out", short(firstAlias.Value), more(aliases))
	}
	return aliases == 0 && anchors == 0 && tags == 0
}

// plainTags are the explicit YAML tags a job file may use.
var plainTags = map[string]bool{
	"!!str": true, "!!int": true, "!!float": true, "!!bool": true,
	"!!null": true, "!!map": true, "!!seq": true,
	"tag:yaml.org,2002:str": true, "tag:yaml.org,2002:int": true, "tag:yaml.org,2002:float": true,
	"tag:yaml.org,2002:bool": true, "tag:yaml.org,2002:null": true, "tag:yaml.org,2002:map": true,
	"tag:yaml.org,2002:seq": true,
}

// yamlErrorPos splits "yaml: line 3: did not find expected key" into 3 and
// the message; line is 0 when the error names none.
func yamlErrorPos(err error) (line int, msg string) {
	msg = err.Error()
	msg = strings.TrimPrefix(msg, "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		num, tail, ok := strings.Cut(rest, ": ")
		if n, err := strconv.Atoi(num); ok && err == nil {
			return n, tail
		}
	}
	return 0, msg
}

// offsetPos converts a byte offset into a 1-based line and column (in bytes).
func offsetPos(data []byte, off int) (line, col int) {
	line = 1 + bytes.Count(data[:off], []byte{'\n'})
	col = off - bytes.LastIndexByte(data[:off], '\n')
	return line, col
}

// firstInvalidUTF8 returns the offset of the first byte that is not part of
// a valid UTF-8 sequence.
func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return 0
}

// isNull reports whether n is an explicit or implicit YAML null ("", ~, null).
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// kindName describes a node's kind for messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!bool":
			return "a boolean " + quote(n.Value)
		case "!!int", "!!float":
			return "a number " + short(n.Value)
		}
		return "a string " + quote(n.Value)
	}
	return "an unknown YAML node"
}
