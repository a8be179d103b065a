package config

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	toml "github.com/pelletier/go-toml/v2"
)

// The fuzz targets check that no file, however hostile, crashes the parser, and that
// every answer is one of two things: a config that is valid and survives being written
// out and read back unchanged, or *Errors that point inside the file. The seed corpus
// is testdata/*.toml, the shipped examples and testdata/fuzz/<target>/.

func FuzzParseAgent(f *testing.F) {
	addSeeds(f, "agent", minimalAgent)
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseAgent("agent.toml", data)
		if err != nil {
			checkErrors(t, err, data)
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("ParseAgent accepted a config that does not validate: %v", err)
		}
		if cfg.PosToken == "" || cfg.StoreID == "" || cfg.TillID == "" {
			t.Fatalf("ParseAgent accepted a config without tokens or ids: %+v", cfg.Redacted())
		}
		out, err := toml.Marshal(cfg)
		if err != nil {
			t.Fatalf("marshal accepted config: %v", err)
		}
		again, err := ParseAgent("agent.toml", out)
		if err != nil {
			t.Fatalf("accepted config does not read back: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(cfg, again) {
			t.Fatalf("config changed on the way back:\n got %+v\nwant %+v", again.Redacted(), cfg.Redacted())
		}
	})
}

func FuzzParsePlatform(f *testing.F) {
	addSeeds(f, "platform", minimalPlatform)
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParsePlatform("platform.toml", data)
		if err != nil {
			checkErrors(t, err, data)
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("ParsePlatform accepted a config that does not validate: %v", err)
		}
		if cfg.AdminToken == "" || cfg.EnrollToken == "" {
			t.Fatalf("ParsePlatform accepted a config without tokens: %+v", cfg.Redacted())
		}
		out, err := toml.Marshal(cfg)
		if err != nil {
			t.Fatalf("marshal accepted config: %v", err)
		}
		again, err := ParsePlatform("platform.toml", out)
		if err != nil {
			t.Fatalf("accepted config does not read back: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(cfg, again) {
			t.Fatalf("config changed on the way back:\n got %+v\nwant %+v", again.Redacted(), cfg.Redacted())
		}
	})
}

func addSeeds(f *testing.F, role, minimal string) {
	f.Add([]byte(minimal))
	f.Add([]byte(""))
	paths, _ := filepath.Glob("testdata/" + role + "*.toml")
	paths = append(paths, filepath.Join("..", "configs", role+".toml"))
	for _, p := range paths {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
}

// checkErrors asserts that a refusal is made of well-formed *Errors pointing inside the
// file: a message that named no key and a line past the end would leave store IT lost.
func checkErrors(t *testing.T, err error, data []byte) {
	t.Helper()
	errs := Errors(err)
	if len(errs) == 0 {
		t.Fatalf("error %v (%T) holds no *config.Error", err, err)
	}
	lines := bytes.Count(data, []byte("\n")) + 1
	for _, e := range errs {
		if e.File == "" || e.Msg == "" {
			t.Fatalf("error without file or message: %#v", e)
		}
		if e.Line < 0 || e.Line > lines {
			t.Fatalf("error line %d outside the file's %d lines: %v", e.Line, lines, e)
		}
	}
}
