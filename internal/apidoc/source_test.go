package apidoc

import (
	"bufio"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The source side of the drift checks: route registrations and code constants read from
// the Go source with go/ast, so that no package has to export a hook for this test.

// routePattern is a Go ServeMux pattern with a method, such as
// "POST /v1/offers/{id}/coupons". Patterns without a method (the JSON 405 fallbacks
// and the catch-all "/") are not routes.
var routePattern = regexp.MustCompile(`^(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS|CONNECT|TRACE) (/\S*)$`)

// route is a (method, path pattern) registered in the source.
type route struct {
	Method, Path string
	Where        string // file:line of the registration
}

func (r route) key() string { return r.Method + " " + r.Path }

// goPackage is the parsed non-test source of one directory.
type goPackage struct {
	files  []*ast.File
	consts map[string]string // package-level string constants, evaluated
	types  map[string]string // declared type of each typed constant
}

// sourceReader parses packages of this module on demand.
type sourceReader struct {
	t      testing.TB
	module string
	fset   *token.FileSet
	pkgs   map[string]*goPackage
}

func newSourceReader(t testing.TB) *sourceReader {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatalf("open go.mod: %v", err)
	}
	defer f.Close()
	module := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			module = strings.TrimSpace(rest)
			break
		}
	}
	if module == "" {
		t.Fatalf("go.mod names no module")
	}
	return &sourceReader{t: t, module: module, fset: token.NewFileSet(), pkgs: map[string]*goPackage{}}
}

// pkg parses the non-test Go files of dir (relative to the module root).
func (r *sourceReader) pkg(dir string) *goPackage {
	r.t.Helper()
	dir = filepath.Clean(dir)
	if p, ok := r.pkgs[dir]; ok {
		return p
	}
	p := &goPackage{consts: map[string]string{}, types: map[string]string{}}
	r.pkgs[dir] = p // before evaluating, so an import cycle cannot recurse forever
	matches, err := filepath.Glob(filepath.Join(repoRoot, dir, "*.go"))
	if err != nil {
		r.t.Fatalf("list %s: %v", dir, err)
	}
	sort.Strings(matches)
	for _, m := range matches {
		if strings.HasSuffix(m, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(r.fset, m, nil, parser.SkipObjectResolution)
		if err != nil {
			r.t.Fatalf("parse %s: %v", m, err)
		}
		p.files = append(p.files, f)
	}
	// Constants may be defined from each other in any order: evaluate until nothing new.
	for progress := true; progress; {
		progress = false
		for _, f := range p.files {
			for _, decl := range f.Decls {
				gd, ok := decl.(*ast.GenDecl)
				if !ok || gd.Tok != token.CONST {
					continue
				}
				for _, spec := range gd.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, name := range vs.Names {
						if _, done := p.consts[name.Name]; done || i >= len(vs.Values) {
							continue
						}
						if v, ok := r.eval(p, f, vs.Values[i]); ok {
							p.consts[name.Name] = v
							if id, ok := vs.Type.(*ast.Ident); ok {
								p.types[name.Name] = id.Name
							}
							progress = true
						}
					}
				}
			}
		}
	}
	return p
}

// eval evaluates a constant string expression: literals, constants of the package or
// of another package of this module, and concatenations.
func (r *sourceReader) eval(p *goPackage, f *ast.File, e ast.Expr) (string, bool) {
	switch x := e.(type) {
	case *ast.BasicLit:
		if x.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(x.Value)
		return s, err == nil
	case *ast.ParenExpr:
		return r.eval(p, f, x.X)
	case *ast.Ident:
		v, ok := p.consts[x.Name]
		return v, ok
	case *ast.BinaryExpr:
		if x.Op != token.ADD {
			return "", false
		}
		a, ok := r.eval(p, f, x.X)
		if !ok {
			return "", false
		}
		b, ok := r.eval(p, f, x.Y)
		return a + b, ok
	case *ast.SelectorExpr:
		id, ok := x.X.(*ast.Ident)
		if !ok {
			return "", false
		}
		dir, ok := r.importDir(f, id.Name)
		if !ok {
			return "", false
		}
		v, ok := r.pkg(dir).consts[x.Sel.Name]
		return v, ok
	}
	return "", false
}

// importDir returns the module directory of the package f imports under name.
func (r *sourceReader) importDir(f *ast.File, name string) (string, bool) {
	for _, imp := range f.Imports {
		path, err := strconv.Unquote(imp.Path.Value)
		if err != nil {
			continue
		}
		local := filepath.Base(path)
		if imp.Name != nil {
			local = imp.Name.Name
		}
		if local != name {
			continue
		}
		if path == r.module {
			return ".", true
		}
		if rest, ok := strings.CutPrefix(path, r.module+"/"); ok {
			return rest, true
		}
		return "", false
	}
	return "", false
}

// routes returns every method pattern passed as the first argument of a call in the
// packages of dirs: mux.HandleFunc("GET /healthz", ...), s.HandleTill("GET "+wire.X, ...),
// ops("PUT /v1/stores/{id}", ...). It is a grep that understands constants.
func (r *sourceReader) routes(dirs ...string) []route {
	var out []route
	for _, dir := range dirs {
		p := r.pkg(dir)
		for _, f := range p.files {
			ast.Inspect(f, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok || len(call.Args) == 0 {
					return true
				}
				s, ok := r.eval(p, f, call.Args[0])
				if !ok {
					return true
				}
				if m := routePattern.FindStringSubmatch(s); m != nil {
					pos := r.fset.Position(call.Pos())
					out = append(out, route{Method: m[1], Path: m[2],
						Where: fmt.Sprintf("%s:%d", strings.TrimPrefix(pos.Filename, repoRoot+"/"), pos.Line)})
				}
				return true
			})
		}
	}
	return out
}

// typedConsts returns the constants of dir declared with the type typeName.
func (r *sourceReader) typedConsts(dir, typeName string) map[string]string {
	p := r.pkg(dir)
	out := map[string]string{}
	for name, typ := range p.types {
		if typ == typeName {
			out[name] = p.consts[name]
		}
	}
	return out
}

// prefixedConsts returns the string constants of dir whose names start with prefix.
func (r *sourceReader) prefixedConsts(dir, prefix string) map[string]string {
	p := r.pkg(dir)
	out := map[string]string{}
	for name, v := range p.consts {
		if strings.HasPrefix(name, prefix) {
			out[name] = v
		}
	}
	return out
}

// literalCodes returns the string literals written as the Code field of a composite
// literal in dirs, such as httpapi.ErrorDetail{Code: "method_not_allowed"}: error codes
// answered without a constant.
func (r *sourceReader) literalCodes(dirs ...string) map[string]string {
	out := map[string]string{}
	for _, dir := range dirs {
		for _, f := range r.pkg(dir).files {
			ast.Inspect(f, func(n ast.Node) bool {
				kv, ok := n.(*ast.KeyValueExpr)
				if !ok {
					return true
				}
				key, ok := kv.Key.(*ast.Ident)
				if !ok || key.Name != "Code" {
					return true
				}
				lit, ok := kv.Value.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return true
				}
				if s, err := strconv.Unquote(lit.Value); err == nil {
					out[r.fset.Position(lit.Pos()).String()] = s
				}
				return true
			})
		}
	}
	return out
}
