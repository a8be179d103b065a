package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/config"
	"github.com/tillkeep/tillkeep/internal/httpapi"
)

// MaxRequestBytes bounds a POS request body; larger ones answer 413. A real request is
// a few hundred bytes.
const MaxRequestBytes = 64 << 10

// shutdownGrace is how long Serve lets in-flight requests finish after its context
// ends. It stays under the contract's 5 s so the process can still close the ledger
// and exit in time.
const shutdownGrace = 4 * time.Second

// Server is the agent's POS API over a Redeemer.
type Server struct {
	cfg      config.Agent
	redeemer *Redeemer
	log      *slog.Logger
	registry *prometheus.Registry
	handler  http.Handler
	// syncStatus reports the sync state for /v1/status (nil: no platform configured).
	syncStatus func() any
}

// New returns the POS API of the till cfg describes, recording in ledger (a
// store.Ledger or memstore). Options attach the online path and the clock.
func New(cfg config.Agent, ledger Ledger, log *slog.Logger, opts ...Option) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	r := newRedeemer(cfg, ledger, log, newMetrics(reg), opts)
	reg.MustRegister(newLedgerCollector(r))
	s := &Server{cfg: cfg, redeemer: r, log: log, registry: reg, syncStatus: o.syncStatus}
	s.handler = s.routes()
	return s
}

// Redeemer returns the engine behind the API, for sync to attach its online path
// (SetOnline) and signal catalog changes.
func (s *Server) Redeemer() *Redeemer { return s.redeemer }

// Handler returns the whole HTTP surface (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.handler }

// Serve listens on cfg.Listen and serves until ctx ends, then stops gracefully: it
// stops accepting, lets in-flight requests finish for up to 4 s, and returns nil.
func (s *Server) Serve(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen for the POS API on %s: %w", s.cfg.Listen, err)
	}
	return s.ServeListener(ctx, ln)
}

// ServeListener is Serve on a listener the caller opened (tests use port 0). It closes
// ln.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	srv := httpapi.NewServer(ln.Addr().String(), s.handler, s.log)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	s.log.Info("till agent serving the POS API", "addr", ln.Addr().String(),
		"store_id", s.cfg.StoreID, "till_id", s.cfg.TillID, "mode", s.redeemer.Mode())

	select {
	case err := <-served:
		return fmt.Errorf("serve the POS API on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	s.log.Info("stopping the POS API", "grace", shutdownGrace)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		s.log.Warn("in-flight POS requests did not finish in time; closing their connections", "err", err)
		_ = srv.Close()
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve the POS API on %s: %w", ln.Addr(), err)
	}
	s.log.Info("POS API stopped")
	return nil
}

func (s *Server) routes() http.Handler {
	v1 := http.NewServeMux()
	v1.HandleFunc("GET /v1/status", s.handleStatus)
	v1.HandleFunc("POST /v1/validate", s.handleValidate)
	v1.HandleFunc("POST /v1/redemptions", s.handleRedeem)
	v1.HandleFunc("POST /v1/redemptions/{id}/reverse", s.handleReverse)
	allowOnly(v1, "/v1/status", "GET, HEAD")
	allowOnly(v1, "/v1/validate", "POST")
	allowOnly(v1, "/v1/redemptions", "POST")
	allowOnly(v1, "/v1/redemptions/{id}/reverse", "POST")
	v1.HandleFunc("GET "+BackupPath, s.handleBackup)
	allowOnly(v1, BackupPath, "GET, HEAD")
	v1.HandleFunc("/", notFound)

	root := http.NewServeMux()
	root.HandleFunc("GET /healthz", httpapi.Healthz)
	root.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	}))
	allowOnly(root, "/healthz", "GET, HEAD")
	allowOnly(root, "/metrics", "GET, HEAD")
	root.Handle("/v1/", httpapi.RequireToken(s.cfg.PosToken, s.log, v1))
	root.HandleFunc("/", notFound)
	// observe is outermost so that a panic's 500 is counted and logged like any answer.
	return s.observe(httpapi.Recover(s.log, root))
}

// allowOnly answers other methods on path with a JSON 405, so that every non-2xx
// answer has the contract's error body (the mux's own 405 is plain text).
func allowOnly(mux *http.ServeMux, path, allow string) {
	mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		httpapi.WriteJSON(w, http.StatusMethodNotAllowed, httpapi.ErrorBody{Error: httpapi.ErrorDetail{
			Code:    "method_not_allowed",
			Message: fmt.Sprintf("%s is not allowed on %s; use %s", r.Method, r.URL.Path, allow),
		}})
	})
}

func notFound(w http.ResponseWriter, r *http.Request) {
	httpapi.WriteError(w, r, nil, tillkeep.Errorf(tillkeep.CodeNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path))
}

// observe logs every request at debug level (never its headers: they carry the token)
// and records its latency.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		elapsed := time.Since(start)
		route := r.Pattern
		if route == "" || route == "/" {
			route = "unmatched"
		}
		s.redeemer.metrics.requestDuration.WithLabelValues(route, strconv.Itoa(rec.status)).Observe(elapsed.Seconds())
		s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"duration", elapsed, "remote", r.RemoteAddr)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wroteHeader = true
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// The wire forms of the POS API (../shared/CONTRACT.md).

type validateBody struct {
	Code       string          `json:"code"`
	Bill       *tillkeep.Money `json:"bill"`
	CustomerID string          `json:"customer_id"`
}

type redeemBody struct {
	Code          string          `json:"code"`
	TransactionID string          `json:"transaction_id"`
	Bill          *tillkeep.Money `json:"bill"`
	CustomerID    string          `json:"customer_id"`
}

type redemptionAnswer struct {
	RedemptionID string         `json:"redemption_id"`
	Mode         string         `json:"mode"`
	Discount     tillkeep.Money `json:"discount"`
}

type validateAnswer struct {
	Valid    bool            `json:"valid"`
	Discount *tillkeep.Money `json:"discount,omitempty"`
	Reason   string          `json:"reason,omitempty"`
	// Rule and Message extend the contract: which rule refused, in words.
	Rule    string `json:"rule,omitempty"`
	Message string `json:"message,omitempty"`
	// Mode extends the contract: who judged (online, offline).
	Mode string `json:"mode"`
}

type reverseAnswer struct {
	RedemptionID string `json:"redemption_id"`
	Status       string `json:"status"`
}

type statusAnswer struct {
	TillID         string        `json:"till_id"`
	StoreID        string        `json:"store_id"`
	Mode           string        `json:"mode"`
	PendingUploads int           `json:"pending_uploads"`
	Catalog        catalogAnswer `json:"catalog"`
	// OfflineRedemptions extends the contract: the outage budget used so far.
	OfflineRedemptions int `json:"offline_redemptions"`
	// Sync extends the contract: enrollment, last push and pull, clock offset, and the
	// conflicts the platform reported for this till's redemptions.
	Sync any `json:"sync,omitempty"`
}

type catalogAnswer struct {
	Coupons  int        `json:"coupons"`
	SyncedAt *time.Time `json:"synced_at"`
}

// replayedHeader marks an answer that repeats the first answer to a transaction_id.
const replayedHeader = "Idempotent-Replayed"

func (s *Server) handleRedeem(w http.ResponseWriter, r *http.Request) {
	var body redeemBody
	if err := httpapi.DecodeJSON(w, r, MaxRequestBytes, &body); err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	if body.Bill == nil {
		httpapi.WriteError(w, r, s.log, tillkeep.Errorf(tillkeep.CodeInvalidRequest, "bill is required"))
		return
	}
	res, err := s.redeemer.Redeem(r.Context(), RedeemRequest{
		Code:          body.Code,
		TransactionID: body.TransactionID,
		Bill:          *body.Bill,
		CustomerID:    body.CustomerID,
	})
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	if res.Replayed {
		w.Header().Set(replayedHeader, "true")
	}
	httpapi.WriteJSON(w, http.StatusCreated, redemptionAnswer{
		RedemptionID: res.RedemptionID,
		Mode:         res.Mode,
		Discount:     res.Discount,
	})
}

func (s *Server) handleValidate(w http.ResponseWriter, r *http.Request) {
	var body validateBody
	if err := httpapi.DecodeJSON(w, r, MaxRequestBytes, &body); err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	if body.Bill == nil {
		httpapi.WriteError(w, r, s.log, tillkeep.Errorf(tillkeep.CodeInvalidRequest, "bill is required"))
		return
	}
	res, err := s.redeemer.Validate(r.Context(), ValidateRequest{Code: body.Code, Bill: *body.Bill, CustomerID: body.CustomerID})
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	answer := validateAnswer{Valid: res.Valid, Mode: res.Mode}
	if res.Valid {
		answer.Discount = &res.Discount
	} else if res.Refusal != nil {
		answer.Reason = string(res.Refusal.Code)
		answer.Rule = res.Refusal.Rule
		answer.Message = tillkeep.ErrorMessage(res.Refusal)
	}
	httpapi.WriteJSON(w, http.StatusOK, answer)
}

func (s *Server) handleReverse(w http.ResponseWriter, r *http.Request) {
	res, err := s.redeemer.Reverse(r.Context(), r.PathValue("id"))
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, reverseAnswer(res))
}

// BackupPath streams a consistent copy of the till's ledger (POS token). A running
// agent holds the ledger file locked, so `tillkeep agent backup` copies it through here.
const BackupPath = "/v1/admin/backup"

// backupLedger is a ledger that can copy itself consistently while it keeps serving
// (the bbolt store; an in-memory ledger has nothing to back up).
type backupLedger interface {
	Backup(w io.Writer) (int64, error)
}

func (s *Server) handleBackup(w http.ResponseWriter, r *http.Request) {
	ledger, ok := s.redeemer.ledger.(backupLedger)
	if !ok {
		httpapi.WriteError(w, r, s.log, tillkeep.Errorf(tillkeep.CodeNotFound, "this agent's ledger cannot be backed up"))
		return
	}
	// A large ledger must not be cut by the server's write timeout.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "no-store")
	counted := &countingWriter{w: w}
	n, err := ledger.Backup(counted)
	if err != nil {
		if counted.n == 0 {
			w.Header().Del("Cache-Control")
			httpapi.WriteError(w, r, s.log, storageFailure("copy the ledger", err))
			return
		}
		// Part of the copy is out: abort the connection so the client cannot take a
		// truncated copy for a whole one.
		s.log.Error("ledger backup failed midway; aborting the connection", "bytes", counted.n, "err", err)
		panic(http.ErrAbortHandler)
	}
	s.log.Info("ledger backed up through the POS API", "bytes", n, "remote", r.RemoteAddr)
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.redeemer.Status(r.Context())
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	answer := statusAnswer{
		TillID:             st.TillID,
		StoreID:            st.StoreID,
		Mode:               st.Mode,
		PendingUploads:     st.PendingUploads,
		Catalog:            catalogAnswer{Coupons: st.Coupons},
		OfflineRedemptions: st.OfflineRedemptions,
	}
	if !st.SyncedAt.IsZero() {
		synced := st.SyncedAt.UTC()
		answer.Catalog.SyncedAt = &synced
	}
	if s.syncStatus != nil {
		answer.Sync = s.syncStatus()
	}
	httpapi.WriteJSON(w, http.StatusOK, answer)
}
