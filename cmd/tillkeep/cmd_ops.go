package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/config"
)

// Exit statuses of the ops commands: 0 done, 3 the platform refused for a business
// rule (422), 1 anything else. A platform.toml that cannot be used exits 2, as
// everywhere else.
const (
	opsExitFailed  = 1
	opsExitRefused = 3
)

const (
	// opsTokenEnv holds the admin token; it is also platform.toml's override of
	// admin_token, so the platform and the scripts can share it.
	opsTokenEnv = "TILLKEEP_ADMIN_TOKEN"
	// opsRequestTimeout bounds a short call (everything but uploads, bulk operations and
	// downloads, which run under --timeout instead).
	opsRequestTimeout = time.Minute
	// opsDefaultLongTimeout is --timeout's default: long enough to stream a 500k-row
	// file or generate 30 million codes over a slow link.
	opsDefaultLongTimeout = 30 * time.Minute
	// opsMaxAnswerBytes bounds a JSON answer read into memory.
	opsMaxAnswerBytes = 64 << 20
	// opsMaxOfferBytes bounds an offer file: the platform takes at most 1 MiB of JSON.
	opsMaxOfferBytes = 1 << 20
	// opsProgressEvery is how often upload progress is redrawn on a terminal.
	opsProgressEvery = 200 * time.Millisecond
)

// Query parameters of GET /v1/redemptions.
const (
	opsQueryTill   = "till_id"
	opsQueryStore  = "store_id"
	opsQueryOffer  = "offer_id"
	opsQueryCode   = "code"
	opsQueryMode   = "mode"
	opsQueryStatus = "status"
	opsQueryFrom   = "from"
	opsQueryTo     = "to"
	opsQueryLimit  = "limit"
	opsQueryCursor = "cursor"
)

func newOpsCmd() *cobra.Command {
	o := &opsFlags{}
	cmd := &cobra.Command{
		Use:   "ops",
		Short: "Run the coupon program through the platform's ops API",
		Long: `Call the central platform's ops API: stores, customers, offers, coupons (add,
generate, upload), issue, revoke, redemptions, conflicts and tills. Each command
prints the platform's JSON answer, indented, on stdout.

Where the platform is: --url, else http://LISTEN from --config platform.toml, else
http://` + config.DefaultPlatformListen + `. The admin token: --token, else $` + opsTokenEnv + `, else
admin_token from --config.

Exit status: 0 success; 3 the platform refused for a business rule (422); 1 any
other failure, printed as "tillkeep: CODE: message"; 2 an unusable --config file.`,
		Args: cobra.NoArgs,
	}
	o.register(cmd)
	cmd.AddCommand(
		newOpsStoresCmd(o),
		newOpsCustomersCmd(o),
		newOpsOffersCmd(o),
		newOpsCouponsCmd(o),
		newOpsIssueCmd(o),
		newOpsReportsCmd(o),
		newOpsRevokeCmd(o),
		newOpsRedemptionsCmd(o),
		newOpsConflictsCmd(o),
		newOpsTillsCmd(o),
		newOpsAnomaliesCmd(o),
	)
	return cmd
}

// opsFlags are the persistent flags of every ops command.
type opsFlags struct {
	configPath string
	url        string
	token      string
	timeout    time.Duration
}

func (o *opsFlags) register(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&o.configPath, "config", "", "platform.toml to read listen and admin_token from")
	f.StringVar(&o.url, "url", "", "base URL of the platform (default http://LISTEN from --config, else http://"+config.DefaultPlatformListen+")")
	f.StringVar(&o.token, "token", "", "admin bearer token (default $"+opsTokenEnv+", else admin_token from --config)")
	f.DurationVar(&o.timeout, "timeout", opsDefaultLongTimeout, "time limit of uploads, bulk operations and downloads (other calls give up after "+opsRequestTimeout.String()+")")
	_ = cmd.MarkPersistentFlagFilename("config", "toml")
}

// opsClient is a resolved connection to the platform.
type opsClient struct {
	base    string
	token   string
	timeout time.Duration
	stdout  io.Writer
	stderr  io.Writer
}

// client resolves the base URL and token: flags, then the environment, then
// platform.toml (whose loader applies the same environment override), then defaults.
func (o *opsFlags) client(cmd *cobra.Command) (*opsClient, error) {
	base, token := o.url, o.token
	if token == "" {
		token = os.Getenv(opsTokenEnv)
	}
	if o.configPath != "" && (base == "" || token == "") {
		cfg, err := config.LoadPlatform(o.configPath)
		if err != nil {
			return nil, withExit(exitBadPlatformConfig, err)
		}
		if base == "" {
			base = "http://" + dialableAddr(cfg.Listen)
		}
		if token == "" {
			token = cfg.AdminToken
		}
	}
	if base == "" {
		base = "http://" + config.DefaultPlatformListen
	}
	if token == "" {
		return nil, opsFail(tillkeep.CodeUnauthorized, "no admin token: pass --token, set %s or pass --config platform.toml", opsTokenEnv)
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, opsFail(tillkeep.CodeInvalidRequest, "--url %q is not an http(s) URL", base)
	}
	if o.timeout <= 0 {
		return nil, opsFail(tillkeep.CodeInvalidRequest, "--timeout must be positive, not %s", o.timeout)
	}
	return &opsClient{
		base:    strings.TrimRight(base, "/"),
		token:   token,
		timeout: o.timeout,
		stdout:  cmd.OutOrStdout(),
		stderr:  cmd.ErrOrStderr(),
	}, nil
}

// opsFail is a failure of the command itself: "tillkeep: CODE: message", exit 1.
func opsFail(code tillkeep.Code, format string, args ...any) error {
	return withExit(opsExitFailed, tillkeep.Errorf(code, format, args...))
}

// opsRequest is one call to the platform.
type opsRequest struct {
	method string
	path   string // escaped path and query
	body   io.Reader
	// size of body, or -1 when unknown (streamed from stdin).
	size        int64
	contentType string
	// long calls run under --timeout instead of the short request timeout.
	long bool
}

// opsJSON builds a request with v encoded as its JSON body.
func opsJSON(method, path string, v any, long bool) (opsRequest, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return opsRequest{}, opsFail(tillkeep.CodeInternal, "encode the request: %v", err)
	}
	return opsRequest{method: method, path: path, body: bytes.NewReader(data), size: int64(len(data)),
		contentType: "application/json", long: long}, nil
}

// send performs r and returns the response of a 2xx answer; other answers become the
// platform's coded error. The caller closes the body and calls the cancel function.
func (c *opsClient) send(ctx context.Context, r opsRequest) (*http.Response, context.CancelFunc, error) {
	client := &http.Client{Timeout: opsRequestTimeout}
	cancel := context.CancelFunc(func() {})
	if r.long {
		client = &http.Client{}
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, c.base+r.path, r.body)
	if err != nil {
		cancel()
		return nil, nil, opsFail(tillkeep.CodeInvalidRequest, "build the request %s %s: %v", r.method, r.path, err)
	}
	if r.body != nil {
		req.ContentLength = r.size
		req.Header.Set("Content-Type", r.contentType)
		if r.contentType == "text/csv" {
			// Let the platform refuse (bad token, unknown offer) before a large file is
			// sent: the body follows only its 100 Continue.
			req.Header.Set("Expect", "100-continue")
		}
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, nil, opsFail(tillkeep.CodeUnavailable, "%s %s%s: no answer within --timeout %s (raise it for large files)", r.method, c.base, r.path, c.timeout)
		}
		return nil, nil, opsFail(tillkeep.CodeUnavailable, "%s %s%s: %v", r.method, c.base, r.path, opsCause(err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer cancel()
		defer resp.Body.Close()
		return nil, nil, opsAnswerError(resp)
	}
	return resp, cancel, nil
}

// opsCause strips the *url.Error wrapping, whose text repeats the method and URL.
func opsCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// opsAnswerError turns a non-2xx answer into "CODE: message" with exit 3 for 422.
func opsAnswerError(resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var envelope struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Rule    string `json:"rule"`
		} `json:"error"`
	}
	e := &tillkeep.Error{}
	if json.Unmarshal(raw, &envelope) == nil && envelope.Error.Code != "" {
		e.Code, e.Message = tillkeep.Code(envelope.Error.Code), envelope.Error.Message
		if envelope.Error.Rule != "" {
			e.Message += " (rule " + envelope.Error.Rule + ")"
		}
	} else {
		// Not the platform's envelope: a proxy or a wrong --url answered.
		e.Code = opsCodeOfStatus(resp.StatusCode)
		e.Message = fmt.Sprintf("HTTP %d from %s", resp.StatusCode, resp.Request.URL.Redacted())
		if text := strings.TrimSpace(string(raw)); text != "" {
			e.Message += ": " + opsTruncate(text, 200)
		}
	}
	if resp.StatusCode == http.StatusUnprocessableEntity {
		return withExit(opsExitRefused, e)
	}
	return withExit(opsExitFailed, e)
}

func opsCodeOfStatus(status int) tillkeep.Code {
	switch status {
	case http.StatusBadRequest:
		return tillkeep.CodeInvalidRequest
	case http.StatusUnauthorized:
		return tillkeep.CodeUnauthorized
	case http.StatusForbidden:
		return tillkeep.CodeForbidden
	case http.StatusNotFound:
		return tillkeep.CodeNotFound
	case http.StatusConflict:
		return tillkeep.CodeConflict
	case http.StatusRequestEntityTooLarge:
		return tillkeep.CodeBodyTooLarge
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return tillkeep.CodeUnavailable
	}
	return tillkeep.CodeInternal
}

func opsTruncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// call sends r, prints the JSON answer indented on stdout and returns it.
func (c *opsClient) call(cmd *cobra.Command, r opsRequest) ([]byte, error) {
	resp, cancel, err := c.send(cmd.Context(), r)
	if err != nil {
		return nil, err
	}
	defer cancel()
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, opsMaxAnswerBytes+1))
	if err != nil {
		return nil, opsFail(tillkeep.CodeUnavailable, "read the answer of %s %s: %v", r.method, r.path, err)
	}
	if len(raw) > opsMaxAnswerBytes {
		return nil, opsFail(tillkeep.CodeBodyTooLarge, "the answer of %s %s is larger than %d bytes", r.method, r.path, opsMaxAnswerBytes)
	}
	return raw, c.printJSON(raw)
}

// printJSON writes an answer indented; an answer that is not JSON is written as is.
func (c *opsClient) printJSON(raw []byte) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil
	}
	var out bytes.Buffer
	if json.Indent(&out, raw, "", "  ") != nil {
		out.Reset()
		out.Write(raw)
	}
	out.WriteByte('\n')
	if _, err := c.stdout.Write(out.Bytes()); err != nil {
		return opsFail(tillkeep.CodeInternal, "write the answer: %v", err)
	}
	return nil
}

// opsPath joins escaped path segments: IDs and codes may hold characters that mean
// something in a URL.
func opsPath(segments ...string) string {
	var b strings.Builder
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// run wraps a command body that needs a client.
func (o *opsFlags) run(do func(cmd *cobra.Command, c *opsClient, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := o.client(cmd)
		if err != nil {
			return err
		}
		return do(cmd, c, args)
	}
}

// ---- stores, customers, tills ------------------------------------------------------

func newOpsStoresCmd(o *opsFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "stores", Short: "Create, replace and show stores", Args: cobra.NoArgs}
	var store tillkeep.Store
	put := &cobra.Command{
		Use:   "put ID",
		Short: "Create or replace a store",
		Example: `  tillkeep ops stores put S001 --name "Main Street" --zone EAST --concept mall \
    --timezone America/New_York --currency USD`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, c *opsClient, args []string) error {
			body := map[string]string{"name": store.Name, "zone": store.Zone, "concept": store.Concept,
				"timezone": store.Timezone, "currency": store.Currency}
			req, err := opsJSON(http.MethodPut, opsPath("v1", "stores", args[0]), body, false)
			if err != nil {
				return err
			}
			_, err = c.call(cmd, req)
			return err
		}),
	}
	f := put.Flags()
	f.StringVar(&store.Name, "name", "", "store name")
	f.StringVar(&store.Zone, "zone", "", "zone, for zone-restricted offers")
	f.StringVar(&store.Concept, "concept", "", "concept (format or brand), for concept-restricted offers")
	f.StringVar(&store.Timezone, "timezone", "", "IANA time zone of the store's local rules, e.g. America/New_York")
	f.StringVar(&store.Currency, "currency", "", "ISO 4217 currency of the store's bills, e.g. USD")
	cmd.AddCommand(put,
		opsGetCmd(o, "get ID", "Show a store", "stores"),
		opsListCmd(o, "list", "List the stores", opsList{path: "/v1/stores", key: "stores", cursorParam: "after"}, nil),
	)
	return cmd
}

func newOpsCustomersCmd(o *opsFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "customers", Short: "Create, replace and show customers", Args: cobra.NoArgs}
	var mobile, email, registeredAt string
	var transactions int64
	put := &cobra.Command{
		Use:     "put ID",
		Short:   "Create or replace a customer (every field optional)",
		Example: `  tillkeep ops customers put C1001 --mobile +15550100 --registered-at 2026-01-15T10:00:00Z --transactions 0`,
		Args:    cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, c *opsClient, args []string) error {
			body := map[string]any{}
			f := cmd.Flags()
			if f.Changed("mobile") {
				body["mobile"] = mobile
			}
			if f.Changed("email") {
				body["email"] = email
			}
			if f.Changed("registered-at") {
				at, err := time.Parse(time.RFC3339, registeredAt)
				if err != nil {
					return opsFail(tillkeep.CodeInvalidRequest, "--registered-at %q is not an RFC 3339 time such as 2026-01-15T10:00:00Z", registeredAt)
				}
				body["registered_at"] = at.UTC().Format(time.RFC3339)
			}
			if f.Changed("transactions") {
				if transactions < 0 {
					return opsFail(tillkeep.CodeInvalidRequest, "--transactions must not be negative, not %d", transactions)
				}
				body["transactions"] = transactions
			}
			req, err := opsJSON(http.MethodPut, opsPath("v1", "customers", args[0]), body, false)
			if err != nil {
				return err
			}
			_, err = c.call(cmd, req)
			return err
		}),
	}
	f := put.Flags()
	f.StringVar(&mobile, "mobile", "", "mobile number")
	f.StringVar(&email, "email", "", "email address")
	f.StringVar(&registeredAt, "registered-at", "", "registration time, RFC 3339 (for new-customer rules)")
	f.Int64Var(&transactions, "transactions", 0, "number of purchases so far (for new-customer rules)")
	cmd.AddCommand(put, opsGetCmd(o, "get ID", "Show a customer", "customers"))
	return cmd
}

func newOpsTillsCmd(o *opsFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "tills", Short: "Show the enrolled tills and reset an enrollment", Args: cobra.NoArgs}
	var store string
	list := &cobra.Command{
		Use:   "list [--store ID]",
		Short: "List the tills with their last sync and acknowledged journal point",
		Args:  cobra.NoArgs,
		RunE: o.run(func(cmd *cobra.Command, c *opsClient, _ []string) error {
			q := url.Values{}
			if store != "" {
				q.Set(opsQueryStore, store)
			}
			_, err := c.call(cmd, opsRequest{method: http.MethodGet, path: opsWithQuery("/v1/tills", q)})
			return err
		}),
	}
	list.Flags().StringVar(&store, "store", "", "only the tills of this store")
	reset := &cobra.Command{
		Use:   "reset STORE TILL",
		Short: "Forget a till's enrollment (a replaced till enrolls again with the enroll token)",
		Args:  cobra.ExactArgs(2),
		RunE: o.run(func(cmd *cobra.Command, c *opsClient, args []string) error {
			_, err := c.call(cmd, opsRequest{method: http.MethodDelete, path: opsPath("v1", "tills", args[0], args[1], "enrollment")})
			return err
		}),
	}
	cmd.AddCommand(list, reset)
	return cmd
}

func newOpsAnomaliesCmd(o *opsFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "anomalies", Short: "Show anomalies the platform noticed (clock skew, refused uploads...)", Args: cobra.NoArgs}
	cmd.AddCommand(opsListCmd(o, "list", "List anomalies", opsList{path: "/v1/anomalies", key: "anomalies", cursorParam: "after"}, nil))
	return cmd
}

// opsGetCmd is "get ID" on /v1/<collection>/{id}.
func opsGetCmd(o *opsFlags, use, short, collection string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, c *opsClient, args []string) error {
			_, err := c.call(cmd, opsRequest{method: http.MethodGet, path: opsPath("v1", collection, args[0])})
			return err
		}),
	}
}

// opsPager holds the paging flags of list commands.
type opsPager struct {
	limit  int
	cursor string
	all    bool
}

func (p *opsPager) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.IntVar(&p.limit, "limit", 0, "page size (default the platform's)")
	f.StringVar(&p.cursor, "cursor", "", "start at this cursor (next_cursor of a previous page)")
	f.BoolVar(&p.all, "all", false, "follow next_cursor to the end and print every item")
}

// opsList describes a paged collection: its path, the key of its items in a page, and
// the query parameter that carries the cursor.
type opsList struct {
	path, key, cursorParam string
}

// opsListCmd lists a paged collection; query adds the command's filters.
func opsListCmd(o *opsFlags, use, short string, l opsList, query func(cmd *cobra.Command, q url.Values) error) *cobra.Command {
	var p opsPager
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: o.run(func(cmd *cobra.Command, c *opsClient, _ []string) error {
			q := url.Values{}
			if query != nil {
				if err := query(cmd, q); err != nil {
					return err
				}
			}
			return c.list(cmd, l, q, p)
		}),
	}
	p.register(cmd)
	return cmd
}

// list prints one page of a collection, or with --all every page as one JSON object.
func (c *opsClient) list(cmd *cobra.Command, l opsList, q url.Values, p opsPager) error {
	if p.limit < 0 {
		return opsFail(tillkeep.CodeInvalidRequest, "--limit must be positive, not %d", p.limit)
	}
	if p.limit > 0 {
		q.Set(opsQueryLimit, strconv.Itoa(p.limit))
	}
	if p.cursor != "" {
		q.Set(l.cursorParam, p.cursor)
	}
	if !p.all {
		_, err := c.call(cmd, opsRequest{method: http.MethodGet, path: opsWithQuery(l.path, q)})
		return err
	}
	return c.listAll(cmd, l, q)
}

func opsWithQuery(path string, q url.Values) string {
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}

// listAll follows the cursor to the end, streaming one JSON object {"<key>": [...]} to
// stdout: memory holds one page, not the whole collection.
func (c *opsClient) listAll(cmd *cobra.Command, l opsList, q url.Values) error {
	out := bufio.NewWriter(c.stdout)
	defer out.Flush()
	first := true
	fmt.Fprintf(out, "{\n  %q: [", l.key)
	for {
		resp, cancel, err := c.send(cmd.Context(), opsRequest{method: http.MethodGet, path: opsWithQuery(l.path, q)})
		if err != nil {
			return err
		}
		var page map[string]json.RawMessage
		err = json.NewDecoder(io.LimitReader(resp.Body, opsMaxAnswerBytes)).Decode(&page)
		resp.Body.Close()
		cancel()
		if err != nil {
			return opsFail(tillkeep.CodeInternal, "read a page of %s: %v", l.key, err)
		}
		var items []json.RawMessage
		var next string
		if err := json.Unmarshal(page[l.key], &items); err != nil {
			return opsFail(tillkeep.CodeInternal, "read a page of %s: no %q list in the answer", l.key, l.key)
		}
		if raw, ok := page["next_cursor"]; ok {
			_ = json.Unmarshal(raw, &next)
		}
		for _, item := range items {
			var indented bytes.Buffer
			if err := json.Indent(&indented, item, "    ", "  "); err != nil {
				indented.Reset()
				indented.Write(item)
			}
			if !first {
				out.WriteByte(',')
			}
			first = false
			fmt.Fprintf(out, "\n    %s", indented.Bytes())
		}
		// A cursor that does not move would loop forever.
		if next == "" || next == q.Get(l.cursorParam) {
			break
		}
		q.Set(l.cursorParam, next)
	}
	if !first {
		out.WriteString("\n  ")
	}
	out.WriteString("]\n}\n")
	if err := out.Flush(); err != nil {
		return opsFail(tillkeep.CodeInternal, "write the %s: %v", l.key, err)
	}
	return nil
}

// ---- offers ------------------------------------------------------------------------

func newOpsOffersCmd(o *opsFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "offers", Short: "Create and show offers (coupon series)", Args: cobra.NoArgs}
	var file string
	create := &cobra.Command{
		Use:     "create --file offer.json",
		Short:   "Create an offer from a JSON file (- reads stdin)",
		Example: `  tillkeep ops offers create --file spring40.json`,
		Args:    cobra.NoArgs,
		RunE: o.run(func(cmd *cobra.Command, c *opsClient, _ []string) error {
			data, err := opsReadSmallFile(cmd, file, opsMaxOfferBytes)
			if err != nil {
				return err
			}
			var offer json.RawMessage
			if err := json.Unmarshal(data, &offer); err != nil {
				return opsFail(tillkeep.CodeInvalidRequest, "%s is not valid JSON: %v", file, err)
			}
			_, err = c.call(cmd, opsRequest{method: http.MethodPost, path: "/v1/offers", body: bytes.NewReader(data),
				size: int64(len(data)), contentType: "application/json"})
			return err
		}),
	}
	create.Flags().StringVar(&file, "file", "", "offer JSON file (required; - for stdin)")
	_ = create.MarkFlagRequired("file")
	cmd.AddCommand(create,
		opsGetCmd(o, "get ID", "Show an offer", "offers"),
		opsListCmd(o, "list", "List the offers", opsList{path: "/v1/offers", key: "offers", cursorParam: "after"}, nil),
	)
	return cmd
}

// opsReadSmallFile reads a file (or stdin for "-") of at most limit bytes.
func opsReadSmallFile(cmd *cobra.Command, path string, limit int64) ([]byte, error) {
	var r io.Reader
	if path == "-" {
		r = cmd.InOrStdin()
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, opsFail(tillkeep.CodeInvalidRequest, "open %s: %v", path, opsPathCause(err))
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, opsFail(tillkeep.CodeInvalidRequest, "read %s: %v", path, err)
	}
	if int64(len(data)) > limit {
		return nil, opsFail(tillkeep.CodeBodyTooLarge, "%s is larger than %d bytes", path, limit)
	}
	return data, nil
}

// opsPathCause drops the *os.PathError wrapping, whose text repeats the path.
func opsPathCause(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// ---- coupons -----------------------------------------------------------------------

func newOpsCouponsCmd(o *opsFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "coupons", Short: "Add, generate, upload and show coupon codes", Args: cobra.NoArgs}
	cmd.AddCommand(
		&cobra.Command{
			Use:     "add OFFER CODE...",
			Short:   "Add the given codes to an offer",
			Example: `  tillkeep ops coupons add SPRING40 SPR-0001 SPR-0002`,
			Args:    cobra.MinimumNArgs(2),
			RunE: o.run(func(cmd *cobra.Command, c *opsClient, args []string) error {
				return c.createCoupons(cmd, args[0], map[string]any{"codes": args[1:]}, false)
			}),
		},
		newOpsGenerateCmd(o),
		&cobra.Command{
			Use:     "common OFFER CODE",
			Short:   "Give an offer one common code for everyone",
			Example: `  tillkeep ops coupons common WELCOME10 WELCOME10`,
			Args:    cobra.ExactArgs(2),
			RunE: o.run(func(cmd *cobra.Command, c *opsClient, args []string) error {
				return c.createCoupons(cmd, args[0], map[string]any{"common": map[string]string{"code": args[1]}}, false)
			}),
		},
		newOpsRandomizedCmd(o),
		newOpsUploadCmd(o),
		opsGetCmd(o, "get CODE", "Show a coupon with its status and redemptions", "coupons"),
	)
	return cmd
}

// createCoupons posts to /v1/offers/{id}/coupons.
func (c *opsClient) createCoupons(cmd *cobra.Command, offerID string, body map[string]any, long bool) error {
	req, err := opsJSON(http.MethodPost, opsPath("v1", "offers", offerID, "coupons"), body, long)
	if err != nil {
		return err
	}
	_, err = c.call(cmd, req)
	return err
}

func newOpsGenerateCmd(o *opsFlags) *cobra.Command {
	var count int64
	var length int
	var charset, prefix string
	cmd := &cobra.Command{
		Use:   "generate OFFER --count N --length L",
		Short: "Generate unique random codes for an offer",
		Long: `Generate unique random codes on the platform. length counts the prefix. The
platform refuses a request whose count would let more than one random guess in a
million hit a valid code, and says how long the codes must be.`,
		Example: `  tillkeep ops coupons generate SPRING40 --count 30000000 --length 10
  tillkeep ops coupons generate SPRING40 --count 5000 --length 12 --charset numeric --prefix 77`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, c *opsClient, args []string) error {
			if count < 1 {
				return opsFail(tillkeep.CodeInvalidRequest, "--count must be at least 1")
			}
			gen := map[string]any{"count": count, "length": length}
			if charset != "" {
				gen["charset"] = charset
			}
			if prefix != "" {
				gen["prefix"] = prefix
			}
			return c.createCoupons(cmd, args[0], map[string]any{"generate": gen}, true)
		}),
	}
	f := cmd.Flags()
	f.Int64Var(&count, "count", 0, "how many codes (required)")
	f.IntVar(&length, "length", 0, "code length, prefix included (required)")
	f.StringVar(&charset, "charset", "", "numeric or alphanumeric (default alphanumeric: 23456789ABCDEFGHJKMNPQRSTUVWXYZ)")
	f.StringVar(&prefix, "prefix", "", "fixed prefix: upper-case letters, digits, '-'")
	_ = cmd.MarkFlagRequired("count")
	_ = cmd.MarkFlagRequired("length")
	return cmd
}

func newOpsRandomizedCmd(o *opsFlags) *cobra.Command {
	var fixed string
	var count int64
	var length int
	cmd := &cobra.Command{
		Use:   "randomized OFFER --fixed F --count N --length L",
		Short: "Generate randomized common codes: a fixed part plus a random part",
		Long: `Generate randomized common codes: the fixed part (unique in the organisation) followed
by a random part, 5 to 10 characters overall, at least half of them random.`,
		Example: `  tillkeep ops coupons randomized FEST --fixed FEST --count 100000 --length 9`,
		Args:    cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, c *opsClient, args []string) error {
			body := map[string]any{"randomized_common": map[string]any{"fixed": fixed, "count": count, "length": length}}
			return c.createCoupons(cmd, args[0], body, true)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&fixed, "fixed", "", "fixed part (required)")
	f.Int64Var(&count, "count", 0, "how many codes (required)")
	f.IntVar(&length, "length", 0, "code length, fixed part included, 5 to 10 (required)")
	for _, name := range []string{"fixed", "count", "length"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

func newOpsUploadCmd(o *opsFlags) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "upload OFFER --file codes.csv",
		Short: "Upload existing codes, optionally tagged to customers (CSV: code[,customer_id])",
		Long: `Stream a CSV file of existing codes to the platform, one "code[,customer_id]" per
line; a tagged code is issued to its customer. Rows that fail are listed in an error
report: its id is in the answer, download it with "tillkeep ops reports get ID".
Progress is shown on stderr when it is a terminal.`,
		Example: `  tillkeep ops coupons upload SPRING40 --file partner-codes.csv`,
		Args:    cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, c *opsClient, args []string) error {
			return c.uploadCSV(cmd, opsPath("v1", "offers", args[0], "coupons", "upload"), file)
		}),
	}
	cmd.Flags().StringVar(&file, "file", "", "CSV file (required; - for stdin)")
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

// uploadCSV streams a CSV file as the body of a POST, shows progress on a terminal,
// prints the answer and points at the error report.
func (c *opsClient) uploadCSV(cmd *cobra.Command, path, file string) error {
	var body io.Reader
	size := int64(-1)
	name := "stdin"
	if file == "-" {
		body = cmd.InOrStdin()
	} else {
		f, err := os.Open(file)
		if err != nil {
			return opsFail(tillkeep.CodeInvalidRequest, "open %s: %v", file, opsPathCause(err))
		}
		defer f.Close()
		info, err := f.Stat()
		if err != nil {
			return opsFail(tillkeep.CodeInvalidRequest, "stat %s: %v", file, opsPathCause(err))
		}
		if !info.Mode().IsRegular() {
			return opsFail(tillkeep.CodeInvalidRequest, "%s is not a regular file", file)
		}
		body, size, name = f, info.Size(), file
	}
	if opsIsTerminal(c.stderr) {
		p := &opsProgress{r: body, w: c.stderr, name: name, total: size}
		defer p.finish()
		body = p
	}
	// Buffered, so that the transport sends large chunks rather than what each Read
	// of a pipe happens to return.
	body = bufio.NewReaderSize(body, 256<<10)
	raw, err := c.call(cmd, opsRequest{method: http.MethodPost, path: path, body: body, size: size,
		contentType: "text/csv", long: true})
	if err != nil {
		return err
	}
	c.pointAtReport(raw)
	return nil
}

// pointAtReport tells on stderr how to download the error report of a bulk answer.
func (c *opsClient) pointAtReport(raw []byte) {
	var answer struct {
		ReportID string `json:"report_id"`
	}
	// The platform names a report only when rows were refused; the answer lists the
	// first of them, the report all.
	if json.Unmarshal(raw, &answer) != nil || answer.ReportID == "" {
		return
	}
	fmt.Fprintf(c.stderr, "some rows were refused; every one is in report %s: tillkeep ops reports get %s --out report.csv\n",
		answer.ReportID, answer.ReportID)
}

// opsIsTerminal reports whether w is a terminal, without a terminal library: a
// character device is what a terminal looks like to stat.
func opsIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// opsProgress counts the bytes read from r and redraws one status line on w.
type opsProgress struct {
	r     io.Reader
	w     io.Writer
	name  string
	total int64 // -1 when unknown
	sent  int64
	drawn time.Time
	done  bool
}

func (p *opsProgress) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.sent += int64(n)
	if err == io.EOF {
		p.draw()
		fmt.Fprintf(p.w, "\nsent; waiting for the platform to process it...\n")
		p.done = true
	} else if time.Since(p.drawn) >= opsProgressEvery {
		p.draw()
	}
	return n, err
}

func (p *opsProgress) draw() {
	p.drawn = time.Now()
	if p.total > 0 {
		fmt.Fprintf(p.w, "\rupload %s: %s of %s sent (%d%%)", p.name, opsBytes(p.sent), opsBytes(p.total), p.sent*100/p.total)
		return
	}
	fmt.Fprintf(p.w, "\rupload %s: %s sent", p.name, opsBytes(p.sent))
}

// finish ends the status line when the upload stopped before the end of the file.
func (p *opsProgress) finish() {
	if !p.done && !p.drawn.IsZero() {
		fmt.Fprintln(p.w)
	}
}

func opsBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// ---- issue, reports, revoke --------------------------------------------------------

func newOpsIssueCmd(o *opsFlags) *cobra.Command {
	var file string
	var customers []string
	cmd := &cobra.Command{
		Use:   "issue OFFER --file customers.csv | --customer ID...",
		Short: "Issue an offer's coupons to customers, within its issuance limits",
		Long: `Issue coupons of an offer to customers: from a CSV file of "customer_id[,code]"
lines (streamed, with progress on a terminal), or to the customers named with
--customer. Each row is checked against the offer's issuance limits
(max_per_customer, min_days_between_issues, series_limit, one_generic_per_customer);
refused rows go to an error report, and the rest are issued.`,
		Example: `  tillkeep ops issue SPRING40 --file customers.csv
  tillkeep ops issue SPRING40 --customer C1001 --customer C1002`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, c *opsClient, args []string) error {
			path := opsPath("v1", "offers", args[0], "issue")
			switch {
			case file != "" && len(customers) > 0:
				return opsFail(tillkeep.CodeInvalidRequest, "give --file or --customer, not both")
			case file != "":
				return c.uploadCSV(cmd, path, file)
			case len(customers) > 0:
				req, err := opsJSON(http.MethodPost, path, map[string]any{"customers": customers}, true)
				if err != nil {
					return err
				}
				raw, err := c.call(cmd, req)
				if err == nil {
					c.pointAtReport(raw)
				}
				return err
			}
			return opsFail(tillkeep.CodeInvalidRequest, "give --file customers.csv or at least one --customer")
		}),
	}
	f := cmd.Flags()
	f.StringVar(&file, "file", "", "CSV file of customer_id[,code] lines (- for stdin)")
	f.StringSliceVar(&customers, "customer", nil, "customer id (repeatable, or comma-separated)")
	return cmd
}

func newOpsReportsCmd(o *opsFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "reports", Short: "Download the error reports of bulk operations", Args: cobra.NoArgs}
	var out string
	get := &cobra.Command{
		Use:   "get ID [--out FILE]",
		Short: "Download an error report (CSV: row,customer_id,code,reason,message)",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, c *opsClient, args []string) error {
			resp, cancel, err := c.send(cmd.Context(), opsRequest{method: http.MethodGet, path: opsPath("v1", "reports", args[0]), long: true})
			if err != nil {
				return err
			}
			defer cancel()
			defer resp.Body.Close()
			if out == "" {
				if _, err := io.Copy(c.stdout, resp.Body); err != nil {
					return opsFail(tillkeep.CodeUnavailable, "download report %s: %v", args[0], err)
				}
				return nil
			}
			return opsSaveFile(out, resp.Body)
		}),
	}
	get.Flags().StringVar(&out, "out", "", "write the report to FILE (mode 0600: it holds customer ids) instead of stdout")
	cmd.AddCommand(get)
	return cmd
}

// opsSaveFile writes r to path through a temporary file, so that a failed download
// never leaves a truncated report under the final name.
func opsSaveFile(path string, r io.Reader) error {
	tmp := path + ".part"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return opsFail(tillkeep.CodeInvalidRequest, "create %s: %v", tmp, opsPathCause(err))
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return opsFail(tillkeep.CodeUnavailable, "save the report to %s: %v", path, err)
	}
	return nil
}

func newOpsRevokeCmd(o *opsFlags) *cobra.Command {
	var codes, customers []string
	var offerID, scope string
	cmd := &cobra.Command{
		Use:   "revoke --code C... | --offer ID --scope unredeemed|unissued|customers [--customer ID...]",
		Short: "Revoke coupons: given codes, or an offer's unredeemed, unissued or customers' coupons",
		Long: `Revoke coupons so that no till accepts them any more. Redeemed coupons cannot be
revoked. Scopes of --offer: unredeemed (every coupon not redeemed, issued or not),
unissued (only coupons not issued to anyone), customers (every active coupon of the
--customer ids). A transfer is a revoke followed by an upload tagged to the new
customer.`,
		Example: `  tillkeep ops revoke --code SPR-0001 --code SPR-0002
  tillkeep ops revoke --offer SPRING40 --scope unissued
  tillkeep ops revoke --offer SPRING40 --scope customers --customer C1001`,
		Args: cobra.NoArgs,
		RunE: o.run(func(cmd *cobra.Command, c *opsClient, _ []string) error {
			var body map[string]any
			switch {
			case len(codes) > 0 && offerID != "":
				return opsFail(tillkeep.CodeInvalidRequest, "give --code or --offer, not both")
			case len(codes) > 0:
				if scope != "" || len(customers) > 0 {
					return opsFail(tillkeep.CodeInvalidRequest, "--scope and --customer go with --offer, not --code")
				}
				body = map[string]any{"codes": codes}
			case offerID != "":
				switch scope {
				case "unredeemed", "unissued":
					if len(customers) > 0 {
						return opsFail(tillkeep.CodeInvalidRequest, "--customer goes with --scope customers, not %s", scope)
					}
					body = map[string]any{"offer_id": offerID, "scope": scope}
				case "customers":
					if len(customers) == 0 {
						return opsFail(tillkeep.CodeInvalidRequest, "--scope customers needs at least one --customer")
					}
					body = map[string]any{"offer_id": offerID, "scope": scope, "customers": customers}
				default:
					return opsFail(tillkeep.CodeInvalidRequest, "--scope must be unredeemed, unissued or customers, not %q", scope)
				}
			default:
				return opsFail(tillkeep.CodeInvalidRequest, "give --code C..., or --offer ID with --scope")
			}
			req, err := opsJSON(http.MethodPost, "/v1/coupons/revoke", body, true)
			if err != nil {
				return err
			}
			_, err = c.call(cmd, req)
			return err
		}),
	}
	f := cmd.Flags()
	f.StringSliceVar(&codes, "code", nil, "code to revoke (repeatable, or comma-separated)")
	f.StringVar(&offerID, "offer", "", "offer whose coupons to revoke")
	f.StringVar(&scope, "scope", "", "with --offer: unredeemed, unissued or customers")
	f.StringSliceVar(&customers, "customer", nil, "with --scope customers: customer id (repeatable, or comma-separated)")
	return cmd
}

// ---- redemptions -------------------------------------------------------------------

func newOpsRedemptionsCmd(o *opsFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "redemptions", Short: "List, show and reverse redemptions", Args: cobra.NoArgs}
	cmd.AddCommand(newOpsRedemptionsListCmd(o),
		opsGetCmd(o, "get ID", "Show a redemption", "redemptions"),
		&cobra.Command{
			Use:   "reverse ID",
			Short: "Reverse a redemption: the coupon is reinstated",
			Args:  cobra.ExactArgs(1),
			RunE: o.run(func(cmd *cobra.Command, c *opsClient, args []string) error {
				_, err := c.call(cmd, opsRequest{method: http.MethodPost, path: opsPath("v1", "redemptions", args[0], "reverse")})
				return err
			}),
		})
	return cmd
}

func newOpsRedemptionsListCmd(o *opsFlags) *cobra.Command {
	var till, store, offer, code, mode, status, from, to string
	query := func(_ *cobra.Command, q url.Values) error {
		for name, value := range map[string]string{opsQueryTill: till, opsQueryStore: store, opsQueryOffer: offer, opsQueryCode: code} {
			if value != "" {
				q.Set(name, value)
			}
		}
		if mode != "" {
			if mode != tillkeep.ModeOnline && mode != tillkeep.ModeOffline {
				return opsFail(tillkeep.CodeInvalidRequest, "--mode must be online or offline, not %q", mode)
			}
			q.Set(opsQueryMode, mode)
		}
		if status != "" {
			switch status {
			case tillkeep.RedemptionAccepted, tillkeep.RedemptionReversed, tillkeep.RedemptionConflict:
			default:
				return opsFail(tillkeep.CodeInvalidRequest, "--status must be accepted, reversed or conflict, not %q", status)
			}
			q.Set(opsQueryStatus, status)
		}
		for name, value := range map[string]string{opsQueryFrom: from, opsQueryTo: to} {
			if value == "" {
				continue
			}
			at, err := time.Parse(time.RFC3339, value)
			if err != nil {
				return opsFail(tillkeep.CodeInvalidRequest, "--%s %q is not an RFC 3339 time such as 2026-03-01T00:00:00Z", name, value)
			}
			q.Set(name, at.UTC().Format(time.RFC3339))
		}
		return nil
	}
	cmd := opsListCmd(o, "list [--till --store --offer --code --mode --status --from --to]",
		"List redemptions, one page at a time (or --all)",
		opsList{path: "/v1/redemptions", key: "redemptions", cursorParam: opsQueryCursor}, query)
	cmd.Example = `  tillkeep ops redemptions list --store S001 --mode offline --from 2026-03-01T00:00:00Z
  tillkeep ops redemptions list --offer SPRING40 --status conflict --all`
	f := cmd.Flags()
	f.StringVar(&till, "till", "", "only this till")
	f.StringVar(&store, "store", "", "only this store")
	f.StringVar(&offer, "offer", "", "only this offer")
	f.StringVar(&code, "code", "", "only this coupon code")
	f.StringVar(&mode, "mode", "", "online or offline")
	f.StringVar(&status, "status", "", "accepted, reversed or conflict")
	f.StringVar(&from, "from", "", "from this time on (RFC 3339)")
	f.StringVar(&to, "to", "", "before this time (RFC 3339)")
	return cmd
}

// ---- conflicts ---------------------------------------------------------------------

// Conflict resolution actions.
var opsConflictActions = []string{"accept_loss", "reverse", "reinstate"}

func newOpsConflictsCmd(o *opsFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "conflicts", Short: "List and resolve conflict cases", Args: cobra.NoArgs}
	var status string
	list := opsListCmd(o, "list [--status open]", "List conflict cases",
		opsList{path: "/v1/conflicts", key: "conflicts", cursorParam: "after"},
		func(_ *cobra.Command, q url.Values) error {
			switch status {
			case "":
			case "open", "resolved":
				q.Set(opsQueryStatus, status)
			default:
				return opsFail(tillkeep.CodeInvalidRequest, "--status must be open or resolved, not %q", status)
			}
			return nil
		})
	list.Flags().StringVar(&status, "status", "", "open or resolved")
	var action, note string
	resolve := &cobra.Command{
		Use:   "resolve ID --action accept_loss|reverse|reinstate --note TEXT",
		Short: "Resolve a conflict case; the case keeps who did what and when",
		Long: `Resolve a conflict case:
  accept_loss  keep the redemptions as they are and close the case (the discount is a loss)
  reverse      reverse the offending redemption(s)
  reinstate    make the coupon redeemable again (undo its automatic revocation)`,
		Example: `  tillkeep ops conflicts resolve 0192f1c4-... --action accept_loss --note "two tills offline; customer kept the discount"`,
		Args:    cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, c *opsClient, args []string) error {
			if !slices.Contains(opsConflictActions, action) {
				return opsFail(tillkeep.CodeInvalidRequest, "--action must be one of %s, not %q", strings.Join(opsConflictActions, ", "), action)
			}
			if strings.TrimSpace(note) == "" {
				return opsFail(tillkeep.CodeInvalidRequest, "--note must say why (it is kept with the case)")
			}
			req, err := opsJSON(http.MethodPost, opsPath("v1", "conflicts", args[0], "resolve"),
				map[string]string{"action": action, "note": note}, false)
			if err != nil {
				return err
			}
			_, err = c.call(cmd, req)
			return err
		}),
	}
	resolve.Flags().StringVar(&action, "action", "", "accept_loss, reverse or reinstate (required)")
	resolve.Flags().StringVar(&note, "note", "", "why (required)")
	_ = resolve.MarkFlagRequired("action")
	_ = resolve.MarkFlagRequired("note")
	cmd.AddCommand(list, opsGetCmd(o, "get ID", "Show a conflict case with its redemptions and history", "conflicts"), resolve)
	return cmd
}
