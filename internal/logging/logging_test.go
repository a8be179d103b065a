package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep/config"
)

func TestJSONFormatAndLevel(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(config.Log{Level: "warn", Format: "json"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown", "till_id", "T01")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one line at level warn, got %q", buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatalf("not JSON: %v: %s", err, lines[0])
	}
	if rec["msg"] != "shown" || rec["level"] != "WARN" || rec["till_id"] != "T01" {
		t.Errorf("record %v", rec)
	}
	ts, err := time.Parse(time.RFC3339Nano, rec["time"].(string))
	if err != nil {
		t.Fatalf("time %v: %v", rec["time"], err)
	}
	if _, offset := ts.Zone(); offset != 0 || !strings.HasSuffix(rec["time"].(string), "Z") {
		t.Errorf("time %v is not UTC", rec["time"])
	}
}

func TestTextFormatAndDefaults(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(config.Log{}, &buf) // empty: info, text
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("hidden")
	log.Info("hello", "store_id", "S001")
	out := buf.String()
	if strings.Contains(out, "hidden") || !strings.Contains(out, "level=INFO msg=hello store_id=S001") {
		t.Errorf("text output %q", out)
	}
	buf.Reset()
	log, err = New(config.Log{Level: "debug", Format: "text"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("visible")
	if !strings.Contains(buf.String(), "level=DEBUG msg=visible") {
		t.Errorf("debug output %q", buf.String())
	}
}

func TestBadConfig(t *testing.T) {
	if _, err := New(config.Log{Level: "loud", Format: "text"}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), `"loud"`) {
		t.Errorf("bad level: %v", err)
	}
	if _, err := New(config.Log{Level: "info", Format: "xml"}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), `"xml"`) {
		t.Errorf("bad format: %v", err)
	}
	if _, err := New(config.Log{}, nil); err == nil {
		t.Error("nil writer accepted")
	}
}

// Every level config accepts, the logger accepts.
func TestEveryConfigLevelParses(t *testing.T) {
	prev := slog.Level(-100)
	for _, name := range config.LogLevels() {
		level, err := ParseLevel(name)
		if err != nil {
			t.Fatalf("ParseLevel(%q): %v", name, err)
		}
		if level <= prev {
			t.Errorf("level %q (%v) is not above the one before it", name, level)
		}
		prev = level
	}
	for _, format := range config.LogFormats() {
		if _, err := New(config.Log{Format: format}, &bytes.Buffer{}); err != nil {
			t.Errorf("format %q: %v", format, err)
		}
	}
}

func TestSecretsAreRedacted(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(config.Log{Level: "info", Format: "json"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	agent := config.DefaultAgent()
	agent.PosToken = "pos-secret-0123456789"
	agent.Platform.EnrollToken = "enroll-secret-0123456789"
	platform := config.DefaultPlatform()
	platform.AdminToken = "admin-secret-0123456789"
	platform.Storage.DSN = "postgres://u:dsn-secret@db/tk"
	log.Info("start",
		"pos_token", "pos-secret-0123456789",
		slog.Group("http", "Authorization", "Bearer header-secret"),
		"password", "pw-secret",
		"config", agent,
		"platform", &platform,
		"unset_token", "",
		"store_id", "S001",
	)
	out := buf.String()
	for _, secret := range []string{"pos-secret", "enroll-secret", "admin-secret", "header-secret", "pw-secret", "dsn-secret"} {
		if strings.Contains(out, secret) {
			t.Errorf("log line holds %s: %s", secret, out)
		}
	}
	if !strings.Contains(out, `"store_id":"S001"`) || !strings.Contains(out, `"unset_token":""`) || !strings.Contains(out, "REDACTED") {
		t.Errorf("log line lost non-secret data: %s", out)
	}
}
