package apidoc

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/internal/httpapi"
)

// agentDirs and platformDirs hold each daemon's route registrations. The platform's
// catalog feed joins the server from its own files of the platform package
// (Server.HandleTill), so reading the whole package finds it.
var (
	agentDirs    = []string{"agent"}
	platformDirs = []string{"platform"}
)

// TestSpecIsWellFormed checks the structure of the spec: every $ref resolves, every
// operation is complete and unambiguous, and every error answer uses the envelope.
func TestSpecIsWellFormed(t *testing.T) {
	s := loadSpec(t)

	if v, _ := s.root["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Errorf("openapi is %q, want 3.1.x", v)
	}

	// Every $ref anywhere resolves.
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"]; ok {
				r, isStr := ref.(string)
				if !isStr {
					t.Errorf("%s: $ref is %T, not a string", at, ref)
				} else if _, err := s.resolve(r); err != nil {
					t.Errorf("%s: %v", at, err)
				}
			}
			for _, k := range slices.Sorted(maps.Keys(x)) {
				walk(x[k], at+"/"+k)
			}
		case []any:
			for i, e := range x {
				walk(e, fmt.Sprintf("%s/%d", at, i))
			}
		}
	}
	walk(s.root, "#")

	tags := map[string]bool{}
	for _, tg := range asList(s.root["tags"]) {
		m, _ := tg.(map[string]any)
		name, _ := m["name"].(string)
		tags[name] = true
	}
	components, _ := s.root["components"].(map[string]any)
	schemes, _ := components["securitySchemes"].(map[string]any)

	ops := s.operations()
	if len(ops) == 0 {
		t.Fatal("the spec has no operations")
	}
	ids := map[string]string{}
	for _, op := range ops {
		id := op.ID()
		switch {
		case id == "":
			t.Errorf("%s has no operationId", op)
		case ids[id] != "":
			t.Errorf("operationId %q is used by %s and %s", id, ids[id], op)
		default:
			ids[id] = op.String()
		}
		if op.ServerErr != "" {
			t.Errorf("%s: %s", op, op.ServerErr)
		}
		if _, ok := op.Node["summary"].(string); !ok {
			t.Errorf("%s has no summary", op)
		}
		opTags := asStrings(op.Node["tags"])
		if len(opTags) == 0 {
			t.Errorf("%s has no tag", op)
		}
		for _, tg := range opTags {
			if !tags[tg] {
				t.Errorf("%s has tag %q, which the spec does not declare", op, tg)
			}
		}
		// Security is explicit on every operation, so none inherits it by accident.
		sec, ok := op.Node["security"].([]any)
		if !ok {
			t.Errorf("%s does not say its security (use [] for none)", op)
		}
		for _, req := range sec {
			m, _ := req.(map[string]any)
			for name := range m {
				if _, ok := schemes[name]; !ok {
					t.Errorf("%s uses security scheme %q, which is not defined", op, name)
				}
			}
		}
		checkParameters(t, s, op)
		checkResponses(t, s, op)
	}
}

// checkParameters checks that the path parameters are exactly the template's.
func checkParameters(t *testing.T, s *spec, op operation) {
	t.Helper()
	declared := map[string]bool{}
	for _, src := range [][]any{asList(op.PathItem["parameters"]), asList(op.Node["parameters"])} {
		for _, p := range src {
			m, err := s.deref(p)
			if err != nil {
				t.Errorf("%s: parameter: %v", op, err)
				continue
			}
			if m["in"] != "path" {
				continue
			}
			name, _ := m["name"].(string)
			declared[name] = true
			if m["required"] != true {
				t.Errorf("%s: path parameter %q is not required: true", op, name)
			}
		}
	}
	want := pathParams(op.Path)
	for _, name := range want {
		if !declared[name] {
			t.Errorf("%s: path parameter {%s} is not declared", op, name)
		}
	}
	for name := range declared {
		if !slices.Contains(want, name) {
			t.Errorf("%s: declares path parameter %q, which is not in the path", op, name)
		}
	}
}

// checkResponses checks that an operation has described responses with schemas, and that
// its JSON error answers are the error envelope.
func checkResponses(t *testing.T, s *spec, op operation) {
	t.Helper()
	responses, _ := op.Node["responses"].(map[string]any)
	if len(responses) == 0 {
		t.Errorf("%s has no responses", op)
		return
	}
	hasSuccess := false
	for code, r := range responses {
		status, err := strconv.Atoi(code)
		if err != nil || status < 100 || status > 599 {
			t.Errorf("%s: response key %q is not an HTTP status", op, code)
			continue
		}
		hasSuccess = hasSuccess || status < 300
		resp, err := s.deref(r)
		if err != nil {
			t.Errorf("%s %s: %v", op, code, err)
			continue
		}
		if d, _ := resp["description"].(string); d == "" {
			t.Errorf("%s %s has no description", op, code)
		}
		content, _ := resp["content"].(map[string]any)
		for mt, m := range content {
			media, _ := m.(map[string]any)
			if _, ok := media["schema"]; !ok {
				t.Errorf("%s %s %s has no schema", op, code, mt)
			}
			if status >= 400 && mt == "application/json" {
				ref, _ := asMap(media["schema"])["$ref"].(string)
				if ref != "#/components/schemas/Error" {
					t.Errorf("%s %s: a JSON error answer must be the Error envelope, not %v", op, code, media["schema"])
				}
			}
		}
	}
	if !hasSuccess {
		t.Errorf("%s has no 2xx response", op)
	}
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// schemaNode returns components.schemas[name].
func schemaNode(t testing.TB, s *spec, name string) map[string]any {
	t.Helper()
	v, err := s.resolve("#/components/schemas/" + name)
	if err != nil {
		t.Fatalf("%v", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("schema %s is not a mapping", name)
	}
	return m
}

// enumOf returns the enum of a schema and checks that x-enumDescriptions describes
// exactly its values.
func enumOf(t *testing.T, s *spec, name string) []string {
	t.Helper()
	node := schemaNode(t, s, name)
	values := asStrings(node["enum"])
	if len(values) == 0 {
		t.Fatalf("schema %s has no enum", name)
	}
	desc, ok := node["x-enumDescriptions"].(map[string]any)
	if !ok {
		t.Errorf("schema %s has no x-enumDescriptions", name)
	}
	for _, v := range values {
		if d, _ := desc[v].(string); strings.TrimSpace(d) == "" {
			t.Errorf("schema %s: value %q has no description", name, v)
		}
	}
	for k := range desc {
		if !slices.Contains(values, k) {
			t.Errorf("schema %s describes %q, which is not in its enum", name, k)
		}
	}
	return values
}

// sameSet reports the difference between the spec's values and the source's.
func sameSet(t *testing.T, what string, spec []string, source map[string]string) {
	t.Helper()
	have := map[string]bool{}
	for _, v := range spec {
		have[v] = true
	}
	want := map[string]string{} // value -> where
	for where, v := range source {
		want[v] = where
	}
	for _, v := range slices.Sorted(maps.Keys(want)) {
		if !have[v] {
			t.Errorf("%s: %q (%s) is not documented", what, v, want[v])
		}
	}
	for _, v := range spec {
		if _, ok := want[v]; !ok {
			t.Errorf("%s: the spec lists %q, which the source does not define", what, v)
		}
	}
}

// TestCodesMatchSource checks the documented codes, rules and conflict kinds against the
// constants of the source, and each code's status against httpapi.StatusOf.
func TestCodesMatchSource(t *testing.T) {
	s := loadSpec(t)
	src := newSourceReader(t)

	rootCodes := src.typedConsts(".", "Code")
	if len(rootCodes) < 20 {
		t.Fatalf("found only %d Code constants in errors.go; the source reader is broken", len(rootCodes))
	}
	all := map[string]string{}
	maps.Copy(all, rootCodes)
	for name, v := range src.prefixedConsts("sync/wire", "Code") {
		all["wire."+name] = v
	}
	for where, v := range src.literalCodes("agent", "platform", "internal/httpapi") {
		all[where] = v
	}
	codes := enumOf(t, s, "ErrorCode")
	sameSet(t, "ErrorCode", codes, all)

	statuses, ok := schemaNode(t, s, "ErrorCode")["x-http-status"].(map[string]any)
	if !ok {
		t.Fatal("ErrorCode has no x-http-status")
	}
	fromStatusOf := map[string]bool{}
	for _, v := range rootCodes {
		fromStatusOf[v] = true
	}
	for _, code := range codes {
		got, ok := asInt(statuses[code])
		switch {
		case !ok:
			t.Errorf("ErrorCode %q has no x-http-status", code)
		case fromStatusOf[code] && got != httpapi.StatusOf(tillkeep.Code(code)):
			t.Errorf("ErrorCode %q: the spec says %d, httpapi.StatusOf says %d", code, got, httpapi.StatusOf(tillkeep.Code(code)))
		case got < 400 || got > 599:
			t.Errorf("ErrorCode %q: status %d is not an error status", code, got)
		}
	}
	for code := range statuses {
		if !slices.Contains(codes, code) {
			t.Errorf("x-http-status has %q, which is not an ErrorCode", code)
		}
	}

	var refusals []string
	for _, v := range rootCodes {
		if tillkeep.IsRefusal(tillkeep.Code(v)) {
			refusals = append(refusals, v)
		}
	}
	sort.Strings(refusals)
	documented := enumOf(t, s, "RefusalCode")
	if got := slices.Sorted(slices.Values(documented)); !slices.Equal(got, refusals) {
		t.Errorf("RefusalCode is %v; tillkeep.IsRefusal holds for %v", got, refusals)
	}

	sameSet(t, "RuleName", enumOf(t, s, "RuleName"), src.prefixedConsts(".", "Rule"))
	sameSet(t, "ConflictKind", enumOf(t, s, "ConflictKind"), src.prefixedConsts("platform", "Kind"))
}

// TestGuideMatchesSpec checks that docs/api.md links the spec and that its code table
// says what the spec says.
func TestGuideMatchesSpec(t *testing.T) {
	s := loadSpec(t)
	raw, err := os.ReadFile(guidePath)
	if err != nil {
		t.Fatalf("read the API guide: %v", err)
	}
	guide := string(raw)
	if !strings.Contains(guide, "(openapi.yaml)") {
		t.Errorf("%s does not link openapi.yaml", guidePath)
	}
	statuses, _ := schemaNode(t, s, "ErrorCode")["x-http-status"].(map[string]any)
	row := regexp.MustCompile("^\\| `([a-z_]+)` \\| ([0-9]{3}) \\|")
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(guide))
	for sc.Scan() {
		m := row.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		seen[m[1]] = true
		want, ok := asInt(statuses[m[1]])
		if !ok {
			t.Errorf("%s lists code %q, which the spec does not define", guidePath, m[1])
		} else if strconv.Itoa(want) != m[2] {
			t.Errorf("%s says %s is %s; the spec says %d", guidePath, m[1], m[2], want)
		}
	}
	for code := range statuses {
		if !seen[code] {
			t.Errorf("%s does not list code %q in its code table", guidePath, code)
		}
	}
}

// TestExamplesMatchSchemas validates every example of the spec against its schema, so
// that an example never shows a shape the API does not have.
func TestExamplesMatchSchemas(t *testing.T) {
	s := loadSpec(t)
	c := schemaChecker{s: s}
	checked := 0
	check := func(schema, example any, at string) {
		checked++
		for _, e := range c.validate(schema, example, at) {
			t.Error(e)
		}
	}
	checkMedia := func(media map[string]any, mt, at string) {
		schema, ok := media["schema"]
		if !ok {
			return
		}
		var examples []any
		var names []string
		if ex, ok := media["example"]; ok {
			examples, names = append(examples, ex), append(names, "example")
		}
		exs, _ := media["examples"].(map[string]any)
		for _, name := range slices.Sorted(maps.Keys(exs)) {
			ex, err := s.deref(exs[name])
			if err != nil {
				t.Errorf("%s examples.%s: %v", at, name, err)
				continue
			}
			examples, names = append(examples, ex["value"]), append(names, "examples."+name)
		}
		for i, ex := range examples {
			where := at + " " + names[i]
			switch mt {
			case "application/json":
				check(schema, ex, where)
			case "application/x-ndjson":
				text, _ := ex.(string)
				for n, line := range strings.Split(strings.TrimSpace(text), "\n") {
					v, err := decodeJSON([]byte(line))
					if err != nil {
						t.Errorf("%s line %d is not JSON: %v", where, n+1, err)
						continue
					}
					check(schema, v, fmt.Sprintf("%s line %d", where, n+1))
				}
			}
		}
	}
	for _, op := range s.operations() {
		if rb, ok := op.Node["requestBody"]; ok {
			body, err := s.deref(rb)
			if err == nil {
				content, _ := body["content"].(map[string]any)
				for mt, m := range content {
					checkMedia(asMap(m), mt, fmt.Sprintf("%s request %s", op, mt))
				}
			}
		}
		responses, _ := op.Node["responses"].(map[string]any)
		for code, r := range responses {
			resp, err := s.deref(r)
			if err != nil {
				continue
			}
			content, _ := resp["content"].(map[string]any)
			for mt, m := range content {
				checkMedia(asMap(m), mt, fmt.Sprintf("%s %s %s", op, code, mt))
			}
		}
	}
	schemas, _ := asMap(s.root["components"])["schemas"].(map[string]any)
	for _, name := range slices.Sorted(maps.Keys(schemas)) {
		if ex, ok := asMap(schemas[name])["example"]; ok {
			check(schemas[name], ex, "schema "+name+" example")
		}
	}
	if checked < 20 {
		t.Errorf("only %d examples were checked; the walk is broken", checked)
	}
}

// TestRoutesMatchSource compares, for each daemon, the routes registered in its source
// with the operations the spec says it serves.
func TestRoutesMatchSource(t *testing.T) {
	s := loadSpec(t)
	src := newSourceReader(t)
	for _, d := range []struct {
		daemon string
		dirs   []string
	}{{agentDaemon, agentDirs}, {platformDaemon, platformDirs}} {
		t.Run(d.daemon, func(t *testing.T) {
			registered := map[string]route{}
			for _, r := range src.routes(d.dirs...) {
				registered[r.key()] = r
			}
			if len(registered) < 5 {
				t.Fatalf("found only %d routes in %v; the source reader is broken", len(registered), d.dirs)
			}
			documented := map[string]bool{}
			for _, op := range s.operations() {
				if op.servedBy(d.daemon) {
					documented[op.String()] = true
				}
			}
			for _, k := range slices.Sorted(maps.Keys(registered)) {
				if !documented[k] {
					t.Errorf("%s registers %s (%s), which docs/openapi.yaml does not document", d.daemon, k, registered[k].Where)
				}
			}
			for _, k := range slices.Sorted(maps.Keys(documented)) {
				if _, ok := registered[k]; !ok {
					t.Errorf("docs/openapi.yaml documents %s on the %s, which its source does not register", k, d.daemon)
				}
			}
		})
	}
}

// probeAnswer is what a router answered to a probe.
type probeAnswer struct {
	status  int
	json    bool
	code    string
	message string
	// pattern is the ServeMux pattern that took the request, as the mux records it on
	// the request ("" when no pattern matched).
	pattern string
}

// probe sends one bodiless request straight to a router.
func probe(h http.Handler, method, path, token string) probeAnswer {
	req := httptest.NewRequest(method, path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	a := probeAnswer{status: rec.Code, pattern: req.Pattern}
	if mt, _, _ := mime.ParseMediaType(rec.Header().Get("Content-Type")); mt == "application/json" {
		var body httpapi.ErrorBody
		if json.Unmarshal(rec.Body.Bytes(), &body) == nil {
			a.json, a.code, a.message = true, body.Error.Code, body.Error.Message
		}
	}
	return a
}

// noSuchRoute reports whether an answer is a router's fallback for a request no route
// takes, as opposed to a route's own answer (which may well be a 404 for a missing
// resource). The agent answers unmatched paths through its catch-all "/" handler
// (not_found, "no such endpoint: ...") and other methods on a known path with a JSON
// 405; the platform's mux answers both in plain text.
func (a probeAnswer) noSuchRoute() bool {
	switch {
	case a.status == http.StatusMethodNotAllowed:
		return true
	case a.status != http.StatusNotFound:
		return false
	case !a.json, a.pattern == "/", strings.HasPrefix(a.message, "no such endpoint"):
		return true
	}
	return false
}

// TestRoutesAreServed probes the real routers with every documented operation: each
// must reach its own route, not the router's fallback.
func TestRoutesAreServed(t *testing.T) {
	s := loadSpec(t)
	routers := map[string]struct {
		h     http.Handler
		token string
	}{
		agentDaemon:    {newAgentForProbe(t), posToken},
		platformDaemon: {newPlatformForProbe(t), adminToken},
	}

	// The probe must be able to fail: known-absent routes are recognised as such.
	for _, c := range []struct{ daemon, method, path string }{
		{agentDaemon, "GET", "/v1/apidoc-no-such-route"},
		{agentDaemon, "GET", "/apidoc-no-such-route"},
		{agentDaemon, "DELETE", "/v1/status"},
		{platformDaemon, "GET", "/v1/apidoc-no-such-route"},
		{platformDaemon, "PATCH", "/v1/offers"},
	} {
		r := routers[c.daemon]
		if a := probe(r.h, c.method, c.path, r.token); !a.noSuchRoute() {
			t.Fatalf("probe of the absent route %s %s on the %s answered %d %q (pattern %q) and was taken for a route; the probe cannot tell routes apart",
				c.method, c.path, c.daemon, a.status, a.code, a.pattern)
		}
	}

	for _, op := range s.operations() {
		path := op.Path
		for _, p := range pathParams(op.Path) {
			path = strings.Replace(path, "{"+p+"}", "apidoc-probe-"+p, 1)
		}
		for _, d := range op.Daemons {
			r, ok := routers[d]
			if !ok {
				continue
			}
			a := probe(r.h, op.Method, path, r.token)
			if a.noSuchRoute() {
				t.Errorf("%s is documented on the %s, but %s %s reached no route (answered %d %s %q)",
					op, d, op.Method, path, a.status, a.code, a.message)
				continue
			}
			if a.pattern != "" && a.pattern != op.String() {
				t.Errorf("%s on the %s: %s %s was taken by the route %q, not by %q; the spec's path differs from the registered pattern",
					op, d, op.Method, path, a.pattern, op.String())
			}
		}
	}
}

// discardLogger keeps the daemons quiet in tests; a failing check prints what matters.
func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
