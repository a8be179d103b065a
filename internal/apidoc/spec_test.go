package apidoc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Paths relative to this package's directory, where `go test` runs.
const (
	repoRoot  = "../.."
	specPath  = repoRoot + "/docs/openapi.yaml"
	guidePath = repoRoot + "/docs/api.md"
)

// The two daemons, as the spec's servers name them.
const (
	agentDaemon    = "agent"
	platformDaemon = "platform"
)

// serverDaemons maps each server URL of the spec to the daemon answering there; an
// operation is served by the daemons of its servers.
var serverDaemons = map[string]string{
	"http://127.0.0.1:7070": agentDaemon,
	"http://127.0.0.1:8080": platformDaemon,
}

// httpMethods are the operation keys of an OpenAPI path item.
var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// spec is docs/openapi.yaml as JSON data.
type spec struct {
	root map[string]any
}

// operation is one method of one path of the spec.
type operation struct {
	Method   string // upper case
	Path     string
	Node     map[string]any
	PathItem map[string]any
	Daemons  []string
	// ServerErr says what is wrong with the operation's servers, if anything.
	ServerErr string
}

func (o operation) String() string { return o.Method + " " + o.Path }

func (o operation) ID() string { s, _ := o.Node["operationId"].(string); return s }

// servedBy reports whether daemon answers the operation.
func (o operation) servedBy(daemon string) bool { return slices.Contains(o.Daemons, daemon) }

// loadSpec reads and parses the spec once per test.
func loadSpec(t testing.TB) *spec {
	t.Helper()
	raw, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatalf("read the API spec: %v", err)
	}
	var doc any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("parse %s: %v", specPath, err)
	}
	// The spec is JSON data written as YAML. A round trip through encoding/json gives it
	// exactly the types a JSON answer decodes to, so one validator serves both; it also
	// refuses what JSON cannot hold (a mapping with non-string keys).
	j, err := json.Marshal(doc)
	if err != nil {
		t.Fatalf("%s is not JSON-compatible data: %v", specPath, err)
	}
	v, err := decodeJSON(j)
	if err != nil {
		t.Fatalf("re-decode %s: %v", specPath, err)
	}
	root, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s is not a mapping", specPath)
	}
	return &spec{root: root}
}

// decodeJSON decodes one JSON value, keeping numbers exact.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data after the JSON value")
	}
	return v, nil
}

// resolve follows a local JSON pointer such as "#/components/schemas/Money".
func (s *spec) resolve(ref string) (any, error) {
	if !strings.HasPrefix(ref, "#/") {
		return nil, fmt.Errorf("$ref %q is not a local reference (#/...)", ref)
	}
	var cur any = s.root
	for _, part := range strings.Split(ref[2:], "/") {
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case map[string]any:
			next, ok := c[part]
			if !ok {
				return nil, fmt.Errorf("$ref %q: no %q", ref, part)
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(c) {
				return nil, fmt.Errorf("$ref %q: no index %q", ref, part)
			}
			cur = c[i]
		default:
			return nil, fmt.Errorf("$ref %q: %q is inside a scalar", ref, part)
		}
	}
	return cur, nil
}

// deref returns node with its $ref chain followed.
func (s *spec) deref(node any) (map[string]any, error) {
	for range 32 {
		m, ok := node.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("expected a mapping, found %T", node)
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return m, nil
		}
		next, err := s.resolve(ref)
		if err != nil {
			return nil, err
		}
		node = next
	}
	return nil, fmt.Errorf("$ref chain longer than 32 (a cycle?)")
}

// operations lists every operation, by path then method.
func (s *spec) operations() []operation {
	paths, _ := s.root["paths"].(map[string]any)
	keys := make([]string, 0, len(paths))
	for p := range paths {
		keys = append(keys, p)
	}
	sort.Strings(keys)
	var ops []operation
	for _, p := range keys {
		item, _ := paths[p].(map[string]any)
		for _, m := range httpMethods {
			node, ok := item[m].(map[string]any)
			if !ok {
				continue
			}
			op := operation{Method: strings.ToUpper(m), Path: p, Node: node, PathItem: item}
			servers, _ := node["servers"].([]any)
			if servers == nil {
				servers, _ = item["servers"].([]any)
			}
			if servers == nil {
				servers, _ = s.root["servers"].([]any)
			}
			for _, sv := range servers {
				m, _ := sv.(map[string]any)
				url, _ := m["url"].(string)
				d, ok := serverDaemons[url]
				if !ok {
					op.ServerErr = fmt.Sprintf("server %q is neither daemon's (%v)", url, serverDaemons)
					continue
				}
				op.Daemons = append(op.Daemons, d)
			}
			if len(op.Daemons) == 0 && op.ServerErr == "" {
				op.ServerErr = "no server answers it"
			}
			ops = append(ops, op)
		}
	}
	return ops
}

// operationByID returns the operation with that operationId.
func (s *spec) operationByID(t testing.TB, id string) operation {
	t.Helper()
	for _, op := range s.operations() {
		if op.ID() == id {
			return op
		}
	}
	t.Fatalf("the spec has no operation %q", id)
	return operation{}
}

// requestExample returns the JSON request example of an operation: the named one of
// `examples`, or `example` when name is "".
func (s *spec) requestExample(t testing.TB, opID, name string) any {
	t.Helper()
	op := s.operationByID(t, opID)
	body, err := s.deref(op.Node["requestBody"])
	if err != nil {
		t.Fatalf("%s: request body: %v", opID, err)
	}
	content, _ := body["content"].(map[string]any)
	media, _ := content["application/json"].(map[string]any)
	if name == "" {
		if ex, ok := media["example"]; ok {
			return ex
		}
		t.Fatalf("%s: no JSON request example", opID)
	}
	examples, _ := media["examples"].(map[string]any)
	ex, err := s.deref(examples[name])
	if err != nil {
		t.Fatalf("%s: request example %q: %v", opID, name, err)
	}
	return ex["value"]
}

// textRequestExample returns the example of a non-JSON request body.
func (s *spec) textRequestExample(t testing.TB, opID, mediaType string) string {
	t.Helper()
	op := s.operationByID(t, opID)
	body, err := s.deref(op.Node["requestBody"])
	if err != nil {
		t.Fatalf("%s: request body: %v", opID, err)
	}
	content, _ := body["content"].(map[string]any)
	media, _ := content[mediaType].(map[string]any)
	ex, ok := media["example"].(string)
	if !ok {
		t.Fatalf("%s: no %s request example", opID, mediaType)
	}
	return ex
}

// templateRegexp turns a path template into a regexp for concrete paths.
func templateRegexp(template string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for _, seg := range strings.Split(template, "/")[1:] {
		b.WriteString("/")
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			b.WriteString("[^/]+")
		} else {
			b.WriteString(regexp.QuoteMeta(seg))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

// pathParams returns the {names} of a path template, in order.
func pathParams(template string) []string {
	var out []string
	for _, seg := range strings.Split(template, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			out = append(out, seg[1:len(seg)-1])
		}
	}
	return out
}

// schemaChecker validates JSON values against the subset of JSON Schema 2020-12 the spec
// uses. It is strict where documentation drifts: a property that a schema does not
// declare is an error unless the schema allows extra properties explicitly, and null is
// an error wherever the type does not include "null" (lists are never null).
type schemaChecker struct {
	s *spec
}

// validate returns every way v breaks schema, as "where: what" lines.
func (c schemaChecker) validate(schema any, v any, at string) []string {
	var errs []string
	c.check(schema, v, at, false, &errs, 0)
	return errs
}

// check validates v against schema. partial is set for the members of an allOf, whose
// parent checks undeclared properties against the union of the members' declarations.
func (c schemaChecker) check(schema any, v any, at string, partial bool, errs *[]string, depth int) {
	add := func(format string, args ...any) {
		*errs = append(*errs, at+": "+fmt.Sprintf(format, args...))
	}
	if depth > 64 {
		add("schema nesting deeper than 64 (a $ref cycle?)")
		return
	}
	if b, ok := schema.(bool); ok {
		if !b {
			add("no value is allowed here")
		}
		return
	}
	node, ok := schema.(map[string]any)
	if !ok {
		add("schema is %T, not a mapping", schema)
		return
	}
	if ref, ok := node["$ref"].(string); ok {
		target, err := c.s.resolve(ref)
		if err != nil {
			add("%v", err)
			return
		}
		c.check(target, v, at, partial, errs, depth+1)
		return
	}
	for _, sub := range asList(node["allOf"]) {
		c.check(sub, v, at, true, errs, depth+1)
	}
	if branches := asList(node["oneOf"]); len(branches) > 0 {
		matched := 0
		var why []string
		for i, sub := range branches {
			var e []string
			c.check(sub, v, at, false, &e, depth+1)
			if len(e) == 0 {
				matched++
			} else {
				why = append(why, fmt.Sprintf("branch %d: %s", i, strings.Join(e, "; ")))
			}
		}
		if matched != 1 {
			add("matches %d branches of oneOf, want exactly 1 (%s)", matched, strings.Join(why, " | "))
		}
	}
	if types := asStrings(node["type"]); len(types) > 0 && !typeMatches(types, v) {
		add("is %s, want %s", jsonType(v), strings.Join(types, " or "))
		return
	}
	if want, ok := node["const"]; ok && !sameJSON(want, v) {
		add("is %v, want the constant %v", v, want)
	}
	if enum := asList(node["enum"]); enum != nil && !slices.ContainsFunc(enum, func(e any) bool { return sameJSON(e, v) }) {
		add("is %v, not one of %v", v, enum)
	}
	switch val := v.(type) {
	case string:
		n := utf8.RuneCountInString(val)
		if minLen, ok := asInt(node["minLength"]); ok && n < minLen {
			add("is shorter than %d characters", minLen)
		}
		if maxLen, ok := asInt(node["maxLength"]); ok && n > maxLen {
			add("is longer than %d characters", maxLen)
		}
		if p, ok := node["pattern"].(string); ok {
			re, err := regexp.Compile(p)
			if err != nil {
				add("pattern %q does not compile: %v", p, err)
			} else if !re.MatchString(val) {
				add("%q does not match %s", val, p)
			}
		}
		if node["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, val); err != nil {
				add("%q is not an RFC 3339 time", val)
			}
		}
	case json.Number:
		f, err := val.Float64()
		if err != nil {
			add("number %s: %v", val, err)
			break
		}
		if m, ok := asFloat(node["minimum"]); ok && f < m {
			add("%s is below the minimum %v", val, m)
		}
		if m, ok := asFloat(node["maximum"]); ok && f > m {
			add("%s is above the maximum %v", val, m)
		}
		if m, ok := asFloat(node["exclusiveMinimum"]); ok && f <= m {
			add("%s is not above %v", val, m)
		}
	case []any:
		if m, ok := asInt(node["maxItems"]); ok && len(val) > m {
			add("has %d items, more than %d", len(val), m)
		}
		if items, ok := node["items"]; ok {
			for i, item := range val {
				c.check(items, item, fmt.Sprintf("%s[%d]", at, i), false, errs, depth+1)
			}
		}
	case map[string]any:
		for _, r := range asStrings(node["required"]) {
			if _, ok := val[r]; !ok {
				add("lacks the required property %q", r)
			}
		}
		props, _ := node["properties"].(map[string]any)
		for name, sub := range props {
			if pv, ok := val[name]; ok {
				c.check(sub, pv, at+"."+name, false, errs, depth+1)
			}
		}
		if partial || !c.declaresProperties(node) {
			break
		}
		switch extra := node["additionalProperties"].(type) {
		case bool:
			if extra {
				break
			}
			c.undeclared(node, val, add)
		case map[string]any:
			declared := c.declared(node, 0)
			for name, pv := range val {
				if !declared[name] {
					c.check(extra, pv, at+"."+name, false, errs, depth+1)
				}
			}
		default:
			c.undeclared(node, val, add)
		}
	}
}

func (c schemaChecker) undeclared(node map[string]any, val map[string]any, add func(string, ...any)) {
	declared := c.declared(node, 0)
	var extra []string
	for name := range val {
		if !declared[name] {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		add("has properties the spec does not document: %s", strings.Join(extra, ", "))
	}
}

// declaresProperties reports whether node describes an object's properties itself (as
// opposed to a bare oneOf branch such as {required: [codes]}).
func (c schemaChecker) declaresProperties(node map[string]any) bool {
	_, props := node["properties"]
	_, all := node["allOf"]
	return props || all
}

// declared is the set of properties node and its allOf members declare.
func (c schemaChecker) declared(node map[string]any, depth int) map[string]bool {
	out := map[string]bool{}
	if depth > 32 {
		return out
	}
	props, _ := node["properties"].(map[string]any)
	for name := range props {
		out[name] = true
	}
	for _, sub := range asList(node["allOf"]) {
		m, err := c.s.deref(sub)
		if err != nil {
			continue
		}
		for name := range c.declared(m, depth+1) {
			out[name] = true
		}
	}
	return out
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func asStrings(v any) []string {
	switch t := v.(type) {
	case string:
		return []string{t}
	case []any:
		out := make([]string, 0, len(t))
		for _, e := range t {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func asInt(v any) (int, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := n.Int64()
	return int(i), err == nil
}

func asFloat(v any) (float64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	return f, err == nil
}

func jsonType(v any) string {
	switch t := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case json.Number:
		if isInteger(t) {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func isInteger(n json.Number) bool {
	_, err := strconv.ParseInt(n.String(), 10, 64)
	if err == nil {
		return true
	}
	_, err = strconv.ParseUint(n.String(), 10, 64)
	return err == nil
}

func typeMatches(types []string, v any) bool {
	got := jsonType(v)
	for _, t := range types {
		if t == got || (t == "number" && got == "integer") {
			return true
		}
	}
	return false
}

func sameJSON(a, b any) bool {
	return jsonType(a) == jsonType(b) && fmt.Sprint(a) == fmt.Sprint(b)
}
