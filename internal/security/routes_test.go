package security

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/tillkeep/tillkeep/agent"
	"github.com/tillkeep/tillkeep/internal/httpapi"
	"github.com/tillkeep/tillkeep/sync/wire"
)

// principal is who a route is for, that is which credential opens it.
type principal string

const (
	public principal = "public" // no credential: /healthz, /metrics
	pos    principal = "pos"    // the agent's pos_token, as a bearer token
	admin  principal = "admin"  // the platform's admin_token, as a bearer token
	till   principal = "till"   // a till's own token from enrollment, as a bearer token
	enroll principal = "enroll" // the platform's enroll_token, inside the JSON body
)

// bodyKind says what a route reads from its body.
type bodyKind string

const (
	bodyNone bodyKind = ""
	bodyJSON bodyKind = "json" // decoded by httpapi.DecodeJSON: bounded, 413 beyond the limit
	bodyCSV  bodyKind = "csv"  // streamed CSV rows (bulk upload)
)

// journalLimit is the platform's bound on one journal upload (platform.maxJournalBytes).
const journalLimit = 8 << 20

// route is one registered route of a daemon.
type route struct {
	daemon  string // "agent" or "platform"
	pattern string // exactly as registered: "METHOD /path/{param}"
	who     principal
	body    bodyKind
	// limit is the body limit of a JSON route (0: the daemon's default).
	limit int64
}

// routes lists EVERY route of both daemons. TestRouteTableIsComplete fails when the
// source registers a route missing here (or this lists one no longer registered), so a
// new route cannot skip the authorization and limit tests below.
var routes = []route{
	{"agent", "GET /healthz", public, bodyNone, 0},
	{"agent", "GET /metrics", public, bodyNone, 0},
	{"agent", "GET /v1/status", pos, bodyNone, 0},
	{"agent", "POST /v1/validate", pos, bodyJSON, 0},
	{"agent", "POST /v1/redemptions", pos, bodyJSON, 0},
	{"agent", "POST /v1/redemptions/{id}/reverse", pos, bodyNone, 0},
	{"agent", "GET " + agent.BackupPath, pos, bodyNone, 0},

	{"platform", "GET /healthz", public, bodyNone, 0},
	{"platform", "GET /metrics", public, bodyNone, 0},
	{"platform", "PUT /v1/stores/{id}", admin, bodyJSON, 0},
	{"platform", "GET /v1/stores", admin, bodyNone, 0},
	{"platform", "GET /v1/stores/{id}", admin, bodyNone, 0},
	{"platform", "PUT /v1/customers/{id}", admin, bodyJSON, 0},
	{"platform", "GET /v1/customers/{id}", admin, bodyNone, 0},
	{"platform", "POST /v1/offers", admin, bodyJSON, 0},
	{"platform", "GET /v1/offers", admin, bodyNone, 0},
	{"platform", "GET /v1/offers/{id}", admin, bodyNone, 0},
	{"platform", "POST /v1/offers/{id}/coupons", admin, bodyJSON, 0},
	{"platform", "POST /v1/offers/{id}/coupons/upload", admin, bodyCSV, 0},
	// issue takes a JSON list of customers (Content-Type application/json) or CSV rows.
	{"platform", "POST /v1/offers/{id}/issue", admin, bodyJSON, 0},
	{"platform", "GET /v1/coupons/{code}", admin, bodyNone, 0},
	{"platform", "POST /v1/coupons/revoke", admin, bodyJSON, 0},
	{"platform", "GET /v1/reports/{id}", admin, bodyNone, 0},
	{"platform", "GET /v1/redemptions", admin, bodyNone, 0},
	{"platform", "GET /v1/redemptions/{id}", admin, bodyNone, 0},
	{"platform", "POST /v1/redemptions/{id}/reverse", admin, bodyNone, 0},
	{"platform", "GET /v1/conflicts", admin, bodyNone, 0},
	{"platform", "GET /v1/conflicts/{id}", admin, bodyNone, 0},
	{"platform", "POST /v1/conflicts/{id}/resolve", admin, bodyJSON, 0},
	{"platform", "GET /v1/tills", admin, bodyNone, 0},
	{"platform", "DELETE /v1/tills/{store_id}/{till_id}/enrollment", admin, bodyNone, 0},
	{"platform", "GET /v1/anomalies", admin, bodyNone, 0},
	{"platform", "POST /v1/till/enroll", enroll, bodyJSON, 0},
	{"platform", "POST /v1/till/validate", till, bodyJSON, 0},
	{"platform", "POST /v1/till/redemptions", till, bodyJSON, 0},
	{"platform", "POST /v1/till/redemptions/{id}/reverse", till, bodyNone, 0},
	{"platform", "POST /v1/till/journal", till, bodyJSON, journalLimit},
	{"platform", "GET /v1/till/journal", till, bodyNone, 0},
	{"platform", "GET " + wire.PathSnapshot, till, bodyNone, 0},
	{"platform", "GET " + wire.PathCatalog, till, bodyNone, 0},
}

func (r route) method() string { m, _, _ := strings.Cut(r.pattern, " "); return m }

// path fills the pattern's wildcards with values that name nothing that exists, so a
// request that does get through reaches a 404 and changes no state.
func (r route) path() string {
	_, p, _ := strings.Cut(r.pattern, " ")
	return wildcard.ReplaceAllStringFunc(p, func(w string) string {
		switch w {
		case "{store_id}":
			return "S404"
		case "{till_id}":
			return "T404"
		case "{code}":
			return "NOPE-404"
		default:
			return "nope-404"
		}
	})
}

func (r route) bodyLimit() int64 {
	switch {
	case r.limit > 0:
		return r.limit
	case r.daemon == "agent":
		return agent.MaxRequestBytes
	default:
		return httpapi.MaxBodyBytes
	}
}

func (r route) String() string { return r.daemon + " " + r.pattern }

var wildcard = regexp.MustCompile(`\{[a-z_]+\.{0,3}\}`)

// TestRouteTableIsComplete reads the route registrations out of the daemons' source and
// compares them with the table: a route added (say, the catalog feed) without an entry
// here would otherwise never be tested for authorization.
func TestRouteTableIsComplete(t *testing.T) {
	root := moduleRoot(t)
	found := map[string]registration{}
	for daemon, dir := range map[string]string{"agent": "agent", "platform": "platform"} {
		regs, err := scanRegistrations(root, dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, reg := range regs {
			found[daemon+" "+reg.pattern] = reg
		}
	}
	listed := map[string]route{}
	for _, r := range routes {
		if _, dup := listed[r.String()]; dup {
			t.Errorf("route %s is listed twice", r)
		}
		listed[r.String()] = r
	}
	for key, reg := range found {
		r, ok := listed[key]
		if !ok {
			t.Errorf("%s registers %q (handler %s), which the route table of internal/security does not list: "+
				"add it with its principal and body kind", reg.pos, reg.pattern, reg.handlerNames())
			continue
		}
		if reg.decodesJSON && r.body != bodyJSON {
			t.Errorf("%s: handler of %s decodes a JSON body, but the table says body %q", reg.pos, key, r.body)
		}
		if !reg.decodesJSON && r.body == bodyJSON && len(reg.handlers) > 0 {
			t.Errorf("%s: the table says %s takes a JSON body, but its handler %s never calls DecodeJSON",
				reg.pos, key, reg.handlerNames())
		}
	}
	for key := range listed {
		if _, ok := found[key]; !ok {
			t.Errorf("the route table lists %s, which the source no longer registers", key)
		}
	}
	if len(found) < len(routes)/2 {
		t.Fatalf("found only %d registrations in the source; the scanner is broken", len(found))
	}
}

// registration is one route registration found in the source.
type registration struct {
	pattern     string
	pos         string
	handlers    []string // methods of the package the handler expression names
	decodesJSON bool
}

func (r registration) handlerNames() string {
	if len(r.handlers) == 0 {
		return "(not a method of the package)"
	}
	return strings.Join(r.handlers, ", ")
}

// routePattern is a method-qualified ServeMux pattern: a route. Method-less patterns
// ("/v1/", "/") are the daemons' catch-alls and 405 answers, not routes.
var routePattern = regexp.MustCompile(`^(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS) /\S*$`)

// registrars are the names of the functions that register a route; a call to one whose
// pattern cannot be read is an error rather than a silently skipped route.
var registrars = map[string]bool{
	"Handle": true, "HandleFunc": true, "HandleTill": true, "HandleOps": true,
	"ops": true, "till": true, "route": true,
}

// scanRegistrations parses the non-test Go files of dir and every directory below it,
// and returns each call whose argument is a constant route pattern.
func scanRegistrations(root, dir string) ([]registration, error) {
	var out []registration
	err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if name := d.Name(); name == "testdata" || (strings.HasPrefix(name, ".") && path != filepath.Join(root, dir)) {
			return filepath.SkipDir
		}
		pkg, err := parsePackage(root, path)
		if err != nil {
			return err
		}
		regs, err := pkg.registrations()
		out = append(out, regs...)
		return err
	})
	sort.Slice(out, func(i, j int) bool { return out[i].pattern < out[j].pattern })
	return out, err
}

// goPackage is the parsed non-test files of one directory, enough to evaluate string
// constants, including those of other packages of this module.
type goPackage struct {
	root    string
	fset    *token.FileSet
	files   []*ast.File
	consts  map[string]ast.Expr
	methods map[string]*ast.FuncDecl
	// imported caches the module's packages that constants refer to.
	imported map[string]*goPackage
}

const modulePath = "github.com/tillkeep/tillkeep"

func parsePackage(root, dir string) (*goPackage, error) {
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	p := &goPackage{root: root, fset: fset, consts: map[string]ast.Expr{}, methods: map[string]*ast.FuncDecl{},
		imported: map[string]*goPackage{}}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", filepath.Join(dir, name), err)
		}
		p.files = append(p.files, f)
		for _, decl := range f.Decls {
			switch decl := decl.(type) {
			case *ast.GenDecl:
				if decl.Tok != token.CONST {
					continue
				}
				for _, spec := range decl.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, n := range vs.Names {
						if i < len(vs.Values) {
							p.consts[n.Name] = vs.Values[i]
						}
					}
				}
			case *ast.FuncDecl:
				if decl.Recv != nil {
					p.methods[decl.Name.Name] = decl
				}
			}
		}
	}
	return p, nil
}

// stringConst evaluates e as a string constant of file f's package.
func (p *goPackage) stringConst(f *ast.File, e ast.Expr) (string, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(e.Value)
		return s, err == nil
	case *ast.ParenExpr:
		return p.stringConst(f, e.X)
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return "", false
		}
		x, ok1 := p.stringConst(f, e.X)
		y, ok2 := p.stringConst(f, e.Y)
		return x + y, ok1 && ok2
	case *ast.Ident:
		v, ok := p.consts[e.Name]
		if !ok {
			return "", false
		}
		return p.stringConst(f, v)
	case *ast.SelectorExpr:
		pkgIdent, ok := e.X.(*ast.Ident)
		if !ok {
			return "", false
		}
		other, ok := p.importedPackage(f, pkgIdent.Name)
		if !ok {
			return "", false
		}
		v, ok := other.consts[e.Sel.Name]
		if !ok {
			return "", false
		}
		return other.stringConst(other.files[0], v)
	}
	return "", false
}

// importedPackage parses the module package file f imports under name.
func (p *goPackage) importedPackage(f *ast.File, name string) (*goPackage, bool) {
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		local := filepath.Base(path)
		if imp.Name != nil {
			local = imp.Name.Name
		}
		if local != name || !strings.HasPrefix(path, modulePath+"/") {
			continue
		}
		if cached, ok := p.imported[path]; ok {
			return cached, cached != nil
		}
		other, err := parsePackage(p.root, filepath.Join(p.root, strings.TrimPrefix(path, modulePath+"/")))
		if err != nil || len(other.files) == 0 {
			p.imported[path] = nil
			return nil, false
		}
		p.imported[path] = other
		return other, true
	}
	return nil, false
}

func (p *goPackage) registrations() ([]registration, error) {
	var out []registration
	var errs []string
	for _, f := range p.files {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			for i, arg := range call.Args {
				s, ok := p.stringConst(f, arg)
				if !ok {
					// A pattern built from a literal and something unreadable would be a
					// route this test cannot see; a bare parameter is a wrapper passing
					// its caller's pattern on (HandleTill's own body).
					if i == 0 && registrars[calleeName(call)] && containsStringLit(arg) {
						errs = append(errs, fmt.Sprintf("%s: cannot read the pattern registered by %s(...)",
							p.fset.Position(arg.Pos()), calleeName(call)))
					}
					continue
				}
				if !routePattern.MatchString(s) {
					continue
				}
				reg := registration{pattern: s, pos: p.fset.Position(arg.Pos()).String()}
				for _, h := range call.Args[i+1:] {
					for _, m := range p.methodsNamedIn(h) {
						reg.handlers = append(reg.handlers, m.Name.Name)
						if callsDecodeJSON(m) {
							reg.decodesJSON = true
						}
					}
				}
				out = append(out, reg)
			}
			return true
		})
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("route registrations the test cannot read:\n%s", strings.Join(errs, "\n"))
	}
	return out, nil
}

func containsStringLit(e ast.Expr) bool {
	found := false
	ast.Inspect(e, func(n ast.Node) bool {
		if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			found = true
		}
		return !found
	})
	return found
}

func calleeName(call *ast.CallExpr) string {
	switch fn := call.Fun.(type) {
	case *ast.Ident:
		return fn.Name
	case *ast.SelectorExpr:
		return fn.Sel.Name
	}
	return ""
}

// methodsNamedIn returns the package's methods that expression e refers to
// (s.putStore, s.handle(s.enroll), ...), excluding the plumbing wrappers.
func (p *goPackage) methodsNamedIn(e ast.Expr) []*ast.FuncDecl {
	var out []*ast.FuncDecl
	ast.Inspect(e, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if m, ok := p.methods[sel.Sel.Name]; ok && !plumbing[sel.Sel.Name] {
			out = append(out, m)
		}
		return true
	})
	return out
}

// plumbing are wrapper methods that are not a route's handler.
var plumbing = map[string]bool{"handle": true, "instrument": true, "tillAuth": true, "observe": true}

// jsonDecoders are the functions that decode a bounded JSON body: httpapi.DecodeJSON
// and the platform's wrapper for PUT bodies whose id comes from the path.
var jsonDecoders = map[string]bool{"DecodeJSON": true, "decodeWithPathID": true}

func callsDecodeJSON(fn *ast.FuncDecl) bool {
	found := false
	ast.Inspect(fn, func(n ast.Node) bool {
		if call, ok := n.(*ast.CallExpr); ok && jsonDecoders[calleeName(call)] {
			found = true
		}
		return !found
	})
	return found
}

// moduleRoot is the directory holding go.mod, found upwards from the test's directory.
func moduleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}
