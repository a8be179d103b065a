package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// minimalAgent and minimalPlatform set only the keys without defaults.
const (
	minimalAgent = `pos_token = "pos-token-for-tests-0123456789"
store_id = "S001"
till_id = "T01"
`
	minimalPlatform = `admin_token = "admin-token-for-tests-0123456789"
enroll_token = "enroll-token-for-tests-0123456789"
`
)

func TestGoodAgentFile(t *testing.T) {
	cfg, warnings, err := Loader{}.LoadAgent("testdata/agent-good.toml")
	if err != nil {
		t.Fatalf("LoadAgent: %v", err)
	}
	if len(warnings) != 0 && !strings.Contains(warnings[0], "readable by other users") {
		t.Errorf("unexpected warnings: %q", warnings)
	}
	want := Agent{
		Listen:   "127.0.0.1:7171",
		DataDir:  "/srv/tillkeep/agent",
		PosToken: "pos-token-for-tests-0123456789",
		StoreID:  "S001",
		TillID:   "T01",
		Platform: AgentPlatform{
			URL:         "https://coupons.example.com",
			EnrollToken: "enroll-token-for-tests-0123456789",
			Timeout:     Duration{1500 * time.Millisecond},
		},
		Sync: AgentSync{Schedule: "*/5 * * * *"},
		Offline: AgentOffline{
			Enabled:        false,
			MaxDiscount:    2500,
			MaxRedemptions: 0,
			MaxCatalogAge:  Duration{24 * time.Hour},
		},
		Log: Log{Level: "debug", Format: "json"},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("LoadAgent:\n got %+v\nwant %+v", cfg, want)
	}
}

func TestGoodPlatformFile(t *testing.T) {
	cfg, _, err := Loader{}.LoadPlatform("testdata/platform-good.toml")
	if err != nil {
		t.Fatalf("LoadPlatform: %v", err)
	}
	want := Platform{
		Listen:      "0.0.0.0:9090",
		DataDir:     "/srv/tillkeep/platform",
		AdminToken:  "admin-token-for-tests-0123456789",
		EnrollToken: "enroll-token-for-tests-0123456789",
		Storage: PlatformStorage{
			Driver: "postgres",
			DSN:    "postgres://tillkeep:s3cret@db.example.com:5432/tillkeep?sslmode=require",
		},
		Reconcile: PlatformReconcile{AutoRevoke: false, MaxClockSkew: Duration{10 * time.Minute}},
		Feed:      PlatformFeed{Retention: Duration{48 * time.Hour}},
		Log:       Log{Level: "warn", Format: "text"},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("LoadPlatform:\n got %+v\nwant %+v", cfg, want)
	}
}

func TestDefaults(t *testing.T) {
	agent, err := ParseAgent("agent.toml", []byte(minimalAgent))
	if err != nil {
		t.Fatalf("ParseAgent: %v", err)
	}
	wantAgent := Agent{
		Listen:   "127.0.0.1:7070",
		DataDir:  "/var/lib/tillkeep/agent",
		PosToken: "pos-token-for-tests-0123456789",
		StoreID:  "S001",
		TillID:   "T01",
		Platform: AgentPlatform{Timeout: Duration{800 * time.Millisecond}},
		Sync:     AgentSync{Schedule: "@every 15s"},
		Offline: AgentOffline{
			Enabled:        true,
			MaxDiscount:    5000,
			MaxRedemptions: 500,
			MaxCatalogAge:  Duration{72 * time.Hour},
		},
		Log: Log{Level: "info", Format: "text"},
	}
	if !reflect.DeepEqual(agent, wantAgent) {
		t.Errorf("agent defaults:\n got %+v\nwant %+v", agent, wantAgent)
	}

	platform, err := ParsePlatform("platform.toml", []byte(minimalPlatform))
	if err != nil {
		t.Fatalf("ParsePlatform: %v", err)
	}
	wantPlatform := Platform{
		Listen:      "127.0.0.1:8080",
		DataDir:     "/var/lib/tillkeep/platform",
		AdminToken:  "admin-token-for-tests-0123456789",
		EnrollToken: "enroll-token-for-tests-0123456789",
		Storage:     PlatformStorage{Driver: "bolt"},
		Reconcile:   PlatformReconcile{AutoRevoke: true, MaxClockSkew: Duration{5 * time.Minute}},
		Feed:        PlatformFeed{Retention: Duration{30 * 24 * time.Hour}},
		Log:         Log{Level: "info", Format: "text"},
	}
	if !reflect.DeepEqual(platform, wantPlatform) {
		t.Errorf("platform defaults:\n got %+v\nwant %+v", platform, wantPlatform)
	}
}

// Store IT edit config files with Notepad on Windows tills: a byte order mark and CRLF
// line ends must not be mistakes.
func TestWindowsNotepadFile(t *testing.T) {
	text := "\ufeff" + strings.ReplaceAll(minimalAgent+"[offline]\nmax_discount = 100\n", "\n", "\r\n")
	cfg, err := ParseAgent("agent.toml", []byte(text))
	if err != nil {
		t.Fatalf("ParseAgent: %v", err)
	}
	if cfg.PosToken != "pos-token-for-tests-0123456789" || cfg.Offline.MaxDiscount != 100 {
		t.Errorf("got %+v", cfg.Redacted())
	}
	_, err = ParseAgent("agent.toml", []byte("\ufeff"+strings.ReplaceAll(minimalAgent+"[offline]\nmax_discount = -1\n", "\n", "\r\n")))
	if e := Errors(err); len(e) != 1 || e[0].Line != 5 || e[0].Key != "offline.max_discount" {
		t.Errorf("error in a CRLF file: %v", err)
	}
}

// A default of true must not swallow an explicit false, nor a default of 500 an
// explicit 0: those are the settings that switch a risk off.
func TestExplicitZeroValuesOverrideDefaults(t *testing.T) {
	agent, err := ParseAgent("agent.toml", []byte(minimalAgent+"[offline]\nenabled = false\nmax_discount = 0\nmax_redemptions = 0\n"))
	if err != nil {
		t.Fatalf("ParseAgent: %v", err)
	}
	if agent.Offline.Enabled || agent.Offline.MaxDiscount != 0 || agent.Offline.MaxRedemptions != 0 {
		t.Errorf("offline = %+v, want enabled=false and zero limits", agent.Offline)
	}
	dotted, err := ParseAgent("agent.toml", []byte(minimalAgent+"offline.enabled = false\n"))
	if err != nil || dotted.Offline.Enabled {
		t.Errorf("dotted offline.enabled = false: enabled=%v err=%v", dotted.Offline.Enabled, err)
	}
	inline, err := ParseAgent("agent.toml", []byte(minimalAgent+"offline = { enabled = false }\n"))
	if err != nil || inline.Offline.Enabled || inline.Offline.MaxRedemptions != 500 {
		t.Errorf("inline offline table: %+v err=%v", inline.Offline, err)
	}
	platform, err := ParsePlatform("platform.toml", []byte(minimalPlatform+"[reconcile]\nauto_revoke = false\n"))
	if err != nil || platform.Reconcile.AutoRevoke {
		t.Errorf("auto_revoke = false: got %v, err %v", platform.Reconcile.AutoRevoke, err)
	}
}

// brokenCase is a file with one mistake, and where the message must point.
type brokenCase struct {
	name string
	role string
	text string
	key  string
	line int // 0: the key is not in the file
	msg  string
}

func TestBrokenFiles(t *testing.T) {
	cases := []brokenCase{
		{"unknown top-level key", "agent", minimalAgent + "lisen = \"127.0.0.1:7070\"\n", "lisen", 4, "unknown key (did you mean listen?)"},
		{"unknown nested key", "agent", minimalAgent + "\n[offline]\nenabled = true\nmax_catalog_agee = \"72h\"\n", "offline.max_catalog_agee", 7, "did you mean offline.max_catalog_age?"},
		{"nested key at the top level", "agent", minimalAgent + "max_catalog_age = \"72h\"\n", "max_catalog_age", 4, "did you mean offline.max_catalog_age?"},
		{"unknown table", "agent", minimalAgent + "[offlin]\nenabled = true\n", "offlin", 4, "unknown table"},
		{"quoted key that looks dotted", "agent", minimalAgent + "\"offline.enabled\" = false\n", `"offline.enabled"`, 4, "unknown key (did you mean offline.enabled?)"},
		{"unknown dotted key", "platform", minimalPlatform + "storage.driverr = \"bolt\"\n", "storage.driverr", 3, "unknown key"},
		{"agent key in platform file", "platform", minimalPlatform + "[offline]\nenabled = true\n", "offline", 3, "unknown table"},
		{"bad duration", "agent", minimalAgent + "[offline]\nmax_catalog_age = \"72 hours\"\n", "offline.max_catalog_age", 5, `invalid duration "72 hours"`},
		{"duration without unit", "agent", minimalAgent + "[platform]\ntimeout = \"800\"\n", "platform.timeout", 5, `invalid duration "800"`},
		{"duration given as a number", "agent", minimalAgent + "[platform]\ntimeout = 800\n", "platform.timeout", 5, "expected a duration string"},
		{"negative duration", "platform", minimalPlatform + "[reconcile]\nmax_clock_skew = \"-5m\"\n", "reconcile.max_clock_skew", 4, "must be a positive duration"},
		{"zero duration", "agent", minimalAgent + "[offline]\nmax_catalog_age = \"0s\"\n", "offline.max_catalog_age", 5, "must be a positive duration"},
		{"bad cron spec", "agent", minimalAgent + "[sync]\nschedule = \"every 15 seconds\"\n", "sync.schedule", 5, "invalid cron spec"},
		{"cron spec with bad field", "agent", minimalAgent + "[sync]\nschedule = \"61 * * * *\"\n", "sync.schedule", 5, "invalid cron spec"},
		{"cron spec that panics the parser", "agent", minimalAgent + "[sync]\nschedule = \"TZ=UTC\"\n", "sync.schedule", 5, "invalid cron spec"},
		{"cron spec that never fires", "agent", minimalAgent + "[sync]\nschedule = \"0 0 30 2 *\"\n", "sync.schedule", 5, "never fires"},
		{"cron @every too short", "agent", minimalAgent + "[sync]\nschedule = \"@every 10ms\"\n", "sync.schedule", 5, "at least 1s"},
		{"string for an integer", "agent", minimalAgent + "[offline]\nmax_discount = \"5000\"\n", "offline.max_discount", 5, "expected an integer, got a string"},
		{"string for a bool", "agent", minimalAgent + "[offline]\nenabled = \"yes\"\n", "offline.enabled", 5, "expected true or false, got a string"},
		{"integer for a string", "agent", "pos_token = 1234567890123456789\nstore_id = \"S001\"\ntill_id = \"T01\"\n", "pos_token", 1, "expected a string, got an integer"},
		{"value for a table", "agent", minimalAgent + "offline = 3\n", "offline", 4, "expected a table, got an integer"},
		{"table for a value", "agent", minimalAgent + "[listen]\n", "listen", 4, "expected a string"},
		{"integer overflow", "agent", minimalAgent + "[offline]\nmax_discount = 99999999999999999999\n", "offline.max_discount", 5, "too large"},
		{"negative limit", "agent", minimalAgent + "[offline]\nmax_redemptions = -1\n", "offline.max_redemptions", 5, "must be 0 or more"},
		{"duplicate key", "agent", minimalAgent + "store_id = \"S002\"\n", "store_id", 4, "already defined"},
		{"syntax error", "agent", minimalAgent + "[offline]\nenabled = \n", "offline.enabled", 5, "unexpected character"},
		{"missing pos_token", "agent", "store_id = \"S001\"\ntill_id = \"T01\"\n", "pos_token", 0, "is required: set it in the file or in TILLKEEP_POS_TOKEN"},
		{"missing store_id", "agent", "pos_token = \"pos-token-for-tests-0123456789\"\ntill_id = \"T01\"\n", "store_id", 0, "is required"},
		{"missing till_id", "agent", "pos_token = \"pos-token-for-tests-0123456789\"\nstore_id = \"S001\"\n", "till_id", 0, "is required"},
		{"missing admin_token", "platform", "enroll_token = \"enroll-token-for-tests-0123456789\"\n", "admin_token", 0, "is required: set it in the file or in TILLKEEP_ADMIN_TOKEN"},
		{"missing enroll_token", "platform", "admin_token = \"admin-token-for-tests-0123456789\"\n", "enroll_token", 0, "is required: set it in the file or in TILLKEEP_ENROLL_TOKEN"},
		{"short token", "agent", "store_id = \"S001\"\ntill_id = \"T01\"\npos_token = \"short\"\n", "pos_token", 3, "at least 16 characters"},
		{"token with a space", "platform", "admin_token = \"admin token for tests 0123456789\"\nenroll_token = \"enroll-token-for-tests-0123456789\"\n", "admin_token", 1, "without spaces"},
		{"short enroll token", "agent", minimalAgent + "[platform]\nurl = \"https://coupons.example.com\"\nenroll_token = \"abc\"\n", "platform.enroll_token", 6, "at least 16 characters"},
		{"same admin and enroll token", "platform", "admin_token = \"same-token-for-both-0123456789\"\nenroll_token = \"same-token-for-both-0123456789\"\n", "enroll_token", 2, "must differ from admin_token"},
		{"bad store id", "agent", "pos_token = \"pos-token-for-tests-0123456789\"\nstore_id = \"S 001\"\ntill_id = \"T01\"\n", "store_id", 2, "letters, digits"},
		{"till id too long", "agent", "pos_token = \"pos-token-for-tests-0123456789\"\nstore_id = \"S001\"\ntill_id = \"" + strings.Repeat("T", 65) + "\"\n", "till_id", 3, "1 to 64"},
		{"bad driver", "platform", minimalPlatform + "[storage]\ndriver = \"sqlite\"\n", "storage.driver", 4, `must be "bolt" or "postgres", got "sqlite"`},
		{"postgres without dsn", "platform", minimalPlatform + "[storage]\ndriver = \"postgres\"\n", "storage.dsn", 0, "is required when storage.driver is \"postgres\""},
		{"postgres with a bad dsn", "platform", minimalPlatform + "[storage]\ndriver = \"postgres\"\ndsn = \"mysql://x\"\n", "storage.dsn", 5, "must be a postgres:// URL"},
		{"bad platform url", "agent", minimalAgent + "[platform]\nurl = \"coupons.example.com\"\n", "platform.url", 5, "must be an http or https URL"},
		{"platform url with credentials", "agent", minimalAgent + "[platform]\nurl = \"https://u:p@coupons.example.com\"\n", "platform.url", 5, "must not hold a user name or password"},
		{"bad listen", "agent", minimalAgent + "listen = \"7070\"\n", "listen", 4, "must be host:port"},
		{"bad listen port", "platform", minimalPlatform + "listen = \"127.0.0.1:80800\"\n", "listen", 3, "from 0 to 65535"},
		{"empty data_dir", "platform", minimalPlatform + "data_dir = \"\"\n", "data_dir", 3, "must name a directory"},
		{"bad log level", "agent", minimalAgent + "[log]\nlevel = \"verbose\"\n", "log.level", 5, "must be one of debug, info, warn, error"},
		{"bad log format", "platform", minimalPlatform + "[log]\nformat = \"xml\"\n", "log.format", 4, "must be one of text, json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := parseRole(tc.role, tc.text)
			if err == nil {
				t.Fatalf("no error for:\n%s", tc.text)
			}
			var cfgErr *Error
			if !errors.As(err, &cfgErr) {
				t.Fatalf("error %v (%T) is not a *config.Error", err, err)
			}
			if cfgErr.File != tc.role+".toml" || cfgErr.Key != tc.key || cfgErr.Line != tc.line {
				t.Errorf("error at %s:%d key %q, want %s.toml:%d key %q (%v)", cfgErr.File, cfgErr.Line, cfgErr.Key, tc.role, tc.line, tc.key, err)
			}
			if !strings.Contains(cfgErr.Msg, tc.msg) {
				t.Errorf("message %q does not contain %q", cfgErr.Msg, tc.msg)
			}
			prefix := tc.role + ".toml"
			if tc.line > 0 {
				prefix += ":" + strconv.Itoa(tc.line)
			}
			prefix += ": key " + tc.key + ": "
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("message %q does not start with %q", err.Error(), prefix)
			}
		})
	}
}

func parseRole(role, text string) error {
	if role == RoleAgent {
		_, err := ParseAgent("agent.toml", []byte(text))
		return err
	}
	_, err := ParsePlatform("platform.toml", []byte(text))
	return err
}

// Store IT should see every mistake of a file in one run of config check, in file order.
func TestAllMistakesReportedInFileOrder(t *testing.T) {
	text := "till_id = \"T 1\"\nstore_id = \"S 1\"\n[offline]\nmax_discount = -5\n"
	_, err := ParseAgent("agent.toml", []byte(text))
	got := Errors(err)
	var keys []string
	for _, e := range got {
		keys = append(keys, e.Key)
	}
	want := []string{"till_id", "store_id", "offline.max_discount", "pos_token"}
	if !reflect.DeepEqual(keys, want) {
		t.Fatalf("errors for keys %q, want %q (%v)", keys, want, err)
	}

	unknown := minimalAgent + "a = 1\n[offline]\nb = 2\n"
	_, err = ParseAgent("agent.toml", []byte(unknown))
	if got := Errors(err); len(got) != 2 || got[0].Key != "a" || got[1].Key != "offline.b" || got[1].Line != 6 {
		t.Fatalf("unknown keys: %v", err)
	}
}

// Errors never repeat a secret, even when the secret is what is wrong.
func TestErrorsNeverHoldSecrets(t *testing.T) {
	secret := "tok en-that-must-not-leak-0123456789"
	texts := []string{
		"pos_token = \"" + secret + "\"\nstore_id = \"S001\"\ntill_id = \"T01\"\n",
		"pos_token = \"" + secret + "\"\nstore_id = \"S001\"\ntill_id = \"T01\"\n[platform]\nenroll_token = \"" + secret + "\"\n",
	}
	for _, text := range texts {
		_, err := ParseAgent("agent.toml", []byte(text))
		if err == nil {
			t.Fatalf("no error for a token with a space")
		}
		if strings.Contains(err.Error(), "tok en") {
			t.Errorf("error holds the secret: %v", err)
		}
	}
	_, err := ParsePlatform("platform.toml", []byte(minimalPlatform+"[storage]\ndriver = \"postgres\"\ndsn = \"mysql://u:hunter2@db\"\n"))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("dsn error holds the password: %v", err)
	}
}

// env is a fake environment for Loader.LookupEnv.
type env map[string]string

func (e env) lookup(name string) (string, bool) {
	v, ok := e[name]
	return v, ok
}

func TestEnvOverrides(t *testing.T) {
	e := env{
		"TILLKEEP_POS_TOKEN":               "pos-token-from-env-0123456789",
		"TILLKEEP_STORE_ID":                "S777",
		"TILLKEEP_PLATFORM_URL":            "https://env.example.com",
		"TILLKEEP_PLATFORM_ENROLL_TOKEN":   "enroll-token-from-env-0123456789",
		"TILLKEEP_PLATFORM_TIMEOUT":        "2s",
		"TILLKEEP_OFFLINE_ENABLED":         "false",
		"TILLKEEP_OFFLINE_MAX_DISCOUNT":    "1234",
		"TILLKEEP_OFFLINE_MAX_CATALOG_AGE": "1h",
		"TILLKEEP_LOG_FORMAT":              "json",
		"TILLKEEP_ADMIN_TOKEN":             "must-not-apply-to-the-agent-0123",
	}
	// The file sets till_id only: tokens come from the environment, as they should.
	cfg, _, err := Loader{LookupEnv: e.lookup}.ParseAgent("agent.toml", []byte("till_id = \"T01\"\nstore_id = \"S001\"\n[offline]\nmax_discount = 9\n"))
	if err != nil {
		t.Fatalf("ParseAgent: %v", err)
	}
	if cfg.PosToken != "pos-token-from-env-0123456789" || cfg.StoreID != "S777" || cfg.TillID != "T01" ||
		cfg.Platform.URL != "https://env.example.com" || cfg.Platform.EnrollToken != "enroll-token-from-env-0123456789" ||
		cfg.Platform.Timeout.Duration != 2*time.Second || cfg.Offline.Enabled || cfg.Offline.MaxDiscount != 1234 ||
		cfg.Offline.MaxCatalogAge.Duration != time.Hour || cfg.Log.Format != "json" {
		t.Errorf("env overrides not applied: %+v", cfg)
	}

	pcfg, _, err := Loader{LookupEnv: env{
		"TILLKEEP_ADMIN_TOKEN":              "admin-token-from-env-0123456789",
		"TILLKEEP_ENROLL_TOKEN":             "enroll-token-from-env-0123456789",
		"TILLKEEP_STORAGE_DRIVER":           "postgres",
		"TILLKEEP_STORAGE_DSN":              "postgres://tillkeep@localhost:5432/tillkeep",
		"TILLKEEP_RECONCILE_AUTO_REVOKE":    "0",
		"TILLKEEP_RECONCILE_MAX_CLOCK_SKEW": "90s",
	}.lookup}.ParsePlatform("platform.toml", nil)
	if err != nil {
		t.Fatalf("ParsePlatform: %v", err)
	}
	if pcfg.AdminToken != "admin-token-from-env-0123456789" || pcfg.Storage.Driver != "postgres" ||
		pcfg.Storage.DSN != "postgres://tillkeep@localhost:5432/tillkeep" || pcfg.Reconcile.AutoRevoke ||
		pcfg.Reconcile.MaxClockSkew.Duration != 90*time.Second {
		t.Errorf("env overrides not applied: %+v", pcfg)
	}
}

// Every key can be overridden, with no list of keys to keep in sync: a key added to
// the structs is covered by this test as soon as it exists.
func TestEveryKeyHasAnEnvOverride(t *testing.T) {
	for _, role := range []string{RoleAgent, RolePlatform} {
		var root reflect.Value
		if role == RoleAgent {
			root = reflect.ValueOf(DefaultAgent())
		} else {
			root = reflect.ValueOf(DefaultPlatform())
		}
		seen := map[string]string{}
		for _, l := range leavesOf(root.Type()) {
			name := EnvName(l.key)
			if other, dup := seen[name]; dup {
				t.Errorf("%s: keys %s and %s share %s", role, other, l.key, name)
			}
			seen[name] = l.key
			value := map[reflect.Type]string{
				reflect.TypeFor[string]():   "x",
				reflect.TypeFor[bool]():     "true",
				reflect.TypeFor[int]():      "7",
				reflect.TypeFor[int64]():    "7",
				reflect.TypeFor[Duration](): "7s",
			}[l.typ]
			if value == "" {
				t.Errorf("%s: no sample env value for key %s of type %s", role, l.key, l.typ)
				continue
			}
			doc := &document{name: role + ".toml", fromEnv: map[string]string{}}
			target := reflect.New(root.Type()).Elem()
			target.Set(root)
			errs := doc.applyEnv(target, leavesOf(root.Type()), env{name: value}.lookup)
			if len(errs) != 0 {
				t.Errorf("%s=%s: %v", name, value, errs[0])
				continue
			}
			got := target.FieldByIndex(l.index)
			if reflect.DeepEqual(got.Interface(), root.FieldByIndex(l.index).Interface()) && l.typ != reflect.TypeFor[bool]() {
				t.Errorf("%s=%s did not change %s", name, value, l.key)
			}
			if doc.fromEnv[l.key] != name {
				t.Errorf("%s not recorded as set from %s", l.key, name)
			}
		}
	}
}

func TestBadEnvValuesNameTheVariable(t *testing.T) {
	cases := []struct {
		name, value, key, msg string
	}{
		{"TILLKEEP_OFFLINE_MAX_DISCOUNT", "50 dollars", "offline.max_discount", "expected an integer"},
		{"TILLKEEP_OFFLINE_ENABLED", "maybe", "offline.enabled", "expected true or false"},
		{"TILLKEEP_PLATFORM_TIMEOUT", "800", "platform.timeout", "invalid duration"},
		{"TILLKEEP_SYNC_SCHEDULE", "often", "sync.schedule", "invalid cron spec"},
		{"TILLKEEP_POS_TOKEN", "short-secret", "pos_token", "at least 16 characters"},
		{"TILLKEEP_STORE_ID", "", "store_id", "is required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Loader{LookupEnv: env{tc.name: tc.value}.lookup}.ParseAgent("agent.toml", []byte(minimalAgent))
			var cfgErr *Error
			if !errors.As(err, &cfgErr) {
				t.Fatalf("got %v, want a *config.Error", err)
			}
			if cfgErr.Env != tc.name || cfgErr.Key != tc.key || cfgErr.Line != 0 {
				t.Errorf("error env %q key %q line %d, want env %q key %q line 0", cfgErr.Env, cfgErr.Key, cfgErr.Line, tc.name, tc.key)
			}
			if !strings.Contains(err.Error(), tc.name) || !strings.Contains(cfgErr.Msg, tc.msg) {
				t.Errorf("message %q should name %s and say %q", err, tc.name, tc.msg)
			}
			if tc.key == "pos_token" && strings.Contains(err.Error(), tc.value) {
				t.Errorf("message repeats the secret: %v", err)
			}
		})
	}
}

func TestPermissionWarning(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string, mode os.FileMode) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // umask must not decide the test
			t.Fatal(err)
		}
		return path
	}
	want := func(path string) string {
		return path + " is readable by other users and holds secrets: chmod o-r " + path + " (or chmod 600)"
	}

	open := write("open.toml", minimalAgent, 0o644)
	_, warnings, err := Loader{}.LoadAgent(open)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || warnings[0] != want(open) {
		t.Errorf("warnings %q, want [%q]", warnings, want(open))
	}

	// The packaged layout, root:tillkeep 0640: the service's group reads it.
	groupOnly := write("group.toml", minimalPlatform, 0o640)
	_, warnings, err = Loader{}.LoadPlatform(groupOnly)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("0640 file: warnings %q, want none", warnings)
	}

	private := write("private.toml", minimalAgent, 0o600)
	if _, warnings, err = (Loader{}).LoadAgent(private); err != nil || len(warnings) != 0 {
		t.Errorf("0600 file: warnings %q, err %v", warnings, err)
	}

	// Secrets in the environment, none in the file: a world-readable file is fine.
	noSecrets := write("nosecrets.toml", "store_id = \"S001\"\ntill_id = \"T01\"\n", 0o644)
	loader := Loader{LookupEnv: env{"TILLKEEP_POS_TOKEN": "pos-token-from-env-0123456789"}.lookup}
	if _, warnings, err = loader.LoadAgent(noSecrets); err != nil || len(warnings) != 0 {
		t.Errorf("file without secrets: warnings %q, err %v", warnings, err)
	}
}

func TestLoadErrors(t *testing.T) {
	_, err := LoadAgent(filepath.Join(t.TempDir(), "missing.toml"))
	if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "missing.toml") {
		t.Errorf("missing file: %v", err)
	}
	big := filepath.Join(t.TempDir(), "big.toml")
	if err := os.WriteFile(big, make([]byte, maxConfigFileBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPlatform(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized file: %v", err)
	}
}

func TestWarnings(t *testing.T) {
	cases := []struct {
		role, text, key, msg string
	}{
		{"agent", minimalAgent + "listen = \"0.0.0.0:7070\"\n", "listen", "accepts connections from other machines"},
		{"agent", minimalAgent + "listen = \":7070\"\n", "listen", "accepts connections from other machines"},
		{"agent", minimalAgent + "[platform]\nurl = \"http://coupons.example.com\"\n", "platform.url", "plain http"},
		{"agent", minimalAgent + "[platform]\nenroll_token = \"enroll-token-for-tests-0123456789\"\n", "platform.enroll_token", "never used"},
		{"platform", minimalPlatform + "[storage]\ndsn = \"postgres://localhost/db\"\n", "storage.dsn", "never used"},
	}
	for _, tc := range cases {
		var warnings []string
		var err error
		if tc.role == RoleAgent {
			_, warnings, err = Loader{}.ParseAgent("agent.toml", []byte(tc.text))
		} else {
			_, warnings, err = Loader{}.ParsePlatform("platform.toml", []byte(tc.text))
		}
		if err != nil {
			t.Errorf("%s: %v", tc.key, err)
			continue
		}
		if len(warnings) != 1 || !strings.Contains(warnings[0], "key "+tc.key+": ") || !strings.Contains(warnings[0], tc.msg) {
			t.Errorf("warnings %q, want one about %s saying %q", warnings, tc.key, tc.msg)
		}
	}
	// Loopback and http to loopback draw no warning.
	_, warnings, err := Loader{}.ParseAgent("agent.toml", []byte(minimalAgent+"listen = \"[::1]:7070\"\n[platform]\nurl = \"http://127.0.0.1:8080\"\n"))
	if err != nil || len(warnings) != 0 {
		t.Errorf("loopback: warnings %q err %v", warnings, err)
	}
}

func TestRelativeDataDir(t *testing.T) {
	cfg, err := ParseAgent("/etc/tillkeep/agent.toml", []byte(minimalAgent+"data_dir = \"state/agent\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/etc/tillkeep/state/agent" {
		t.Errorf("data_dir = %q, want it relative to the config file", cfg.DataDir)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err = Loader{LookupEnv: env{"TILLKEEP_DATA_DIR": "from-env"}.lookup}.ParseAgent("/etc/tillkeep/agent.toml", []byte(minimalAgent))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != filepath.Join(wd, "from-env") {
		t.Errorf("data_dir from env = %q, want it relative to the working directory %s", cfg.DataDir, wd)
	}
}

func TestRedacted(t *testing.T) {
	agent, err := LoadAgent("testdata/agent-good.toml")
	if err != nil {
		t.Fatal(err)
	}
	r := agent.Redacted()
	if r.PosToken != "REDACTED" || r.Platform.EnrollToken != "REDACTED" || r.StoreID != "S001" {
		t.Errorf("agent.Redacted() = %+v", r)
	}
	if agent.PosToken == "REDACTED" {
		t.Error("Redacted changed the original")
	}
	if empty := (Agent{}).Redacted(); empty.PosToken != "" {
		t.Errorf("an unset token must stay visibly unset, got %q", empty.PosToken)
	}

	platform, err := LoadPlatform("testdata/platform-good.toml")
	if err != nil {
		t.Fatal(err)
	}
	p := platform.Redacted()
	if p.AdminToken != "REDACTED" || p.EnrollToken != "REDACTED" {
		t.Errorf("platform.Redacted() tokens = %q %q", p.AdminToken, p.EnrollToken)
	}
	if p.Storage.DSN != "postgres://tillkeep:REDACTED@db.example.com:5432/tillkeep?sslmode=require" {
		t.Errorf("redacted DSN = %q", p.Storage.DSN)
	}
	for dsn, want := range map[string]string{
		"host=db user=tillkeep password=hunter2 dbname=tk": "host=db user=tillkeep password=REDACTED dbname=tk",
		"host=db password='hun ter2' dbname=tk":            "host=db password=REDACTED dbname=tk",
		"postgres://db/tk?user=tillkeep&password=hunter2":  "postgres://db/tk?password=REDACTED&user=tillkeep",
		"postgres://tillkeep@db/tk":                        "postgres://tillkeep@db/tk",
	} {
		if got := redactDSN(dsn); got != want {
			t.Errorf("redactDSN(%q) = %q, want %q", dsn, got, want)
		}
	}
}

func TestValidateBuiltInCode(t *testing.T) {
	a := DefaultAgent()
	if err := a.Validate(); err == nil {
		t.Error("DefaultAgent has no tokens or ids and must not validate")
	}
	a.PosToken, a.StoreID, a.TillID = "pos-token-for-tests-0123456789", "S001", "T01"
	if err := a.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	a.Offline.MaxCatalogAge = Duration{}
	var cfgErr *Error
	if err := a.Validate(); !errors.As(err, &cfgErr) || cfgErr.Key != "offline.max_catalog_age" {
		t.Errorf("Validate with zero max_catalog_age: %v", err)
	} else if !strings.HasPrefix(err.Error(), "key offline.max_catalog_age: ") {
		t.Errorf("an error without a file should start with the key: %q", err)
	}

	p := DefaultPlatform()
	p.AdminToken, p.EnrollToken = "admin-token-for-tests-0123456789", "enroll-token-for-tests-0123456789"
	if err := p.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestParseSchedule(t *testing.T) {
	good := []string{"@every 15s", "@every 1m30s", "@hourly", "@daily", "@weekly", "@monthly", "@yearly",
		"*/5 * * * *", "0 3 * * MON-FRI", "CRON_TZ=America/New_York 0 6 * * *", "TZ=UTC @every 1m", " @every 15s "}
	for _, spec := range good {
		sched, err := ParseSchedule(spec)
		if err != nil {
			t.Errorf("ParseSchedule(%q): %v", spec, err)
			continue
		}
		now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		if next := sched.Next(now); !next.After(now) {
			t.Errorf("ParseSchedule(%q).Next(%v) = %v", spec, now, next)
		}
	}
	bad := []string{"", "every 15s", "@every", "@every 15", "@every 0s", "@every -1m", "@sometimes",
		"* * * *", "* * * * * *", "60 * * * *", "*/0 * * * *", "TZ=UTC", "CRON_TZ=Nowhere/Land @hourly",
		"0 0 31 2 *", "TZ=UTC\t@hourly"}
	for _, spec := range bad {
		if _, err := ParseSchedule(spec); err == nil {
			t.Errorf("ParseSchedule(%q) accepted a bad spec", spec)
		}
	}
	if _, err := (ScheduleParser{}).Parse("@every 15s"); err != nil {
		t.Errorf("ScheduleParser: %v", err)
	}
}

func TestErrorFormat(t *testing.T) {
	cases := map[string]*Error{
		"agent.toml:7: key offline.enabled: bad":                                          {File: "agent.toml", Line: 7, Key: "offline.enabled", Msg: "bad"},
		"agent.toml: key pos_token: is required":                                          {File: "agent.toml", Key: "pos_token", Msg: "is required"},
		"agent.toml: key pos_token (from environment variable TILLKEEP_POS_TOKEN): short": {File: "agent.toml", Key: "pos_token", Env: "TILLKEEP_POS_TOKEN", Msg: "short"},
		"agent.toml:3: unexpected character":                                              {File: "agent.toml", Line: 3, Msg: "unexpected character"},
		"key till_id: is required":                                                        {Key: "till_id", Msg: "is required"},
	}
	for want, e := range cases {
		if got := e.Error(); got != want {
			t.Errorf("Error() = %q, want %q", got, want)
		}
	}
}

func TestPlaceholderTokenWarning(t *testing.T) {
	_, warnings, err := Loader{}.ParseAgent("agent.toml", []byte(strings.Replace(minimalAgent, "pos-token-for-tests", "change-me-pos-token", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "key pos_token: still holds the placeholder") {
		t.Errorf("warnings %q", warnings)
	}
}
