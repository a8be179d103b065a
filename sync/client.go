package sync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/internal/httpapi"
	"github.com/tillkeep/tillkeep/sync/wire"
)

// ErrUnreachable marks a failure to get an answer from the platform: a connection error,
// a timeout, or a 5xx. The caller may fall back to offline; the request may or may not
// have landed, which is why every till request is idempotent.
var ErrUnreachable = errors.New("platform unreachable")

// Retry policy of bulk calls (journal push, catalog pull).
const (
	retryWaitMin = 250 * time.Millisecond
	retryWaitMax = 10 * time.Second
	retryMax     = 4
	// bulkCallTimeout bounds one bulk call including all its retries.
	bulkCallTimeout = 2 * time.Minute
	// attemptTimeout bounds one HTTP attempt of a bulk call.
	attemptTimeout = 30 * time.Second
	maxAnswerBytes = 64 << 20
)

// Client talks to the platform's till API.
type Client struct {
	base  *url.URL
	token string
	// online serves latency-bound calls (redeem, validate, reverse): one attempt within
	// the configured budget, no retries; a slow platform means offline, not waiting.
	online *http.Client
	// bulk serves journal pushes and catalog pulls: retried with capped, jittered
	// backoff.
	bulk *retryablehttp.Client
	log  *slog.Logger
}

// NewClient returns a client for the platform at baseURL. onlineTimeout is the budget of
// one online redemption (platform.timeout). token may be "" until the till enrolls.
func NewClient(baseURL, token string, onlineTimeout time.Duration, log *slog.Logger) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("platform url %q is not an http(s) URL", baseURL)
	}
	if onlineTimeout <= 0 {
		onlineTimeout = 800 * time.Millisecond
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 8
	transport.ResponseHeaderTimeout = attemptTimeout

	rc := retryablehttp.NewClient()
	rc.HTTPClient = &http.Client{Transport: transport, Timeout: attemptTimeout}
	rc.RetryWaitMin, rc.RetryWaitMax, rc.RetryMax = retryWaitMin, retryWaitMax, retryMax
	rc.Backoff = cappedJitterBackoff
	rc.CheckRetry = retryablehttp.DefaultRetryPolicy
	// Keep the last answer so a refusal's JSON body can be read and a final 5xx named.
	rc.ErrorHandler = retryablehttp.PassthroughErrorHandler
	rc.Logger = slogLeveled{log}

	return &Client{
		base:   u,
		token:  token,
		online: &http.Client{Transport: transport, Timeout: onlineTimeout},
		bulk:   rc,
		log:    log,
	}, nil
}

// SetToken sets the till's bearer token after enrollment.
func (c *Client) SetToken(token string) { c.token = token }

// cappedJitterBackoff waits exponentially longer between attempts with full jitter, and
// honours Retry-After on 429 and 503, but never beyond max: go-retryablehttp's default
// would sleep as long as the server asks.
func cappedJitterBackoff(lo, hi time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		if d, ok := retryAfter(resp.Header.Get("Retry-After")); ok {
			return min(hi, d)
		}
	}
	ceiling := lo << min(attempt, 16)
	if ceiling <= 0 || ceiling > hi {
		ceiling = hi
	}
	return lo/2 + time.Duration(rand.Int64N(int64(ceiling)))
}

func retryAfter(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, time.Until(t)), true
	}
	return 0, false
}

// Enroll presents the store's enrollment token and returns the till's own credentials.
func (c *Client) Enroll(ctx context.Context, req wire.EnrollRequest) (wire.EnrollResponse, error) {
	var out wire.EnrollResponse
	err := c.doBulk(ctx, http.MethodPost, wire.PathEnroll, "", req, &out)
	return out, err
}

// Redeem asks the platform to decide a redemption, within the online budget.
func (c *Client) Redeem(ctx context.Context, req wire.RedeemRequest) (wire.RedeemResponse, error) {
	var out wire.RedeemResponse
	err := c.doOnline(ctx, http.MethodPost, wire.PathRedemptions, req, &out)
	return out, err
}

// Validate asks the platform to judge a coupon, within the online budget.
func (c *Client) Validate(ctx context.Context, req wire.ValidateRequest) (wire.ValidateResponse, error) {
	var out wire.ValidateResponse
	err := c.doOnline(ctx, http.MethodPost, wire.PathValidate, req, &out)
	return out, err
}

// Reverse asks the platform to reverse an online redemption of this till.
func (c *Client) Reverse(ctx context.Context, redemptionID string) (wire.ReverseResponse, error) {
	var out wire.ReverseResponse
	err := c.doOnline(ctx, http.MethodPost, wire.ReversePath(url.PathEscape(redemptionID)), struct{}{}, &out)
	return out, err
}

// Push uploads journal entries.
func (c *Client) Push(ctx context.Context, req wire.PushRequest) (wire.PushResponse, error) {
	var out wire.PushResponse
	err := c.doBulk(ctx, http.MethodPost, wire.PathJournal, c.token, req, &out)
	return out, err
}

// Position returns the platform's acknowledged point for this till, with the bulk
// client's patience (retries, no online budget): a push is not latency-bound, and a
// platform busy with an estate of reconnecting tills must not look down to it.
func (c *Client) Position(ctx context.Context) (wire.AckState, error) {
	var out wire.AckState
	err := c.doBulk(ctx, http.MethodGet, wire.PathJournal, c.token, nil, &out)
	return out, err
}

// Ack returns the platform's acknowledged point for this till within the online
// budget. It is the breaker's probe: cheap, authenticated, and free of side effects.
func (c *Client) Ack(ctx context.Context) (wire.AckState, error) {
	var out wire.AckState
	err := c.doOnline(ctx, http.MethodGet, wire.PathJournal, nil, &out)
	return out, err
}

func (c *Client) doOnline(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, body)
	if err != nil {
		return fmt.Errorf("build %s %s: %w", method, path, err)
	}
	c.setHeaders(req.Header, c.token, in != nil)
	resp, err := c.online.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w: %v", method, path, ErrUnreachable, redactErr(err))
	}
	return decodeAnswer(resp, method, path, out)
}

func (c *Client) doBulk(ctx context.Context, method, path, token string, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, bulkCallTimeout)
	defer cancel()
	var body any
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		body = b
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, c.base.String()+path, body)
	if err != nil {
		return fmt.Errorf("build %s %s: %w", method, path, err)
	}
	c.setHeaders(req.Header, token, in != nil)
	resp, err := c.bulk.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w: %v", method, path, ErrUnreachable, redactErr(err))
	}
	return decodeAnswer(resp, method, path, out)
}

func (c *Client) setHeaders(h http.Header, token string, hasBody bool) {
	if hasBody {
		h.Set("Content-Type", "application/json")
	}
	h.Set("Accept", "application/json")
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
}

// decodeAnswer reads a platform answer: 2xx into out; a coded error body into a
// *tillkeep.Error (a refusal the caller must respect); 5xx and unreadable answers into
// ErrUnreachable.
func decodeAnswer(resp *http.Response, method, path string, out any) error {
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, maxAnswerBytes)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if out == nil {
			_, _ = io.Copy(io.Discard, body)
			return nil
		}
		if err := json.NewDecoder(body).Decode(out); err != nil {
			return fmt.Errorf("%s %s: %w: unreadable answer: %v", method, path, ErrUnreachable, err)
		}
		return nil
	}
	var eb httpapi.ErrorBody
	_ = json.NewDecoder(body).Decode(&eb)
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || eb.Error.Code == "" {
		return fmt.Errorf("%s %s: %w: HTTP %d %s", method, path, ErrUnreachable, resp.StatusCode, eb.Error.Code)
	}
	return &tillkeep.Error{Code: tillkeep.Code(eb.Error.Code), Message: eb.Error.Message, Rule: eb.Error.Rule}
}

// redactErr drops the URL's query from transport errors; tokens never travel in URLs,
// but a proxy or a misconfigured base URL might carry credentials.
func redactErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + ue.Err.Error()
	}
	return err.Error()
}

// slogLeveled hands go-retryablehttp's chatter to slog at debug level; its default
// logger writes every attempt to stderr.
type slogLeveled struct{ log *slog.Logger }

func (l slogLeveled) Error(msg string, kv ...any) { l.log.Warn("platform call: "+msg, kv...) }
func (l slogLeveled) Info(msg string, kv ...any)  { l.log.Debug("platform call: "+msg, kv...) }
func (l slogLeveled) Debug(msg string, kv ...any) { l.log.Debug("platform call: "+msg, kv...) }
func (l slogLeveled) Warn(msg string, kv ...any)  { l.log.Debug("platform call: "+msg, kv...) }
