package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// These tests check the client side of the ops API: that each command sends the
// method, path, token and body the platform expects, and turns answers into output and
// exit statuses. The platform's handlers have their own tests.

const opsTestToken = "admin-token-for-ops-tests-0123456789"

// opsSeen is one request the fake platform received.
type opsSeen struct {
	method, path, rawQuery, auth, contentType string
	body                                      []byte
}

// opsFake is a stand-in platform that records requests and answers with answer.
type opsFake struct {
	srv    *httptest.Server
	mu     sync.Mutex
	seen   []opsSeen
	answer http.HandlerFunc
}

func newOpsFake(t *testing.T) *opsFake {
	t.Helper()
	f := &opsFake{answer: func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.seen = append(f.seen, opsSeen{method: r.Method, path: r.URL.EscapedPath(), rawQuery: r.URL.RawQuery,
			auth: r.Header.Get("Authorization"), contentType: r.Header.Get("Content-Type"), body: body})
		answer := f.answer
		f.mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *opsFake) requests() []opsSeen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]opsSeen(nil), f.seen...)
}

func (f *opsFake) reply(status int, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answer = func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// opsUnsetEnv removes the admin token variable for the test, so that the runner's
// environment cannot leak into it.
func opsUnsetEnv(t *testing.T) {
	t.Helper()
	t.Setenv(opsTokenEnv, "")
	_ = os.Unsetenv(opsTokenEnv)
}

// opsExec runs "tillkeep args..." and returns its output and exit status.
func opsExec(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int, err error) {
	t.Helper()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = root.ExecuteContext(ctx)
	code = 0
	if err != nil {
		code = 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
	}
	return out.String(), errOut.String(), code, err
}

// opsArgs prefixes a command with the fake's URL and the test token.
func (f *opsFake) args(args ...string) []string {
	return append([]string{"ops", "--url", f.srv.URL, "--token", opsTestToken}, args...)
}

func opsWriteFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func opsSameJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("body %q is not JSON: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad expectation %q: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("body %s, want %s", got, want)
	}
}

func TestOpsCommandsSendTheRightRequests(t *testing.T) {
	opsUnsetEnv(t)
	offerFile := opsWriteFile(t, "offer.json", `{"id": "SPRING40", "name": "Spring", "discount": {"type": "fixed", "amount": 4000, "currency": "USD"}}`)
	codesFile := opsWriteFile(t, "codes.csv", "SPR-1,C1\nSPR-2\n")
	customersFile := opsWriteFile(t, "customers.csv", "C1\nC2,SPR-9\n")
	for _, tc := range []struct {
		name        string
		args        []string
		method      string
		path        string
		rawQuery    string
		contentType string
		// body is the expected JSON body ("" for none); rawBody an exact non-JSON body.
		body, rawBody string
	}{
		{name: "put store", args: []string{"stores", "put", "S001", "--name", "Main Street", "--zone", "EAST", "--concept", "mall",
			"--timezone", "America/New_York", "--currency", "USD"},
			method: "PUT", path: "/v1/stores/S001", contentType: "application/json",
			body: `{"name": "Main Street", "zone": "EAST", "concept": "mall", "timezone": "America/New_York", "currency": "USD"}`},
		{name: "get store", args: []string{"stores", "get", "S001"}, method: "GET", path: "/v1/stores/S001"},
		{name: "list stores", args: []string{"stores", "list"}, method: "GET", path: "/v1/stores"},
		{name: "put customer with some fields", args: []string{"customers", "put", "C1", "--mobile", "+15550100",
			"--registered-at", "2026-01-15T10:00:00+01:00", "--transactions", "0"},
			method: "PUT", path: "/v1/customers/C1", contentType: "application/json",
			body: `{"mobile": "+15550100", "registered_at": "2026-01-15T09:00:00Z", "transactions": 0}`},
		{name: "put customer without fields", args: []string{"customers", "put", "C2"},
			method: "PUT", path: "/v1/customers/C2", contentType: "application/json", body: `{}`},
		{name: "get customer", args: []string{"customers", "get", "C1"}, method: "GET", path: "/v1/customers/C1"},
		{name: "create offer", args: []string{"offers", "create", "--file", offerFile}, method: "POST", path: "/v1/offers",
			contentType: "application/json", body: `{"id": "SPRING40", "name": "Spring", "discount": {"type": "fixed", "amount": 4000, "currency": "USD"}}`},
		{name: "get offer", args: []string{"offers", "get", "SPRING40"}, method: "GET", path: "/v1/offers/SPRING40"},
		{name: "list offers", args: []string{"offers", "list"}, method: "GET", path: "/v1/offers"},
		{name: "add codes", args: []string{"coupons", "add", "SPRING40", "SPR-1", "SPR-2"}, method: "POST",
			path: "/v1/offers/SPRING40/coupons", contentType: "application/json", body: `{"codes": ["SPR-1", "SPR-2"]}`},
		{name: "generate", args: []string{"coupons", "generate", "SPRING40", "--count", "30000000", "--length", "10"}, method: "POST",
			path: "/v1/offers/SPRING40/coupons", contentType: "application/json", body: `{"generate": {"count": 30000000, "length": 10}}`},
		{name: "generate numeric with prefix", args: []string{"coupons", "generate", "SPRING40", "--count", "5", "--length", "12",
			"--charset", "numeric", "--prefix", "77"}, method: "POST", path: "/v1/offers/SPRING40/coupons", contentType: "application/json",
			body: `{"generate": {"count": 5, "length": 12, "charset": "numeric", "prefix": "77"}}`},
		{name: "common code", args: []string{"coupons", "common", "WELCOME10", "WELCOME10"}, method: "POST",
			path: "/v1/offers/WELCOME10/coupons", contentType: "application/json", body: `{"common": {"code": "WELCOME10"}}`},
		{name: "randomized common", args: []string{"coupons", "randomized", "FEST", "--fixed", "FEST", "--count", "100", "--length", "9"},
			method: "POST", path: "/v1/offers/FEST/coupons", contentType: "application/json",
			body: `{"randomized_common": {"fixed": "FEST", "count": 100, "length": 9}}`},
		{name: "upload codes", args: []string{"coupons", "upload", "SPRING40", "--file", codesFile}, method: "POST",
			path: "/v1/offers/SPRING40/coupons/upload", contentType: "text/csv", rawBody: "SPR-1,C1\nSPR-2\n"},
		{name: "get coupon with odd characters", args: []string{"coupons", "get", "A/B C"}, method: "GET", path: "/v1/coupons/A%2FB%20C"},
		{name: "issue from a file", args: []string{"issue", "SPRING40", "--file", customersFile}, method: "POST",
			path: "/v1/offers/SPRING40/issue", contentType: "text/csv", rawBody: "C1\nC2,SPR-9\n"},
		{name: "issue to customers", args: []string{"issue", "SPRING40", "--customer", "C1,C2", "--customer", "C3"}, method: "POST",
			path: "/v1/offers/SPRING40/issue", contentType: "application/json", body: `{"customers": ["C1", "C2", "C3"]}`},
		{name: "revoke codes", args: []string{"revoke", "--code", "SPR-1", "--code", "SPR-2"}, method: "POST", path: "/v1/coupons/revoke",
			contentType: "application/json", body: `{"codes": ["SPR-1", "SPR-2"]}`},
		{name: "revoke unredeemed", args: []string{"revoke", "--offer", "SPRING40", "--scope", "unredeemed"}, method: "POST",
			path: "/v1/coupons/revoke", contentType: "application/json", body: `{"offer_id": "SPRING40", "scope": "unredeemed"}`},
		{name: "revoke unissued", args: []string{"revoke", "--offer", "SPRING40", "--scope", "unissued"}, method: "POST",
			path: "/v1/coupons/revoke", contentType: "application/json", body: `{"offer_id": "SPRING40", "scope": "unissued"}`},
		{name: "revoke customers", args: []string{"revoke", "--offer", "SPRING40", "--scope", "customers", "--customer", "C1", "--customer", "C2"},
			method: "POST", path: "/v1/coupons/revoke", contentType: "application/json",
			body: `{"offer_id": "SPRING40", "scope": "customers", "customers": ["C1", "C2"]}`},
		{name: "list redemptions with filters", args: []string{"redemptions", "list", "--till", "T01", "--store", "S001", "--offer", "SPRING40",
			"--code", "SPR-1", "--mode", "offline", "--status", "conflict", "--from", "2026-03-01T00:00:00Z", "--to", "2026-03-02T00:00:00-05:00", "--limit", "50"},
			method: "GET", path: "/v1/redemptions",
			rawQuery: "code=SPR-1&from=2026-03-01T00%3A00%3A00Z&limit=50&mode=offline&offer_id=SPRING40&status=conflict&store_id=S001&till_id=T01&to=2026-03-02T05%3A00%3A00Z"},
		{name: "list redemptions from a cursor", args: []string{"redemptions", "list", "--cursor", "abc"}, method: "GET", path: "/v1/redemptions",
			rawQuery: "cursor=abc"},
		{name: "get redemption", args: []string{"redemptions", "get", "0192f1c4-aaaa"}, method: "GET", path: "/v1/redemptions/0192f1c4-aaaa"},
		{name: "list stores from a cursor", args: []string{"stores", "list", "--cursor", "S050", "--limit", "5"}, method: "GET", path: "/v1/stores",
			rawQuery: "after=S050&limit=5"},
		{name: "list tills of a store", args: []string{"tills", "list", "--store", "S001"}, method: "GET", path: "/v1/tills", rawQuery: "store_id=S001"},
		{name: "reset a till's enrollment", args: []string{"tills", "reset", "S001", "T01"}, method: "DELETE", path: "/v1/tills/S001/T01/enrollment"},
		{name: "list anomalies", args: []string{"anomalies", "list"}, method: "GET", path: "/v1/anomalies"},
		{name: "reverse redemption", args: []string{"redemptions", "reverse", "0192f1c4-aaaa"}, method: "POST", path: "/v1/redemptions/0192f1c4-aaaa/reverse"},
		{name: "list conflicts", args: []string{"conflicts", "list"}, method: "GET", path: "/v1/conflicts"},
		{name: "list open conflicts", args: []string{"conflicts", "list", "--status", "open"}, method: "GET", path: "/v1/conflicts", rawQuery: "status=open"},
		{name: "get conflict", args: []string{"conflicts", "get", "K1"}, method: "GET", path: "/v1/conflicts/K1"},
		{name: "resolve conflict", args: []string{"conflicts", "resolve", "K1", "--action", "accept_loss", "--note", "two tills offline"},
			method: "POST", path: "/v1/conflicts/K1/resolve", contentType: "application/json",
			body: `{"action": "accept_loss", "note": "two tills offline"}`},
		{name: "list tills", args: []string{"tills", "list"}, method: "GET", path: "/v1/tills"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newOpsFake(t)
			stdout, stderr, code, err := opsExec(t, "", fake.args(tc.args...)...)
			if err != nil || code != 0 {
				t.Fatalf("exit %d, err %v, stderr %q", code, err, stderr)
			}
			reqs := fake.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.method != tc.method || r.path != tc.path || r.rawQuery != tc.rawQuery {
				t.Fatalf("request %s %s?%s, want %s %s?%s", r.method, r.path, r.rawQuery, tc.method, tc.path, tc.rawQuery)
			}
			if r.auth != "Bearer "+opsTestToken {
				t.Fatalf("Authorization %q", r.auth)
			}
			if r.contentType != tc.contentType {
				t.Fatalf("Content-Type %q, want %q", r.contentType, tc.contentType)
			}
			switch {
			case tc.body != "":
				opsSameJSON(t, r.body, tc.body)
			case tc.rawBody != "":
				if string(r.body) != tc.rawBody {
					t.Fatalf("body %q, want %q", r.body, tc.rawBody)
				}
			case len(r.body) != 0:
				t.Fatalf("unexpected body %q", r.body)
			}
			if stdout != "{\n  \"ok\": true\n}\n" {
				t.Fatalf("stdout %q, want the answer indented", stdout)
			}
		})
	}
}

func TestOpsRefusesBadArgumentsBeforeCalling(t *testing.T) {
	opsUnsetEnv(t)
	badJSON := opsWriteFile(t, "offer.json", `{"id": "X",`)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"revoke"}, "give --code"},
		{[]string{"revoke", "--code", "A", "--offer", "O"}, "not both"},
		{[]string{"revoke", "--code", "A", "--scope", "unissued"}, "go with --offer"},
		{[]string{"revoke", "--offer", "O"}, "--scope must be"},
		{[]string{"revoke", "--offer", "O", "--scope", "everything"}, "--scope must be"},
		{[]string{"revoke", "--offer", "O", "--scope", "customers"}, "at least one --customer"},
		{[]string{"revoke", "--offer", "O", "--scope", "unissued", "--customer", "C1"}, "--customer goes with --scope customers"},
		{[]string{"conflicts", "resolve", "K1", "--action", "forgive", "--note", "x"}, "--action must be"},
		{[]string{"conflicts", "resolve", "K1", "--action", "reverse", "--note", "  "}, "--note"},
		{[]string{"conflicts", "list", "--status", "closed"}, "--status must be"},
		{[]string{"redemptions", "list", "--from", "yesterday"}, "--from"},
		{[]string{"redemptions", "list", "--mode", "both"}, "--mode"},
		{[]string{"redemptions", "list", "--status", "done"}, "--status"},
		{[]string{"redemptions", "list", "--limit", "-1"}, "--limit"},
		{[]string{"customers", "put", "C1", "--registered-at", "15/01/2026"}, "--registered-at"},
		{[]string{"customers", "put", "C1", "--transactions", "-1"}, "--transactions"},
		{[]string{"offers", "create", "--file", badJSON}, "not valid JSON"},
		{[]string{"offers", "create", "--file", filepath.Join(t.TempDir(), "missing.json")}, "no such file"},
		{[]string{"coupons", "upload", "O", "--file", t.TempDir()}, "not a regular file"},
		{[]string{"coupons", "generate", "O", "--count", "0", "--length", "10"}, "--count"},
		{[]string{"issue", "O"}, "--file customers.csv or at least one --customer"},
		{[]string{"issue", "O", "--file", badJSON, "--customer", "C1"}, "not both"},
	} {
		fake := newOpsFake(t)
		_, _, code, err := opsExec(t, "", fake.args(tc.args...)...)
		if code != opsExitFailed || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: exit %d, err %v; want exit 1 and %q", tc.args, code, err, tc.want)
			continue
		}
		if !strings.HasPrefix(err.Error(), "invalid_request: ") {
			t.Errorf("%v: error %q does not start with its code", tc.args, err)
		}
		if n := len(fake.requests()); n != 0 {
			t.Errorf("%v: %d requests sent for a refused command", tc.args, n)
		}
	}
}

func TestOpsAnswersBecomeExitStatuses(t *testing.T) {
	opsUnsetEnv(t)
	for _, tc := range []struct {
		status int
		body   string
		code   int
		want   string
	}{
		{422, `{"error": {"code": "nothing_created", "message": "every code already exists"}}`, opsExitRefused,
			"nothing_created: every code already exists"},
		{422, `{"error": {"code": "rule_violation", "message": "bill under 100.00", "rule": "min_bill"}}`, opsExitRefused,
			"rule_violation: bill under 100.00 (rule min_bill)"},
		{401, `{"error": {"code": "unauthorized", "message": "wrong bearer token"}}`, opsExitFailed, "unauthorized: wrong bearer token"},
		{404, `{"error": {"code": "not_found", "message": "no offer SPRING40"}}`, opsExitFailed, "not_found: no offer SPRING40"},
		{409, `{"error": {"code": "conflict", "message": "already resolved"}}`, opsExitFailed, "conflict: already resolved"},
		{502, `<html>Bad Gateway</html>`, opsExitFailed, "unavailable: HTTP 502 from "},
		{500, ``, opsExitFailed, "internal: HTTP 500"},
	} {
		fake := newOpsFake(t)
		fake.reply(tc.status, tc.body)
		stdout, _, code, err := opsExec(t, "", fake.args("coupons", "add", "SPRING40", "A")...)
		if code != tc.code || err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("HTTP %d: exit %d, err %v; want exit %d and %q", tc.status, code, err, tc.code, tc.want)
		}
		if stdout != "" {
			t.Errorf("HTTP %d: an error answer was printed as a result: %q", tc.status, stdout)
		}
	}
}

func TestOpsUnreachablePlatform(t *testing.T) {
	opsUnsetEnv(t)
	fake := newOpsFake(t)
	fake.srv.Close()
	_, _, code, err := opsExec(t, "", fake.args("tills", "list")...)
	if code != opsExitFailed || err == nil || !strings.HasPrefix(err.Error(), "unavailable: GET "+fake.srv.URL+"/v1/tills") {
		t.Fatalf("exit %d, err %v", code, err)
	}
}

func TestOpsLongCallsStopAtTimeout(t *testing.T) {
	opsUnsetEnv(t)
	fake := newOpsFake(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	fake.answer = func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
	file := opsWriteFile(t, "codes.csv", "A\n")
	start := time.Now()
	_, _, code, err := opsExec(t, "", fake.args("--timeout", "200ms", "coupons", "upload", "O", "--file", file)...)
	if code != opsExitFailed || err == nil || !strings.Contains(err.Error(), "no answer within --timeout 200ms") {
		t.Fatalf("exit %d, err %v", code, err)
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Fatalf("took %s to give up", elapsed)
	}
}

func TestOpsTokenAndURLResolution(t *testing.T) {
	fake := newOpsFake(t)

	t.Run("no token", func(t *testing.T) {
		opsUnsetEnv(t)
		_, _, code, err := opsExec(t, "", "ops", "--url", fake.srv.URL, "tills", "list")
		if code != opsExitFailed || err == nil || !strings.HasPrefix(err.Error(), "unauthorized: no admin token") {
			t.Fatalf("exit %d, err %v", code, err)
		}
	})
	t.Run("token from the environment", func(t *testing.T) {
		t.Setenv(opsTokenEnv, "env-token-0123456789abcdef")
		if _, _, code, err := opsExec(t, "", "ops", "--url", fake.srv.URL, "tills", "list"); code != 0 {
			t.Fatalf("exit %d, err %v", code, err)
		}
		if got := opsLastAuth(fake); got != "Bearer env-token-0123456789abcdef" {
			t.Fatalf("Authorization %q", got)
		}
	})
	t.Run("flag over environment", func(t *testing.T) {
		t.Setenv(opsTokenEnv, "env-token-0123456789abcdef")
		if _, _, code, err := opsExec(t, "", fake.args("tills", "list")...); code != 0 {
			t.Fatalf("exit %d, err %v", code, err)
		}
		if got := opsLastAuth(fake); got != "Bearer "+opsTestToken {
			t.Fatalf("Authorization %q", got)
		}
	})
	t.Run("url and token from platform.toml", func(t *testing.T) {
		opsUnsetEnv(t)
		listen := strings.TrimPrefix(fake.srv.URL, "http://")
		cfg := opsWriteFile(t, "platform.toml", `listen = "`+listen+`"
data_dir = "`+t.TempDir()+`"
admin_token = "config-admin-token-0123456789"
enroll_token = "config-enroll-token-0123456789"
`)
		if _, stderr, code, err := opsExec(t, "", "ops", "--config", cfg, "tills", "list"); code != 0 {
			t.Fatalf("exit %d, err %v, stderr %q", code, err, stderr)
		}
		if got := opsLastAuth(fake); got != "Bearer config-admin-token-0123456789" {
			t.Fatalf("Authorization %q", got)
		}
	})
	t.Run("unusable platform.toml", func(t *testing.T) {
		opsUnsetEnv(t)
		cfg := opsWriteFile(t, "platform.toml", "listen = 8080\nbogus = 1\n")
		if _, _, code, err := opsExec(t, "", "ops", "--config", cfg, "tills", "list"); code != exitBadPlatformConfig || err == nil {
			t.Fatalf("exit %d, err %v; want %d", code, err, exitBadPlatformConfig)
		}
	})
	t.Run("bad url", func(t *testing.T) {
		_, _, code, err := opsExec(t, "", "ops", "--url", "ftp://example.com", "--token", opsTestToken, "tills", "list")
		if code != opsExitFailed || err == nil || !strings.Contains(err.Error(), "not an http(s) URL") {
			t.Fatalf("exit %d, err %v", code, err)
		}
	})
}

func opsLastAuth(f *opsFake) string {
	reqs := f.requests()
	if len(reqs) == 0 {
		return ""
	}
	return reqs[len(reqs)-1].auth
}

func TestOpsUploadPointsAtTheReport(t *testing.T) {
	opsUnsetEnv(t)
	fake := newOpsFake(t)
	fake.reply(http.StatusOK, `{"created": 2, "issued": 1, "errors": [{"row": 3, "reason": "duplicate_code"}], "report_id": "R42"}`)
	file := opsWriteFile(t, "codes.csv", "A\nB\nA\n")
	stdout, stderr, code, err := opsExec(t, "", fake.args("coupons", "upload", "SPRING40", "--file", file)...)
	if code != 0 {
		t.Fatalf("exit %d, err %v", code, err)
	}
	if !strings.Contains(stdout, `"report_id": "R42"`) {
		t.Fatalf("stdout %q", stdout)
	}
	if !strings.Contains(stderr, "report R42") || !strings.Contains(stderr, "tillkeep ops reports get R42") {
		t.Fatalf("stderr %q does not point at the report", stderr)
	}
	// Nothing refused: no hint.
	fake.reply(http.StatusOK, `{"issued": 3, "errors": []}`)
	_, stderr, _, _ = opsExec(t, "", fake.args("issue", "SPRING40", "--customer", "C1")...)
	if stderr != "" {
		t.Fatalf("stderr %q for a batch without refusals", stderr)
	}
}

func TestOpsUploadFromStdin(t *testing.T) {
	opsUnsetEnv(t)
	fake := newOpsFake(t)
	if _, _, code, err := opsExec(t, "C1\nC2\n", fake.args("issue", "SPRING40", "--file", "-")...); code != 0 {
		t.Fatalf("exit %d, err %v", code, err)
	}
	if r := fake.requests()[0]; string(r.body) != "C1\nC2\n" || r.contentType != "text/csv" {
		t.Fatalf("request %+v", r)
	}
}

func TestOpsReportDownload(t *testing.T) {
	opsUnsetEnv(t)
	const report = "row,customer_id,code,reason,message\n4,U1,,max_per_customer,the customer already holds 3 coupons\n"
	fake := newOpsFake(t)
	fake.answer = func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/reports/R42" {
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error": {"code": "not_found", "message": "no report"}}`)
			return
		}
		w.Header().Set("Content-Type", "text/csv")
		_, _ = io.WriteString(w, report)
	}
	stdout, _, code, err := opsExec(t, "", fake.args("reports", "get", "R42")...)
	if code != 0 || stdout != report {
		t.Fatalf("exit %d, err %v, stdout %q", code, err, stdout)
	}
	out := filepath.Join(t.TempDir(), "report.csv")
	if _, _, code, err := opsExec(t, "", fake.args("reports", "get", "R42", "--out", out)...); code != 0 {
		t.Fatalf("exit %d, err %v", code, err)
	}
	data, err := os.ReadFile(out)
	if err != nil || string(data) != report {
		t.Fatalf("saved %q, %v", data, err)
	}
	if info, _ := os.Stat(out); info.Mode().Perm() != 0o600 {
		t.Fatalf("report mode %v, want 0600", info.Mode().Perm())
	}
	missing := filepath.Join(t.TempDir(), "missing.csv")
	if _, _, code, err := opsExec(t, "", fake.args("reports", "get", "R0", "--out", missing)...); code != opsExitFailed || !strings.HasPrefix(err.Error(), "not_found") {
		t.Fatalf("exit %d, err %v", code, err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatal("a failed download left a file")
	}
}

func TestOpsListAllRedemptionsFollowsTheCursor(t *testing.T) {
	opsUnsetEnv(t)
	fake := newOpsFake(t)
	fake.answer = func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("cursor") {
		case "":
			_, _ = io.WriteString(w, `{"redemptions": [{"id": "R1"}, {"id": "R2"}], "next_cursor": "c2"}`)
		case "c2":
			_, _ = io.WriteString(w, `{"redemptions": [{"id": "R3", "bill": {"amount": 100, "currency": "USD"}}], "next_cursor": ""}`)
		default:
			w.WriteHeader(http.StatusBadRequest)
		}
	}
	stdout, _, code, err := opsExec(t, "", fake.args("redemptions", "list", "--store", "S001", "--all", "--limit", "2")...)
	if code != 0 {
		t.Fatalf("exit %d, err %v", code, err)
	}
	var all struct {
		Redemptions []struct {
			ID string `json:"id"`
		} `json:"redemptions"`
	}
	if err := json.Unmarshal([]byte(stdout), &all); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout)
	}
	if len(all.Redemptions) != 3 || all.Redemptions[2].ID != "R3" {
		t.Fatalf("redemptions %+v", all.Redemptions)
	}
	reqs := fake.requests()
	if len(reqs) != 2 || reqs[1].rawQuery != "cursor=c2&limit=2&store_id=S001" {
		t.Fatalf("requests %+v", reqs)
	}

	// An empty list is still a JSON object with a list.
	fake.reply(http.StatusOK, `{"redemptions": [], "next_cursor": ""}`)
	stdout, _, _, _ = opsExec(t, "", fake.args("redemptions", "list", "--all")...)
	if err := json.Unmarshal([]byte(stdout), &all); err != nil || all.Redemptions == nil || len(all.Redemptions) != 0 {
		t.Fatalf("empty list printed as %q (%v)", stdout, err)
	}
}

func TestOpsProgress(t *testing.T) {
	var screen bytes.Buffer
	p := &opsProgress{r: strings.NewReader(strings.Repeat("x", 3000)), w: &screen, name: "codes.csv", total: 3000}
	if _, err := io.Copy(io.Discard, p); err != nil {
		t.Fatal(err)
	}
	p.finish()
	out := screen.String()
	if !strings.Contains(out, "upload codes.csv: 2.9 KiB of 2.9 KiB sent (100%)") || !strings.HasSuffix(out, "waiting for the platform to process it...\n") {
		t.Fatalf("progress output %q", out)
	}
	if opsIsTerminal(&screen) {
		t.Fatal("a buffer was taken for a terminal")
	}
	for n, want := range map[int64]string{12: "12 B", 2048: "2.0 KiB", 5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := opsBytes(n); got != want {
			t.Errorf("opsBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestOpsListAllConflictsUsesAfter(t *testing.T) {
	opsUnsetEnv(t)
	fake := newOpsFake(t)
	fake.answer = func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("after") == "" {
			_, _ = io.WriteString(w, `{"conflicts": [{"id": "K1", "kind": "double_redemption"}], "next_cursor": "K1"}`)
			return
		}
		_, _ = io.WriteString(w, `{"conflicts": [{"id": "K2", "kind": "unknown_coupon"}], "next_cursor": ""}`)
	}
	stdout, _, code, err := opsExec(t, "", fake.args("conflicts", "list", "--status", "open", "--all")...)
	if code != 0 {
		t.Fatalf("exit %d, err %v", code, err)
	}
	var all struct {
		Conflicts []struct {
			ID string `json:"id"`
		} `json:"conflicts"`
	}
	if err := json.Unmarshal([]byte(stdout), &all); err != nil || len(all.Conflicts) != 2 || all.Conflicts[1].ID != "K2" {
		t.Fatalf("output %q (%v)", stdout, err)
	}
	if reqs := fake.requests(); len(reqs) != 2 || reqs[1].rawQuery != "after=K1&status=open" {
		t.Fatalf("requests %+v", reqs)
	}
	// A page that is not the expected shape is an error, not silence.
	fake.reply(http.StatusOK, `{"items": []}`)
	if _, _, code, err := opsExec(t, "", fake.args("conflicts", "list", "--all")...); code != opsExitFailed || err == nil {
		t.Fatalf("exit %d, err %v", code, err)
	}
}

// TestOpsUploadRefusedBeforeTheBody checks that a platform refusing an upload at once
// (unknown offer, bad token) is heard, and the file is not sent for nothing.
func TestOpsUploadRefusedBeforeTheBody(t *testing.T) {
	opsUnsetEnv(t)
	var mu sync.Mutex
	var expect string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		expect = r.Header.Get("Expect")
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"error": {"code": "not_found", "message": "no offer NOPE"}}`)
	}))
	t.Cleanup(srv.Close)
	big := opsWriteFile(t, "codes.csv", strings.Repeat("SPR-0000000001\n", 1<<19)) // 7.5 MiB
	_, _, code, err := opsExec(t, "", "ops", "--url", srv.URL, "--token", opsTestToken, "coupons", "upload", "NOPE", "--file", big)
	if code != opsExitFailed || err == nil || err.Error() != "not_found: no offer NOPE" {
		t.Fatalf("exit %d, err %v; want the platform's not_found", code, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if expect != "100-continue" {
		t.Fatalf("Expect header %q, want 100-continue", expect)
	}
}
