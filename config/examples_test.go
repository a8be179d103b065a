package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The shipped example files must pass the check, set every key (so that store IT sees
// them all), and name each key's environment variable; docs/config.md must document
// every key and variable. A key added to the structs fails here until it is documented.
func TestExamplesAndDocsCoverEveryKey(t *testing.T) {
	docs, err := os.ReadFile(filepath.Join("..", "docs", "config.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{RoleAgent, RolePlatform} {
		path := filepath.Join("..", "configs", role+".toml")
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var warnings []string
		if role == RoleAgent {
			_, warnings, err = Loader{}.ParseAgent(path, data)
		} else {
			_, warnings, err = Loader{}.ParsePlatform(path, data)
		}
		if err != nil {
			t.Fatalf("%s does not pass the check: %v", path, err)
		}
		for _, w := range warnings {
			if !strings.Contains(w, "placeholder") {
				t.Errorf("%s: unexpected warning %q", path, w)
			}
		}
		index := indexKeys(data)
		for _, key := range Keys(role) {
			if !index.has(key) {
				t.Errorf("%s does not set key %s", path, key)
			}
			if !strings.Contains(string(data), EnvName(key)) {
				t.Errorf("%s does not name %s for key %s", path, EnvName(key), key)
			}
			if !strings.Contains(string(docs), "| `"+key+"` |") || !strings.Contains(string(docs), EnvName(key)) {
				t.Errorf("docs/config.md does not document %s key %s (%s)", role, key, EnvName(key))
			}
		}
	}
}
