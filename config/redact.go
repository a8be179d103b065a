package config

import (
	"net/url"
	"regexp"
	"strings"
)

// Redacted is what secret values are replaced with in Redacted copies.
const Redacted = "REDACTED"

// Redacted returns a copy of a with its tokens replaced by "REDACTED", fit for a log
// line or `config show`. An unset token stays empty, so that the copy still shows
// whether it was set.
func (a Agent) Redacted() Agent {
	a.PosToken = redact(a.PosToken)
	a.Platform.EnrollToken = redact(a.Platform.EnrollToken)
	return a
}

// Redacted returns a copy of p with its tokens, and the password of its database DSN,
// replaced by "REDACTED".
func (p Platform) Redacted() Platform {
	p.AdminToken = redact(p.AdminToken)
	p.EnrollToken = redact(p.EnrollToken)
	p.Storage.DSN = redactDSN(p.Storage.DSN)
	return p
}

func redact(secret string) string {
	if secret == "" {
		return ""
	}
	return Redacted
}

// dsnPassword matches the password of a key=value DSN, quoted or not.
var dsnPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)`)

// redactDSN hides the password of a PostgreSQL DSN and keeps the rest (host, database,
// user), which is what someone reading a log needs.
func redactDSN(dsn string) string {
	if dsn == "" {
		return ""
	}
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return Redacted
		}
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), Redacted)
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", Redacted)
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	return dsnPassword.ReplaceAllString(dsn, "${1}"+Redacted)
}
