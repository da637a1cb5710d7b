package jobspec

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong with a job file: where it is, which field, the
// offending value and what would be accepted. hpcsub prints Problems as they
// are; the server returns them to the client verbatim. Line and Col are
// 1-based and zero when unknown (for a Spec built in Go rather than parsed,
// or for a required field that is absent, whose position is its parent's).
type Problem struct {
	File  string // file name as given to Parse or Load; may be empty
	Line  int    // 1-based line, 0 if unknown
	Col   int    // 1-based column, 0 if unknown
	Path  string // field path such as "resources.gpus" or "stageIn[2].from"; empty for whole-file problems
	Value string // the offending value as written, possibly truncated; empty if none
	Msg   string // what is wrong and what is allowed; includes the value
}

// Error formats the problem as "FILE:LINE:COL: PATH: MESSAGE", the format of
// compilers and linters that editors already jump to. Parts that are unknown
// are left out: no file gives "LINE:COL: ...", no position gives
// "FILE: PATH: MESSAGE", no path gives "FILE:LINE:COL: MESSAGE".
func (p Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		if b.Len() > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%d", p.Line)
		if p.Col > 0 {
			fmt.Fprintf(&b, ":%d", p.Col)
		}
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every problem found in one job file, in file order. It is the
// error type returned by Parse, Validate, Load and Canonical; callers that
// want the individual problems use errors.As(err, &jobspec.Problems{}).
// A nil or empty Problems is never returned as a non-nil error.
type Problems []Problem

// Error joins the problems' Error strings with "\n", one per line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// err returns ps as an error, capped at MaxProblems, or nil when there are no
// problems, so that a typed nil never escapes as a non-nil error.
func (ps Problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps.capped()
}

// MaxProblems is the most problems reported for one file; the rest are
// counted in a last Problem ("... and 12 more problems").
const MaxProblems = 30

// capped keeps the first MaxProblems-1 problems and summarizes the rest.
func (ps Problems) capped() Problems {
	if len(ps) <= MaxProblems {
		return ps
	}
	out := ps[: MaxProblems-1 : MaxProblems-1]
	return append(out, Problem{File: ps[0].File, Msg: fmt.Sprintf("... and %d more problems", len(ps)-len(out))})
}

// maxValueLen bounds Problem.Value and the values quoted in messages, so that
// an error about a 1 MiB script does not print the script.
const maxValueLen = 64

// short truncates s for use in a message.
func short(s string) string {
	if len(s) <= maxValueLen {
		return s
	}
	// cut on a rune boundary
	cut := maxValueLen
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// quote quotes a (possibly truncated) value for a message.
func quote(s string) string { return fmt.Sprintf("%q", short(s)) }

// ProblemAt is a Problem at path's value in the job file (line:col when s
// came from Parse): for checks made outside this package with knowledge it
// lacks, such as the master resolving `image` through its catalog. msg
// should name the value and the fix, like the problems of Validate.
func (s *Spec) ProblemAt(path, value, msg string) Problem {
	line, col := s.src.at(path)
	return Problem{File: s.src.filename(), Line: line, Col: col, Path: path, Value: value, Msg: msg}
}
