package installer

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/tillkeep/tillkeep/config"
)

// CheckConfig validates the role's config file exactly as `tillkeep config check` does
// (strict keys, defaults, TILLKEEP_* overrides, validation) and returns its data_dir and
// warnings. lookupEnv supplies the overrides; nil means this process's environment.
func CheckConfig(role Role, path string, lookupEnv func(string) (string, bool)) (dataDir string, warnings []string, err error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	loader := config.Loader{LookupEnv: lookupEnv}
	switch role {
	case RoleAgent:
		c, warnings, err := loader.LoadAgent(path)
		if err != nil {
			return "", nil, err
		}
		return c.DataDir, warnings, nil
	case RolePlatform:
		c, warnings, err := loader.LoadPlatform(path)
		if err != nil {
			return "", nil, err
		}
		return c.DataDir, warnings, nil
	}
	return "", nil, fmt.Errorf("unknown role %q", role)
}

// serviceEnv is the environment a Linux service will see: the variables of the role's
// env file (EnvironmentFile= of the unit, sourced by the SysV script) and the
// Environment= lines of systemd drop-ins, and nothing of the installing shell. Checking
// the config with the shell's variables would pass a file that the service then cannot
// start with. Elsewhere it is this process's environment.
func serviceEnv(role Role, configPath string) func(string) (string, bool) {
	if runtime.GOOS != "linux" {
		return os.LookupEnv
	}
	vars := map[string]string{}
	dropIns, _ := filepath.Glob("/etc/systemd/system/" + role.ServiceName() + ".service.d/*.conf")
	sort.Strings(dropIns)
	for _, path := range dropIns {
		if data, err := os.ReadFile(path); err == nil {
			maps.Copy(vars, parseDropInEnvironment(data))
		}
	}
	// systemd applies Environment= before EnvironmentFile=, so the file wins.
	if data, err := os.ReadFile(role.EnvFile(configPath)); err == nil {
		maps.Copy(vars, parseEnvFile(data))
	}
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

// parseDropInEnvironment reads the Environment= lines of a systemd unit drop-in:
// space-separated NAME=value assignments, each possibly in double quotes.
func parseDropInEnvironment(data []byte) map[string]string {
	vars := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		rest, ok := strings.CutPrefix(line, "Environment=")
		if !ok {
			continue
		}
		for _, word := range splitQuoted(rest) {
			if name, value, ok := strings.Cut(word, "="); ok {
				vars[name] = value
			}
		}
	}
	return vars
}

// splitQuoted splits s at spaces outside double quotes and drops the quotes.
func splitQuoted(s string) []string {
	var words []string
	var cur strings.Builder
	inQuotes, inWord := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuotes, inWord = !inQuotes, true
		case (r == ' ' || r == '\t') && !inQuotes:
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// parseEnvFile reads NAME=value lines as systemd's EnvironmentFile= does for the simple
// cases: blank lines and # comments are skipped, an optional "export " is dropped, and
// a value in matching single or double quotes is unquoted.
func parseEnvFile(data []byte) map[string]string {
	vars := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if len(value) >= 2 && (value[0] == '"' || value[0] == '\'') && value[len(value)-1] == value[0] {
			value = value[1 : len(value)-1]
		}
		vars[name] = value
	}
	return vars
}
