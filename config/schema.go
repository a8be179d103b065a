package config

import (
	"encoding"
	"reflect"
	"strings"
)

// leaf is one settable key of a config file, found by reflection on the toml tags so
// that env overrides, type messages and the docs tests cover every key without a list
// to keep in sync by hand.
type leaf struct {
	key   string // dotted, e.g. "offline.max_catalog_age"
	index []int  // reflect field index path from the root struct
	typ   reflect.Type
}

var textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()

// isLeafType reports whether values of t are written as one TOML value rather than a
// table: every non-struct, and structs such as Duration that read themselves from text.
func isLeafType(t reflect.Type) bool {
	return t.Kind() != reflect.Struct || reflect.PointerTo(t).Implements(textUnmarshalerType)
}

// leavesOf lists the keys of the config struct type t in declaration order.
func leavesOf(t reflect.Type) []leaf {
	var out []leaf
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if !f.IsExported() || name == "" || name == "-" {
				continue
			}
			key := prefix + name
			idx := append(append([]int(nil), index...), i)
			if isLeafType(f.Type) {
				out = append(out, leaf{key: key, index: idx, typ: f.Type})
				continue
			}
			walk(f.Type, key+".", idx)
		}
	}
	walk(t, "", nil)
	return out
}

// Keys lists every dotted key of agent.toml (role "agent") or platform.toml (role
// "platform"), in declaration order; nil for another role. The docs and the example
// files are tested against it.
func Keys(role string) []string {
	var t reflect.Type
	switch role {
	case RoleAgent:
		t = reflect.TypeFor[Agent]()
	case RolePlatform:
		t = reflect.TypeFor[Platform]()
	default:
		return nil
	}
	var out []string
	for _, l := range leavesOf(t) {
		out = append(out, l.key)
	}
	return out
}

// EnvName is the environment variable that overrides a dotted key:
// "platform.enroll_token" → "TILLKEEP_PLATFORM_ENROLL_TOKEN".
func EnvName(key string) string {
	return "TILLKEEP_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// The two roles, as `--role` names them.
const (
	RoleAgent    = "agent"
	RolePlatform = "platform"
)

// describeType says in words what a key of Go type t expects, for error messages.
func describeType(t reflect.Type) string {
	if t == reflect.TypeFor[Duration]() {
		return `a duration string such as "800ms" or "72h"`
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Struct:
		return "a table"
	}
	return t.String()
}
