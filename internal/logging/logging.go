package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/tillkeep/tillkeep/config"
)

// New returns a logger writing to w at cfg.Level ("debug", "info", "warn", "error")
// in cfg.Format ("text" or "json"). Empty fields take the config defaults.
func New(cfg config.Log, w io.Writer) (*slog.Logger, error) {
	if w == nil {
		return nil, fmt.Errorf("new logger: no writer")
	}
	level, err := ParseLevel(cfg.Level)
	if err != nil {
		return nil, fmt.Errorf("new logger: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: replaceAttr}
	format := cfg.Format
	if format == "" {
		format = config.DefaultLogFormat
	}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("new logger: log format %q is not one of %s", cfg.Format, strings.Join(config.LogFormats(), ", "))
}

// ParseLevel reads a log.level value; "" is the default, info.
func ParseLevel(s string) (slog.Level, error) {
	switch s {
	case "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log level %q is not one of %s", s, strings.Join(config.LogLevels(), ", "))
}

// replaceAttr writes times in UTC, the one zone tillkeep reasons in, so that the logs of
// tills in several zones and of the platform line up. It also redacts secrets that a
// careless call site might log: attributes named like a token or password, and whole
// configs logged without Redacted().
func replaceAttr(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindTime {
		a.Value = slog.TimeValue(a.Value.Time().UTC())
		return a
	}
	if isSecretKey(a.Key) {
		if a.Value.Kind() == slog.KindString && a.Value.String() == "" {
			return a
		}
		a.Value = slog.StringValue(config.Redacted)
		return a
	}
	if a.Value.Kind() == slog.KindAny {
		switch v := a.Value.Any().(type) {
		case config.Agent:
			a.Value = slog.AnyValue(v.Redacted())
		case *config.Agent:
			if v != nil {
				a.Value = slog.AnyValue(v.Redacted())
			}
		case config.Platform:
			a.Value = slog.AnyValue(v.Redacted())
		case *config.Platform:
			if v != nil {
				a.Value = slog.AnyValue(v.Redacted())
			}
		}
	}
	return a
}

// isSecretKey reports whether an attribute key names a secret: pos_token, admin_token,
// enroll_token, token, password, secret, authorization, dsn (it may hold a password).
func isSecretKey(key string) bool {
	k := strings.ToLower(key)
	switch k {
	case "token", "password", "passwd", "secret", "authorization", "dsn":
		return true
	}
	return strings.HasSuffix(k, "_token") || strings.HasSuffix(k, "_password") || strings.HasSuffix(k, "_secret")
}
