package main

import (
	"fmt"
	"regexp"
	"strings"
)

// shellScan is what one shell file uses from the system.
type shellScan struct {
	Programs []Use
	// IncludeDirs are the -I directories of the commands (Kind Include,
	// Name the directory as written).
	IncludeDirs []Use
	// Installs are the file:line places that run a package installer.
	Installs []string
}

// scanShell finds the programs a POSIX shell script runs: the first word
// of every simple command, including those in $(...) and after pipes,
// && and ||, past variable assignments, keywords and wrappers (nohup,
// exec, env, command -v, xargs). Builtins, the script's own functions,
// words built from variables and relative paths (the repository's own
// files) are not programs of the system. Unsupported syntax (case
// patterns) shows up as a program that is not installed: a loud failure,
// never a silent pass.
func scanShell(name, src string) shellScan {
	var out shellScan
	funcDef := regexp.MustCompile(`(?m)^\s*([A-Za-z_][A-Za-z0-9_-]*)\s*\(\)`)
	funcs := map[string]bool{}
	for _, m := range funcDef.FindAllStringSubmatch(src, -1) {
		funcs[m[1]] = true
	}
	for _, ll := range logicalLines(src) {
		at := fmt.Sprintf("%s:%d", name, ll.n)
		for _, cmd := range splitCommands(ll.text) {
			out.add(at, cmd, funcs)
		}
	}
	return out
}

// add records the uses of one simple command.
func (s *shellScan) add(at string, words []string, funcs map[string]bool) {
	for i := 0; i+1 < len(words); i++ {
		if words[i] == "-I" {
			s.IncludeDirs = append(s.IncludeDirs, Use{Kind: Include, Name: words[i+1], At: at})
		} else if d, ok := strings.CutPrefix(words[i], "-I"); ok && d != "" {
			s.IncludeDirs = append(s.IncludeDirs, Use{Kind: Include, Name: d, At: at})
		}
	}
	i := 0
	for i < len(words) {
		w := words[i]
		switch {
		case isAssignment(w), isKeyword(w):
			i++
			continue
		case w == "for" || w == "case":
			return // loop variables and patterns are no commands
		case w == "nohup" || w == "exec" || w == "env" || w == "sudo":
			i++
			continue
		case w == "command" && i+2 < len(words) && words[i+1] == "-v":
			s.program(at, words[i+2], funcs)
			return
		case w == "command":
			i++
			continue
		}
		break
	}
	if i >= len(words) {
		return
	}
	prog := words[i]
	s.program(at, prog, funcs)
	args := words[i+1:]
	if prog == "xargs" {
		for _, a := range args {
			if !strings.HasPrefix(a, "-") {
				s.program(at, a, funcs)
				break
			}
		}
	}
	if installerCommand(prog, args) {
		s.Installs = append(s.Installs, at)
	}
}

// program records w as a program use unless it is not the system's.
func (s *shellScan) program(at, w string, funcs map[string]bool) {
	switch {
	case w == "" || strings.ContainsAny(w, "$`*?=") || funcs[w] || isBuiltin(w) || isKeyword(w):
		return
	case strings.HasPrefix(w, "/"):
		s.Programs = append(s.Programs, Use{Kind: File, Name: w, At: at})
	case strings.Contains(w, "/"):
		return // the repository's own scripts and binaries
	default:
		s.Programs = append(s.Programs, Use{Kind: Program, Name: w, At: at})
	}
}

// installerCommand reports whether prog args installs packages.
func installerCommand(prog string, args []string) bool {
	switch prog {
	case "apt-get", "apt", "aptitude":
		for _, a := range args {
			if a == "install" {
				return true
			}
		}
	case "dpkg":
		for _, a := range args {
			if a == "-i" || a == "--install" {
				return true
			}
		}
	}
	return false
}

func isAssignment(w string) bool {
	name, _, ok := strings.Cut(w, "=")
	if !ok || name == "" {
		return false
	}
	for i, c := range name {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func isKeyword(w string) bool {
	switch w {
	case "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}", "time", "in", "esac", ";;", "[[", "]]":
		return true
	}
	return false
}

// isBuiltin is true for the builtins of bash and dash.
func isBuiltin(w string) bool {
	switch w {
	case ".", ":", "[", "alias", "bg", "bind", "break", "builtin", "caller", "cd", "command", "compgen",
		"complete", "continue", "declare", "dirs", "disown", "echo", "enable", "eval", "exec", "exit",
		"export", "false", "fc", "fg", "getopts", "hash", "help", "history", "jobs", "kill", "let",
		"local", "logout", "mapfile", "popd", "printf", "pushd", "pwd", "read", "readarray", "readonly",
		"return", "set", "shift", "shopt", "source", "test", "times", "trap", "true", "type", "typeset",
		"ulimit", "umask", "unalias", "unset", "wait":
		return true
	}
	return false
}

type logicalLine struct {
	n    int
	text string
}

// logicalLines joins backslash-continued lines; n is the first line's number.
func logicalLines(src string) []logicalLine {
	var out []logicalLine
	lines := strings.Split(src, "\n")
	for i := 0; i < len(lines); i++ {
		start, text := i+1, lines[i]
		for strings.HasSuffix(text, "\\") && i+1 < len(lines) {
			i++
			text = strings.TrimSuffix(text, "\\") + " " + lines[i]
		}
		out = append(out, logicalLine{n: start, text: text})
	}
	return out
}

// splitCommands splits one logical line into simple commands, each a list
// of words with quotes removed. Command substitutions, in or out of double
// quotes, become commands of their own; their text in the outer word is
// replaced by "$" so that the outer word counts as built from a variable.
// Redirections and their targets are dropped; a # that starts a word ends
// the line.
func splitCommands(line string) [][]string {
	type frame struct {
		words    []string
		word     strings.Builder
		inWord   bool
		inDouble bool
		backtick bool
	}
	var done [][]string
	stack := []*frame{{}}
	skipTarget := false
	endWord := func(f *frame) {
		if !f.inWord {
			return
		}
		if skipTarget {
			skipTarget = false
		} else {
			f.words = append(f.words, f.word.String())
		}
		f.word.Reset()
		f.inWord = false
	}
	endCommand := func(f *frame) {
		endWord(f)
		if len(f.words) > 0 {
			done = append(done, f.words)
		}
		f.words = nil
	}
	rs := []rune(line)
	for i := 0; i < len(rs); i++ {
		f := stack[len(stack)-1]
		c := rs[i]
		next := rune(0)
		if i+1 < len(rs) {
			next = rs[i+1]
		}
		switch {
		case c == '\\' && next != 0:
			f.word.WriteRune(next)
			f.inWord = true
			i++
		case c == '\'' && !f.inDouble:
			j := i + 1
			for j < len(rs) && rs[j] != '\'' {
				j++
			}
			f.word.WriteString(string(rs[i+1 : min(j, len(rs))]))
			f.inWord = true
			i = j
		case c == '"':
			f.inDouble = !f.inDouble
			f.inWord = true
		case (c == '$' && next == '(' && i+2 < len(rs) && rs[i+2] == '(') || (c == '(' && next == '(' && !f.inWord):
			// arithmetic, $(( ... )) or (( ... )): no commands inside
			depth, j := 0, i
			if c == '$' {
				j = i + 1
			}
			for ; j < len(rs); j++ {
				if rs[j] == '(' {
					depth++
				} else if rs[j] == ')' {
					if depth--; depth == 0 {
						break
					}
				}
			}
			f.word.WriteRune('$')
			f.inWord = true
			i = j
		case c == '$' && next == '(':
			f.word.WriteRune('$')
			f.inWord = true
			stack = append(stack, &frame{})
			i++
		case c == '`':
			if f.backtick {
				endCommand(f)
				stack = stack[:len(stack)-1]
			} else {
				f.word.WriteRune('$')
				f.inWord = true
				stack = append(stack, &frame{backtick: true})
			}
		case c == ')' && !f.inDouble && len(stack) > 1 && !f.backtick:
			endCommand(f)
			stack = stack[:len(stack)-1]
		case f.inDouble:
			f.word.WriteRune(c)
		case c == '#' && !f.inWord:
			for len(stack) > 0 {
				endCommand(stack[len(stack)-1])
				stack = stack[:len(stack)-1]
			}
			return done
		case c == ' ' || c == '\t':
			endWord(f)
		case c == ';' || c == '|' || c == '&' || c == '(' || c == ')':
			endCommand(f)
		case c == '>' || c == '<':
			if f.inWord && isDigits(f.word.String()) {
				f.word.Reset() // a file descriptor: 2>/dev/null
				f.inWord = false
			}
			endWord(f)
			if next == '&' || next == '>' {
				i++
			}
			skipTarget = true
		default:
			f.word.WriteRune(c)
			f.inWord = true
		}
	}
	for len(stack) > 0 {
		endCommand(stack[len(stack)-1])
		stack = stack[:len(stack)-1]
	}
	return done
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// makeRecipes returns the recipe lines of a Makefile as shell text: the
// leading tab and @/- prefixes dropped, $(GO) read as go and $$ as $.
// Other make variables become ${VAR}: words built from variables.
func makeRecipes(src string) string {
	makeVar := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	var b strings.Builder
	for _, line := range strings.Split(src, "\n") {
		if !strings.HasPrefix(line, "\t") {
			b.WriteString("\n") // keep line numbers
			continue
		}
		line = strings.TrimLeft(strings.TrimPrefix(line, "\t"), "@-")
		line = strings.ReplaceAll(line, "$$", "\x00")
		line = strings.ReplaceAll(line, "$(GO)", "go")
		line = makeVar.ReplaceAllString(line, "$${$1}")
		line = strings.ReplaceAll(line, "\x00", "$")
		b.WriteString(line)
		b.WriteString("\n")
	}
	return b.String()
}
