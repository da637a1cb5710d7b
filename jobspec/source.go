package jobspec

import "strings"

// position is a 1-based line and column in the job file.
type position struct{ line, col int }

// source is where Parse found the values of one Spec: the file name and, for
// every field path that was written (with a non-null value), the position of
// that value. It is built once by Parse and never changed, so copies of a Spec
// may share it.
type source struct {
	file string
	pos  map[string]position
}

// set reports whether the job file gave path a value. It is false for a
// Spec built in Go (nil source).
func (src *source) set(path string) bool {
	if src == nil {
		return false
	}
	_, ok := src.pos[path]
	return ok
}

// at returns the position of path or, when path was not written (a missing
// required field), of its nearest written parent; (0, 0) when there is none.
func (src *source) at(path string) (line, col int) {
	if src == nil {
		return 0, 0
	}
	for {
		if p, ok := src.pos[path]; ok {
			return p.line, p.col
		}
		if path == "" {
			return 0, 0
		}
		path = parentPath(path)
	}
}

// filename returns the file name Parse was given, or "" for a Spec built in Go.
func (src *source) filename() string {
	if src == nil {
		return ""
	}
	return src.file
}

// parentPath strips the last element of a field path: "a.b[2].c" -> "a.b[2]"
// -> "a.b" -> "a" -> "".
func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// under reports whether path is p or lies inside it ("a.b[1]" is under "a.b").
func under(path, p string) bool {
	if p == "" {
		return true
	}
	if !strings.HasPrefix(path, p) {
		return false
	}
	return len(path) == len(p) || path[len(p)] == '.' || path[len(p)] == '['
}

// joinPath appends a field name to a path.
func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
