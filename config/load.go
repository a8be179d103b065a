package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"sort"
	"strings"

	toml "github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// Loader reads config files. Its zero value applies no environment overrides, which is
// what tests and fuzzing want; the daemons use LoadAgent and LoadPlatform, which hand it
// os.LookupEnv.
type Loader struct {
	// LookupEnv returns the value of an environment variable and whether it is set.
	// A variable that is set overrides the file even when it is empty. Nil: no
	// overrides.
	LookupEnv func(name string) (string, bool)
}

// LoadAgent reads, defaults, overrides from the environment and validates agent.toml.
func LoadAgent(path string) (Agent, error) {
	cfg, _, err := LoadAgentWithWarnings(path)
	return cfg, err
}

// LoadAgentWithWarnings is LoadAgent that also returns what is legal but unwise (a file
// holding secrets that other users can read, a POS API open to the network...), one
// sentence each, for the caller to log or print.
func LoadAgentWithWarnings(path string) (Agent, []string, error) {
	return Loader{LookupEnv: os.LookupEnv}.LoadAgent(path)
}

// LoadPlatform reads, defaults, overrides from the environment and validates
// platform.toml.
func LoadPlatform(path string) (Platform, error) {
	cfg, _, err := LoadPlatformWithWarnings(path)
	return cfg, err
}

// LoadPlatformWithWarnings is LoadPlatform that also returns its warnings.
func LoadPlatformWithWarnings(path string) (Platform, []string, error) {
	return Loader{LookupEnv: os.LookupEnv}.LoadPlatform(path)
}

// ParseAgent decodes and validates the agent.toml text data, naming it name in errors.
// It applies defaults but no environment overrides.
func ParseAgent(name string, data []byte) (Agent, error) {
	cfg, _, err := Loader{}.ParseAgent(name, data)
	return cfg, err
}

// ParsePlatform decodes and validates the platform.toml text data, naming it name in
// errors. It applies defaults but no environment overrides.
func ParsePlatform(name string, data []byte) (Platform, error) {
	cfg, _, err := Loader{}.ParsePlatform(name, data)
	return cfg, err
}

// LoadAgent reads the agent.toml at path; see the package function of the same name.
func (l Loader) LoadAgent(path string) (Agent, []string, error) {
	data, err := readConfigFile(path)
	if err != nil {
		return Agent{}, nil, err
	}
	cfg, doc, warnings, err := l.parseAgent(path, data)
	if err != nil {
		return Agent{}, nil, err
	}
	return cfg, append(permissionWarnings(path, doc, agentSecrets), warnings...), nil
}

// LoadPlatform reads the platform.toml at path; see the package function of the same
// name.
func (l Loader) LoadPlatform(path string) (Platform, []string, error) {
	data, err := readConfigFile(path)
	if err != nil {
		return Platform{}, nil, err
	}
	cfg, doc, warnings, err := l.parsePlatform(path, data)
	if err != nil {
		return Platform{}, nil, err
	}
	return cfg, append(permissionWarnings(path, doc, platformSecrets), warnings...), nil
}

// ParseAgent decodes, overrides and validates agent.toml text.
func (l Loader) ParseAgent(name string, data []byte) (Agent, []string, error) {
	cfg, _, warnings, err := l.parseAgent(name, data)
	return cfg, warnings, err
}

// ParsePlatform decodes, overrides and validates platform.toml text.
func (l Loader) ParsePlatform(name string, data []byte) (Platform, []string, error) {
	cfg, _, warnings, err := l.parsePlatform(name, data)
	return cfg, warnings, err
}

func (l Loader) parseAgent(name string, data []byte) (Agent, *document, []string, error) {
	cfg := DefaultAgent()
	doc, errs := l.decode(name, data, &cfg)
	if len(errs) > 0 {
		return Agent{}, doc, nil, joinErrors(errs)
	}
	cfg.DataDir = doc.resolveDir("data_dir", cfg.DataDir)
	warnings, errs := validateAgent(&cfg, doc)
	if len(errs) > 0 {
		return Agent{}, doc, nil, joinErrors(errs)
	}
	return cfg, doc, warnings, nil
}

func (l Loader) parsePlatform(name string, data []byte) (Platform, *document, []string, error) {
	cfg := DefaultPlatform()
	doc, errs := l.decode(name, data, &cfg)
	if len(errs) > 0 {
		return Platform{}, doc, nil, joinErrors(errs)
	}
	cfg.DataDir = doc.resolveDir("data_dir", cfg.DataDir)
	warnings, errs := validatePlatform(&cfg, doc)
	if len(errs) > 0 {
		return Platform{}, doc, nil, joinErrors(errs)
	}
	return cfg, doc, warnings, nil
}

// readConfigFile reads a config file, refusing anything too large to be one (a
// mistyped path to a log or a device must not eat the till's memory).
func readConfigFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	if int64(len(data)) > maxConfigFileBytes {
		return nil, &Error{File: path, Msg: fmt.Sprintf("file is larger than %d bytes: is this really a config file?", maxConfigFileBytes)}
	}
	return data, nil
}

// document is what is known about one config text while it is checked: its name, where
// each key is in it, and which keys the environment overrode.
type document struct {
	name    string
	index   keyIndex
	fromEnv map[string]string // dotted key → TILLKEEP_* variable that set it
}

// errorf makes an *Error about key, placed at the key's line in the file, or naming the
// environment variable when the value came from there.
func (d *document) errorf(key, format string, args ...any) *Error {
	e := &Error{File: d.name, Key: key, Msg: fmt.Sprintf(format, args...)}
	if env, ok := d.fromEnv[key]; ok {
		e.Env = env
	} else {
		e.Line = d.index.line(key)
	}
	return e
}

// resolveDir makes a relative directory absolute: relative to the config file's own
// directory when the file set it (a service runs from "/", so the working directory
// would be a trap), relative to the working directory when the environment did.
func (d *document) resolveDir(key, dir string) string {
	if dir == "" || filepath.IsAbs(dir) {
		return dir
	}
	if _, fromEnv := d.fromEnv[key]; !fromEnv {
		dir = filepath.Join(filepath.Dir(d.name), dir)
	}
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return filepath.Clean(dir)
}

// decode reads data onto cfg (already holding the defaults, so that a key the file
// leaves out keeps its default and `enabled = false` still wins over a default true),
// then applies the environment overrides.
func (l Loader) decode(name string, data []byte, cfg any) (doc *document, errs []*Error) {
	// Notepad on Windows tills saves UTF-8 with a byte order mark, which TOML forbids.
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	doc = &document{name: name, index: indexKeys(data), fromEnv: map[string]string{}}
	defer func() {
		// go-toml is fuzzed upstream, but a config check must never take a daemon
		// down: a panic while decoding is reported as an unreadable file.
		if r := recover(); r != nil {
			errs = []*Error{{File: name, Msg: fmt.Sprintf("cannot decode file: %v", r)}}
		}
	}()
	root := reflect.ValueOf(cfg).Elem()
	leaves := leavesOf(root.Type())
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		return doc, doc.decodeErrors(err, leaves)
	}
	if l.LookupEnv != nil {
		errs = doc.applyEnv(root, leaves, l.LookupEnv)
	}
	return doc, errs
}

// decodeErrors turns what go-toml returned into *Errors naming key and line.
func (d *document) decodeErrors(err error, leaves []leaf) []*Error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		var errs []*Error
		for i := range strict.Errors {
			e := &strict.Errors[i]
			key := joinKey(e.Key())
			line, _ := e.Position()
			if l := d.index.line(key); l > 0 {
				line = l
			}
			errs = append(errs, &Error{File: d.name, Line: line, Key: key, Msg: d.unknownKeyMessage(key, leaves)})
		}
		sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
		return errs
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		key := joinKey(de.Key())
		line, _ := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		if key == "" {
			key = d.guessKey(line)
		}
		if isTypeMismatch(msg) {
			if typ, ok := leafType(leaves, key); ok {
				msg = fmt.Sprintf("expected %s, got %s", describeType(typ), describeKind(d.index.keys[key].kind))
			} else if isTable(leaves, key) {
				msg = fmt.Sprintf("expected a table, got %s", describeKind(d.index.keys[key].kind))
			}
		}
		return []*Error{{File: d.name, Line: line, Key: key, Msg: msg}}
	}
	// A few decode errors come back without a position (a number given for a
	// duration goes straight to Duration.UnmarshalText). Find the culprit by checking
	// the kind of every value the file sets.
	for _, l := range leaves {
		info, ok := d.index.keys[l.key]
		if !ok {
			continue
		}
		if want := kindFor(l.typ); want != unstable.Invalid && info.kind != want {
			return []*Error{{File: d.name, Line: info.line, Key: l.key,
				Msg: fmt.Sprintf("expected %s, got %s", describeType(l.typ), describeKind(info.kind))}}
		}
	}
	return []*Error{{File: d.name, Msg: err.Error()}}
}

// kindFor is the kind of TOML value a key of Go type t must be given.
func kindFor(t reflect.Type) unstable.Kind {
	if t == reflect.TypeFor[Duration]() {
		return unstable.String
	}
	switch t.Kind() {
	case reflect.String:
		return unstable.String
	case reflect.Bool:
		return unstable.Bool
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return unstable.Integer
	}
	return unstable.Invalid
}

var typeMismatch = regexp.MustCompile(`^cannot (decode TOML \S+( \S+)? into|store an? .* in)`)

func isTypeMismatch(msg string) bool { return typeMismatch.MatchString(msg) }

// guessKey names the key of a line with a syntax error, which go-toml reports without
// one: "listen = " on line 3 under [offline] is offline.listen.
func (d *document) guessKey(line int) string {
	text := d.lineText(line)
	m := bareKey.FindStringSubmatch(text)
	if m == nil {
		return ""
	}
	if table := d.index.tableAt(line); table != "" {
		return table + "." + m[1]
	}
	return m[1]
}

var bareKey = regexp.MustCompile(`^\s*([A-Za-z0-9_-]+(?:\s*\.\s*[A-Za-z0-9_-]+)*)\s*=`)

func (d *document) lineText(line int) string {
	starts := d.index.lineStarts
	if line < 1 || line > len(starts) {
		return ""
	}
	end := len(d.index.data)
	if line < len(starts) {
		end = starts[line]
	}
	return string(d.index.data[starts[line-1]:end])
}

func leafType(leaves []leaf, key string) (reflect.Type, bool) {
	for _, l := range leaves {
		if l.key == key {
			return l.typ, true
		}
	}
	return nil, false
}

func isTable(leaves []leaf, key string) bool {
	for _, l := range leaves {
		if strings.HasPrefix(l.key, key+".") {
			return true
		}
	}
	return false
}

// unknownKeyMessage says a key or table is unknown and, when the file's author most
// likely meant another, which one.
func (d *document) unknownKeyMessage(key string, leaves []leaf) string {
	msg := "unknown key"
	if k := d.index.keys[key].kind; k == unstable.Table || k == unstable.ArrayTable {
		msg = "unknown table"
	}
	if s := suggest(key, leaves); s != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", s)
	}
	return msg
}

// suggest finds the known key closest to an unknown one: the same name in another
// table, or a name one or two typos away.
func suggest(key string, leaves []leaf) string {
	last := key[strings.LastIndexByte(key, '.')+1:]
	for _, l := range leaves {
		if l.key[strings.LastIndexByte(l.key, '.')+1:] == last {
			return l.key
		}
	}
	best, bestDist := "", 3
	for _, l := range leaves {
		if d := editDistance(key, l.key); d < bestDist {
			best, bestDist = l.key, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// permissionWarnings warns when a file that holds secrets can be read by users other
// than its owner. Windows has no such mode bits; its ACLs are store IT's business.
func permissionWarnings(path string, doc *document, secrets []string) []string {
	if runtime.GOOS == "windows" {
		return nil
	}
	holdsSecret := false
	for _, key := range secrets {
		if doc.index.has(key) {
			holdsSecret = true
		}
	}
	if !holdsSecret {
		return nil
	}
	// Group-readable is the packaged layout (root:tillkeep 0640, so the service user
	// reads its config but cannot change it); only a file every user can read warns.
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm()&0o004 == 0 {
		return nil
	}
	return []string{fmt.Sprintf("%s is readable by other users and holds secrets: chmod o-r %s (or chmod 600)", path, path)}
}
