package main

import (
	"bufio"
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// scanGo finds what one Go file uses from the system:
//   - the program of exec.Command, exec.CommandContext and exec.LookPath
//     when it is a string literal, or argv[0] of a slice variable that the
//     same function sets from literals (argv = []string{"xz", "-dc"});
//   - every string literal that is an absolute path under /usr, /bin,
//     /sbin, /lib or /boot (resolve checks those that exist on the host;
//     paths inside guests do not).
func scanGo(name string, src []byte) ([]Use, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", name, err)
	}
	var uses []Use
	at := func(p token.Pos) string { return fmt.Sprintf("%s:%d", name, fset.Position(p).Line) }
	addProgram := func(pos token.Pos, s string) {
		kind := Program
		if strings.HasPrefix(s, "/") {
			kind = File
		}
		uses = append(uses, Use{Kind: kind, Name: s, At: at(pos)})
	}
	for _, decl := range f.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Body == nil {
			continue
		}
		slices := literalSlices(fn.Body)
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			idx, ok := execProgramArg(call)
			if !ok || idx >= len(call.Args) {
				return true
			}
			switch a := call.Args[idx].(type) {
			case *ast.BasicLit:
				if s, ok := stringLit(a); ok {
					addProgram(a.Pos(), s)
				}
			case *ast.IndexExpr:
				v, okV := a.X.(*ast.Ident)
				i, okI := a.Index.(*ast.BasicLit)
				if okV && okI && i.Value == "0" {
					for _, first := range slices[v.Name] {
						addProgram(a.Pos(), first)
					}
				}
			}
			return true
		})
	}
	ast.Inspect(f, func(n ast.Node) bool {
		lit, ok := n.(*ast.BasicLit)
		if !ok {
			return true
		}
		if s, ok := stringLit(lit); ok && systemPathLiteral(s) {
			uses = append(uses, Use{Kind: File, Name: s, At: at(lit.Pos())})
		}
		return true
	})
	return uses, nil
}

// execProgramArg says which argument of an os/exec call names the program.
func execProgramArg(call *ast.CallExpr) (int, bool) {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return 0, false
	}
	if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "exec" {
		return 0, false
	}
	switch sel.Sel.Name {
	case "Command", "LookPath":
		return 0, true
	case "CommandContext":
		return 1, true
	}
	return 0, false
}

// literalSlices maps each variable assigned a []string literal in body to
// the literals' first elements.
func literalSlices(body *ast.BlockStmt) map[string][]string {
	out := map[string][]string{}
	ast.Inspect(body, func(n ast.Node) bool {
		as, ok := n.(*ast.AssignStmt)
		if !ok || len(as.Lhs) != len(as.Rhs) {
			return true
		}
		for i, l := range as.Lhs {
			id, ok := l.(*ast.Ident)
			cl, ok2 := as.Rhs[i].(*ast.CompositeLit)
			if !ok || !ok2 || len(cl.Elts) == 0 {
				continue
			}
			if lit, ok := cl.Elts[0].(*ast.BasicLit); ok {
				if s, ok := stringLit(lit); ok {
					out[id.Name] = append(out[id.Name], s)
				}
			}
		}
		return true
	})
	return out
}

func stringLit(l *ast.BasicLit) (string, bool) {
	if l.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(l.Value)
	return s, err == nil
}

// systemPathLiteral is true for a clean absolute path under the
// directories packages install into.
func systemPathLiteral(s string) bool {
	if strings.ContainsAny(s, " \n\t%:*") || filepath.Clean(s) != s {
		return false
	}
	for _, dir := range []string{"/usr/", "/bin/", "/sbin/", "/lib/", "/lib64/", "/boot/"} {
		if strings.HasPrefix(s, dir) {
			return true
		}
	}
	return false
}

// protoImports returns an Include use for every import of api/*.proto,
// with the include directories the scripts pass to protoc (-I). Imports
// found in a directory of the repository are the project's own and are
// left out.
func protoImports(root string, dirs []Use) ([]Use, error) {
	var abs, repo []string
	for _, d := range dirs {
		if filepath.IsAbs(d.Name) {
			abs = append(abs, d.Name)
		} else if !strings.Contains(d.Name, "$") {
			repo = append(repo, filepath.Join(root, d.Name))
		}
	}
	files, err := filepath.Glob(filepath.Join(root, "api", "*.proto"))
	if err != nil {
		return nil, fmt.Errorf("find api/*.proto: %w", err)
	}
	var uses []Use
	for _, p := range files {
		src, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		rel, _ := filepath.Rel(root, p)
		sc := bufio.NewScanner(bytes.NewReader(src))
	lines:
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			rest, ok := strings.CutPrefix(line, "import ")
			if !ok {
				continue
			}
			rest = strings.TrimPrefix(strings.TrimPrefix(rest, "public "), "weak ")
			imp, err := strconv.Unquote(strings.TrimSuffix(strings.TrimSpace(rest), ";"))
			if err != nil {
				return nil, fmt.Errorf("%s:%d: cannot read the import %q", rel, n, line)
			}
			for _, d := range repo {
				if fileExists(filepath.Join(d, imp)) {
					continue lines
				}
			}
			uses = append(uses, Use{Kind: Include, Name: imp, At: fmt.Sprintf("%s:%d", rel, n), Dirs: abs})
		}
	}
	return uses, nil
}
