package config

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// keyIndex knows, for each dotted key written in a file, the line it is on and the kind
// of its value. go-toml reports positions only for the errors it finds itself; this
// index gives the same precision to the checks made after decoding.
type keyIndex struct {
	data       []byte
	keys       map[string]keyInfo
	headers    []header // table headers in file order, for the context of syntax errors
	lineStarts []int    // byte offset at which each line starts
}

type keyInfo struct {
	line int
	kind unstable.Kind
}

type header struct {
	name string
	line int
}

// indexKeys reads the keys of data as far as the document parses. A syntax error stops
// it silently: the decoder reports that error with its own position.
func indexKeys(data []byte) (idx keyIndex) {
	idx.data = data
	idx.keys = map[string]keyInfo{}
	idx.lineStarts = []int{0}
	for i, c := range data {
		if c == '\n' {
			idx.lineStarts = append(idx.lineStarts, i+1)
		}
	}
	defer func() {
		// The unstable parser documents panics on malformed trees; a config check must
		// never crash on a file, so whatever was indexed before stays usable.
		_ = recover()
	}()
	var p unstable.Parser
	p.Reset(data)
	var table []string
	for p.NextExpression() {
		expr := p.Expression()
		switch expr.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = keyParts(expr.Key())
			first := expr.Key()
			if first.Next() {
				line := idx.lineOf(int(first.Node().Raw.Offset))
				name := joinKey(table)
				idx.headers = append(idx.headers, header{name: name, line: line})
				idx.add(name, keyInfo{line: line, kind: expr.Kind})
			}
		case unstable.KeyValue:
			idx.addKeyValue(table, expr)
		}
	}
	return idx
}

func (idx *keyIndex) addKeyValue(table []string, kv *unstable.Node) {
	first := kv.Key()
	if !first.Next() {
		return
	}
	line := idx.lineOf(int(first.Node().Raw.Offset))
	full := append(append([]string(nil), table...), keyParts(kv.Key())...)
	// The tables a dotted key creates implicitly ("offline.enabled = false" creates
	// [offline]) are recorded too, so a check on a table finds its line.
	for i := len(table) + 1; i < len(full); i++ {
		idx.add(joinKey(full[:i]), keyInfo{line: line, kind: unstable.Table})
	}
	value := kv.Value()
	idx.add(joinKey(full), keyInfo{line: line, kind: value.Kind})
	if value.Kind == unstable.InlineTable {
		children := value.Children()
		for children.Next() {
			if child := children.Node(); child.Kind == unstable.KeyValue {
				idx.addKeyValue(full, child)
			}
		}
	}
}

// add keeps the first position of a key: a redefinition is an error the decoder
// reports with its own position.
func (idx *keyIndex) add(key string, info keyInfo) {
	if _, ok := idx.keys[key]; !ok {
		idx.keys[key] = info
	}
}

// joinKey writes a key path the way TOML does: parts joined with dots, and a part that
// is not a bare key quoted, so that the key "a.b" is never confused with a.b.
func joinKey(parts []string) string {
	var b strings.Builder
	for i, part := range parts {
		if i > 0 {
			b.WriteByte('.')
		}
		if bareKeyPart.MatchString(part) {
			b.WriteString(part)
		} else {
			b.WriteString(strconv.Quote(part))
		}
	}
	return b.String()
}

var bareKeyPart = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func keyParts(it unstable.Iterator) []string {
	var parts []string
	for it.Next() {
		parts = append(parts, string(it.Node().Data))
	}
	return parts
}

// lineOf turns a byte offset into a 1-based line number.
func (idx *keyIndex) lineOf(offset int) int {
	return sort.Search(len(idx.lineStarts), func(i int) bool { return idx.lineStarts[i] > offset })
}

// line is the line of key in the file, or 0 when the file does not set it.
func (idx *keyIndex) line(key string) int { return idx.keys[key].line }

// has reports whether the file sets key.
func (idx *keyIndex) has(key string) bool {
	_, ok := idx.keys[key]
	return ok
}

// tableAt is the table whose header is the last one above line: the context of a
// syntax error the decoder could not attach to a key.
func (idx *keyIndex) tableAt(line int) string {
	name := ""
	for _, h := range idx.headers {
		if h.line > line {
			break
		}
		name = h.name
	}
	return name
}

// describeKind says in words what kind of TOML value k is, for error messages.
func describeKind(k unstable.Kind) string {
	switch k {
	case unstable.String:
		return "a string"
	case unstable.Bool:
		return "a boolean"
	case unstable.Integer:
		return "an integer"
	case unstable.Float:
		return "a float"
	case unstable.Array:
		return "an array"
	case unstable.InlineTable, unstable.Table:
		return "a table"
	case unstable.ArrayTable:
		return "an array of tables"
	case unstable.LocalDate, unstable.LocalTime, unstable.LocalDateTime, unstable.DateTime:
		return "a date or time"
	}
	return fmt.Sprintf("a %s", strings.ToLower(k.String()))
}
