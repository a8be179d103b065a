package httpapi

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/tillkeep/tillkeep"
)

// MaxBodyBytes is the default limit on a request body; larger bodies answer 413.
const MaxBodyBytes = 1 << 20

// ErrorBody is the envelope of every non-2xx answer.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of ErrorBody. Rule names the redemption rule that refused.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Rule    string `json:"rule,omitempty"`
}

// StatusOf maps a domain error code to its HTTP status. It is the only such mapping.
func StatusOf(code tillkeep.Code) int {
	switch code {
	case tillkeep.CodeInvalidRequest:
		return http.StatusBadRequest
	case tillkeep.CodeUnauthorized:
		return http.StatusUnauthorized
	case tillkeep.CodeForbidden:
		return http.StatusForbidden
	case tillkeep.CodeNotFound, tillkeep.CodeUnknownStore:
		return http.StatusNotFound
	case tillkeep.CodeIdempotencyReuse, tillkeep.CodeConflict, tillkeep.CodeTillAlreadyEnrolled:
		return http.StatusConflict
	case tillkeep.CodeBodyTooLarge:
		return http.StatusRequestEntityTooLarge
	case tillkeep.CodeUnavailable:
		return http.StatusServiceUnavailable
	case tillkeep.CodeStorageFull:
		return http.StatusInsufficientStorage
	case tillkeep.CodeInternal:
		return http.StatusInternalServerError
	case tillkeep.CodeNothingCreated:
		return http.StatusUnprocessableEntity
	case tillkeep.CodeRefetchRequired:
		return http.StatusGone
	}
	if tillkeep.IsRefusal(code) {
		return http.StatusUnprocessableEntity
	}
	return http.StatusInternalServerError
}

// WriteJSON writes v with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

// WriteError writes err in the error envelope with the status its code maps to.
// Internal causes are logged (never sent): the client sees only a generic sentence.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	code := tillkeep.ErrorCode(err)
	status := StatusOf(code)
	if status >= 500 && log != nil {
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "code", code, "err", err)
	}
	WriteJSON(w, status, ErrorBody{Error: ErrorDetail{
		Code:    string(code),
		Message: tillkeep.ErrorMessage(err),
		Rule:    tillkeep.ErrorRule(err),
	}})
}

// DecodeJSON reads one JSON object from the body into v: unknown fields, trailing data
// and bodies over limit bytes are refused with coded errors (400, 413).
func DecodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if limit <= 0 {
		limit = MaxBodyBytes
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		if err == nil {
			return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "request body holds more than one JSON value")
		}
		return decodeError(err)
	}
	return nil
}

func decodeError(err error) error {
	var maxErr *http.MaxBytesError
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &maxErr):
		return tillkeep.Errorf(tillkeep.CodeBodyTooLarge, "request body is larger than %d bytes", maxErr.Limit)
	case errors.Is(err, io.EOF):
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "request body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "request body is truncated JSON")
	case errors.As(err, &syntaxErr):
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "malformed JSON at byte %d", syntaxErr.Offset)
	case errors.As(err, &typeErr):
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "field %q must be %s", typeErr.Field, typeErr.Type)
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "%s", strings.TrimPrefix(err.Error(), "json: "))
	default:
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "malformed request body: %s", err.Error())
	}
}

// BearerToken returns the token of an "Authorization: Bearer <token>" header, or "".
func BearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return ""
	}
	return strings.TrimSpace(h[len(prefix):])
}

// TokenEqual compares a presented token with the expected one in constant time.
// An empty expected token never matches.
func TokenEqual(presented, expected string) bool {
	if expected == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(presented), []byte(expected)) == 1
}

// RequireToken wraps next so that only requests bearing expected get through; others
// answer 401 and are logged without the token.
func RequireToken(expected string, log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := BearerToken(r)
		if !TokenEqual(tok, expected) {
			if log != nil {
				log.Warn("refused request with missing or wrong token",
					"method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "token_present", tok != "")
			}
			reason := "missing bearer token"
			if tok != "" {
				reason = "wrong bearer token"
			}
			WriteError(w, r, nil, tillkeep.Errorf(tillkeep.CodeUnauthorized, "%s", reason))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Recover turns a panic in a handler into a logged 500 so it never kills the daemon and
// never sends a stack trace to the client.
func Recover(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.Error("handler panicked", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v))
				WriteError(w, r, nil, tillkeep.Errorf(tillkeep.CodeInternal, "internal error"))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// NewServer returns an http.Server with the timeouts every tillkeep daemon uses, so a
// slow or hostile client cannot hold connections open (slowloris).
func NewServer(addr string, h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// Healthz answers 200 {"status":"ok"}; it needs no token.
func Healthz(w http.ResponseWriter, _ *http.Request) {
	WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// EnvelopeUnrouted serves mux, answering requests that match no route (404) or no
// method of their route (405) with the JSON error envelope instead of the mux's plain
// text, so that every non-2xx answer has the contract's body. Routed requests, and the
// mux's redirects, pass through untouched.
func EnvelopeUnrouted(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		rec := &unroutedRecorder{header: http.Header{}, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		switch rec.status {
		case http.StatusNotFound:
			WriteError(w, r, nil, tillkeep.Errorf(tillkeep.CodeNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path))
		case http.StatusMethodNotAllowed:
			allow := rec.header.Get("Allow")
			w.Header().Set("Allow", allow)
			WriteJSON(w, http.StatusMethodNotAllowed, ErrorBody{Error: ErrorDetail{
				Code:    "method_not_allowed",
				Message: fmt.Sprintf("%s is not allowed on %s; use %s", r.Method, r.URL.Path, allow),
			}})
		default:
			for k, v := range rec.header {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.status)
			_, _ = w.Write(rec.body)
		}
	})
}

// unroutedRecorder captures the mux's own answer to an unrouted request.
type unroutedRecorder struct {
	header http.Header
	status int
	body   []byte
}

func (u *unroutedRecorder) Header() http.Header  { return u.header }
func (u *unroutedRecorder) WriteHeader(code int) { u.status = code }
func (u *unroutedRecorder) Write(b []byte) (int, error) {
	u.body = append(u.body, b...)
	return len(b), nil
}
