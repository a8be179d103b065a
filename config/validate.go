package config

import (
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// The secrets of each file: never in messages, redacted for logs, and the reason for
// the permission warning.
var (
	agentSecrets    = []string{"pos_token", "platform.enroll_token"}
	platformSecrets = []string{"admin_token", "enroll_token"}
)

// Validate checks a config built in code (tests, tools) as strictly as a file is
// checked. Errors have no file or line.
func (a Agent) Validate() error {
	_, errs := validateAgent(&a, &document{fromEnv: map[string]string{}})
	return joinErrors(errs)
}

// Validate checks a config built in code as strictly as a file is checked.
func (p Platform) Validate() error {
	_, errs := validatePlatform(&p, &document{fromEnv: map[string]string{}})
	return joinErrors(errs)
}

// validator collects the mistakes and warnings of one document, in file order.
type validator struct {
	doc      *document
	errs     []*Error
	warnings []string
}

func (v *validator) fail(key, format string, args ...any) {
	v.errs = append(v.errs, v.doc.errorf(key, format, args...))
}

func (v *validator) warn(key, format string, args ...any) {
	v.warnings = append(v.warnings, v.doc.errorf(key, format, args...).Error())
}

func (v *validator) result() ([]string, []*Error) {
	// Mistakes are reported in the order of the file; those without a line (missing
	// keys, environment) come last.
	sort.SliceStable(v.errs, func(i, j int) bool {
		li, lj := v.errs[i].Line, v.errs[j].Line
		if li == 0 || lj == 0 {
			return li != 0 && lj == 0
		}
		return li < lj
	})
	return v.warnings, v.errs
}

func validateAgent(a *Agent, doc *document) ([]string, []*Error) {
	v := &validator{doc: doc}
	if ok := v.listen("listen", a.Listen); ok && !isLoopbackListen(a.Listen) {
		v.warn("listen", "%q accepts connections from other machines; the POS API is meant for the POS on this till (127.0.0.1)", a.Listen)
	}
	v.dir("data_dir", a.DataDir)
	v.token("pos_token", a.PosToken, true)
	v.id("store_id", a.StoreID)
	v.id("till_id", a.TillID)

	if a.Platform.URL != "" {
		v.platformURL("platform.url", a.Platform.URL)
	}
	v.token("platform.enroll_token", a.Platform.EnrollToken, false)
	if a.Platform.URL == "" && a.Platform.EnrollToken != "" {
		v.warn("platform.enroll_token", "is set but platform.url is empty, so it is never used")
	}
	v.positive("platform.timeout", a.Platform.Timeout)

	if _, err := ParseSchedule(a.Sync.Schedule); err != nil {
		v.fail("sync.schedule", "%v", err)
	}

	if a.Offline.MaxDiscount < 0 {
		v.fail("offline.max_discount", "must be 0 or more minor units, got %d", a.Offline.MaxDiscount)
	}
	if a.Offline.MaxRedemptions < 0 {
		v.fail("offline.max_redemptions", "must be 0 or more, got %d", a.Offline.MaxRedemptions)
	}
	v.positive("offline.max_catalog_age", a.Offline.MaxCatalogAge)
	v.log(a.Log)
	return v.result()
}

func validatePlatform(p *Platform, doc *document) ([]string, []*Error) {
	v := &validator{doc: doc}
	v.listen("listen", p.Listen)
	v.dir("data_dir", p.DataDir)
	v.token("admin_token", p.AdminToken, true)
	v.token("enroll_token", p.EnrollToken, true)
	if p.AdminToken != "" && p.AdminToken == p.EnrollToken {
		// Every till holds the enroll token; if it were the admin token, every till
		// could revoke coupons and read every store.
		v.fail("enroll_token", "must differ from admin_token")
	}
	switch p.Storage.Driver {
	case DriverBolt:
		if p.Storage.DSN != "" {
			v.warn("storage.dsn", "is set but storage.driver is %q, so it is never used", DriverBolt)
		}
	case DriverPostgres:
		v.dsn("storage.dsn", p.Storage.DSN)
	default:
		v.fail("storage.driver", "must be %q or %q, got %q", DriverBolt, DriverPostgres, p.Storage.Driver)
	}
	v.positive("reconcile.max_clock_skew", p.Reconcile.MaxClockSkew)
	v.positive("feed.retention", p.Feed.Retention)
	v.log(p.Log)
	return v.result()
}

func (v *validator) listen(key, addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.fail(key, "must be host:port such as \"127.0.0.1:7070\", got %q", addr)
		return false
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		v.fail(key, "port %q must be a number from 0 to 65535", port)
		return false
	}
	if strings.ContainsFunc(host, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		v.fail(key, "host %q must not contain spaces", host)
		return false
	}
	return true
}

// isLoopbackListen reports whether addr only accepts connections from this machine.
// A host name other than localhost cannot be told without a lookup, so it is trusted.
func isLoopbackListen(addr string) bool {
	host, _, _ := net.SplitHostPort(addr)
	if host == "" {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return true
	}
	return ip.IsLoopback()
}

func (v *validator) dir(key, dir string) {
	switch {
	case dir == "":
		v.fail(key, "must name a directory")
	case strings.ContainsRune(dir, 0):
		v.fail(key, "must not contain a NUL byte")
	}
}

// placeholderPrefix starts the tokens of the shipped example files. A till deployed
// with one would accept any POS that read the example.
const placeholderPrefix = "change-me"

// token checks a bearer token's shape without ever putting it into a message.
func (v *validator) token(key, token string, required bool) {
	if strings.HasPrefix(token, placeholderPrefix) {
		v.warn(key, "still holds the placeholder of the example file: generate a real token with: openssl rand -hex 24")
	}
	switch {
	case token == "" && required:
		v.fail(key, "is required: set it in the file or in %s", EnvName(key))
	case token == "":
	case len(token) < minTokenLength:
		v.fail(key, "must be at least %d characters long, got %d (generate one with: openssl rand -hex 24)", minTokenLength, len(token))
	case strings.ContainsFunc(token, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r > unicode.MaxASCII }):
		v.fail(key, "must be printable ASCII without spaces")
	}
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func (v *validator) id(key, id string) {
	switch {
	case id == "":
		v.fail(key, "is required: set it in the file or in %s", EnvName(key))
	case !idPattern.MatchString(id):
		v.fail(key, "must be 1 to %d letters, digits, '_' or '-', got %q", maxIDLength, id)
	}
}

func (v *validator) platformURL(key, raw string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		v.fail(key, "must be an http or https URL such as \"https://coupons.example.com\", got %q", raw)
	case u.Scheme != "http" && u.Scheme != "https":
		v.fail(key, "must be an http or https URL such as \"https://coupons.example.com\", got %q", raw)
	case u.Host == "" || u.Hostname() == "":
		v.fail(key, "must name a host, got %q", raw)
	case u.User != nil:
		// Credentials in a URL end up in logs and proxies; tills authenticate with
		// their own tokens instead.
		v.fail(key, "must not hold a user name or password")
	case u.RawQuery != "" || u.Fragment != "":
		v.fail(key, "must not have a query or fragment, got %q", raw)
	case u.Scheme == "http" && !isLoopbackHost(u.Hostname()):
		v.warn(key, "uses plain http to another machine: tokens and redemptions cross the network unencrypted; use https")
	}
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// dsn checks a PostgreSQL connection string's shape: a postgres:// URL or key=value
// pairs. Its text is never echoed: it may hold a password.
func (v *validator) dsn(key, dsn string) {
	switch {
	case strings.TrimSpace(dsn) == "":
		v.fail(key, "is required when storage.driver is %q: set it in the file or in %s", DriverPostgres, EnvName(key))
	case strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://"):
		if u, err := url.Parse(dsn); err != nil || u.Host == "" && u.Query().Get("host") == "" {
			v.fail(key, "is not a valid postgres:// URL (expected postgres://user@host:5432/db)")
		}
	case strings.Contains(dsn, "://"):
		v.fail(key, "must be a postgres:// URL or key=value pairs such as \"host=localhost dbname=tillkeep\"")
	case !strings.Contains(dsn, "="):
		v.fail(key, "must be a postgres:// URL or key=value pairs such as \"host=localhost dbname=tillkeep\"")
	}
}

func (v *validator) positive(key string, d Duration) {
	if d.Duration <= 0 {
		v.fail(key, "must be a positive duration such as \"800ms\" or \"72h\", got %q", d.Duration.String())
	}
}

// LogLevels are the values log.level accepts, least severe first.
func LogLevels() []string { return []string{"debug", "info", "warn", "error"} }

// LogFormats are the values log.format accepts.
func LogFormats() []string { return []string{"text", "json"} }

func (v *validator) log(l Log) {
	if !slices.Contains(LogLevels(), l.Level) {
		v.fail("log.level", "must be one of %s, got %q", strings.Join(LogLevels(), ", "), l.Level)
	}
	if !slices.Contains(LogFormats(), l.Format) {
		v.fail("log.format", "must be one of %s, got %q", strings.Join(LogFormats(), ", "), l.Format)
	}
}
