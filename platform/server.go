package platform

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
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/internal/httpapi"
	"github.com/tillkeep/tillkeep/sync/wire"
)

// Body limits.
const (
	// maxJournalBytes bounds one journal upload.
	maxJournalBytes = 8 << 20
	// shutdownGrace is how long in-flight requests get to finish on stop; long bulk
	// operations are told to stop after longOpGrace, so the whole stop stays under 5 s.
	shutdownGrace = 4 * time.Second
	longOpGrace   = 2 * time.Second
	// bulkDeadline is how far each chunk of a long operation pushes its connection's
	// read and write deadlines.
	bulkDeadline = 2 * time.Minute
)

// ServerConfig configures a Server.
type ServerConfig struct {
	// Listen is the address Serve listens on ("127.0.0.1:8080").
	Listen string
	// AdminToken guards the ops API; it is required.
	AdminToken string
	// EnrollToken is what tills present once to enroll.
	EnrollToken  string
	AutoRevoke   bool
	MaxClockSkew time.Duration
	Logger       *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// TempDir holds report and catalog snapshot spool files ("": the system's).
	TempDir string
	// FeedRetention is how long catalog change-log entries are kept ([feed] retention;
	// 0: DefaultFeedRetention). Tills whose cursor is older fetch a snapshot.
	FeedRetention time.Duration
}

// Server is the platform daemon's HTTP side: the ops API under the admin token, the
// till API under each till's own token, /healthz and /metrics.
type Server struct {
	cfg     ServerConfig
	svc     *Service
	log     *slog.Logger
	reg     *prometheus.Registry
	metrics *Metrics
	mux     *http.ServeMux
	handler http.Handler
	feed    *feed
}

// TillHandler serves a till-API request from the authenticated till t; an error is
// answered through httpapi.WriteError.
type TillHandler func(w http.ResponseWriter, r *http.Request, t TillRef) error

// OpsHandler serves an ops-API request; an error is answered through
// httpapi.WriteError.
type OpsHandler func(w http.ResponseWriter, r *http.Request) error

// HandleTill adds a till-API route (a Go ServeMux pattern such as
// "GET /v1/till/catalog"): only requests bearing a valid till token reach h, with the
// till they identify, and the route is counted in the metrics. It is how other parts
// of the platform (the catalog feed) join the server.
func (s *Server) HandleTill(pattern string, h TillHandler) {
	s.mux.Handle(pattern, s.instrument(pattern, s.tillAuth(h)))
}

// HandleOps adds an ops-API route under the admin token.
func (s *Server) HandleOps(pattern string, h OpsHandler) {
	s.mux.Handle(pattern, s.instrument(pattern, httpapi.RequireToken(s.cfg.AdminToken, s.log, s.handle(handlerFunc(h)))))
}

// NewServer builds a Server over st, with its own metrics registry.
func NewServer(st Storage, cfg ServerConfig) (*Server, error) {
	if cfg.AdminToken == "" {
		return nil, errors.New("platform server: admin_token is required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	svc := NewService(st, Config{
		EnrollToken: cfg.EnrollToken, AutoRevoke: cfg.AutoRevoke, MaxClockSkew: cfg.MaxClockSkew,
		Now: cfg.Now, Logger: log, Metrics: m, TempDir: cfg.TempDir,
	})
	s := &Server{cfg: cfg, svc: svc, log: log, reg: reg, metrics: m}
	s.handler = s.routes()
	return s, nil
}

// Service is the server's business logic.
func (s *Server) Service() *Service { return s.svc }

// Handler is the server's whole HTTP surface.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve listens on the configured address and serves until ctx ends, then stops
// gracefully within 5 s and returns nil.
func (s *Server) Serve(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Listen, err)
	}
	return s.ServeListener(ctx, ln)
}

// ServeListener serves on ln until ctx ends (see Serve). It closes ln.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	// Requests get a context of their own that outlives ctx by a grace period, so that
	// a redemption being committed when the stop comes still answers.
	base, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	srv := httpapi.NewServer(ln.Addr().String(), s.handler, s.log)
	srv.BaseContext = func(net.Listener) context.Context { return base }
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("platform serving", "addr", ln.Addr().String(), "epoch", s.svc.Epoch())
	compactCtx, stopCompaction := context.WithCancel(ctx)
	compacted := make(chan struct{})
	go func() { defer close(compacted); s.feed.compactLoop(compactCtx) }()
	defer func() { stopCompaction(); <-compacted }()

	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("serve platform on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	s.log.Info("platform stopping")
	stopLong := time.AfterFunc(longOpGrace, cancelBase)
	defer stopLong.Stop()
	shutCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		s.log.Warn("requests still running at the stop deadline; closing their connections", "err", err)
		_ = srv.Close()
	}
	<-errc
	s.log.Info("platform stopped")
	return nil
}

// handlerFunc is a handler that reports failure by returning an error.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (s *Server) handle(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			httpapi.WriteError(w, r, s.log, err)
		}
	})
}

func (s *Server) routes() http.Handler {
	s.mux = http.NewServeMux()
	mux := s.mux
	route := func(pattern string, h http.Handler) { mux.Handle(pattern, s.instrument(pattern, h)) }
	ops := func(pattern string, h handlerFunc) { s.HandleOps(pattern, OpsHandler(h)) }
	till := s.HandleTill

	mux.HandleFunc("GET /healthz", httpapi.Healthz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))

	ops("PUT /v1/stores/{id}", s.putStore)
	ops("GET /v1/stores", s.listStores)
	ops("GET /v1/stores/{id}", s.getStore)
	ops("PUT /v1/customers/{id}", s.putCustomer)
	ops("GET /v1/customers/{id}", s.getCustomer)
	ops("POST /v1/offers", s.createOffer)
	ops("GET /v1/offers", s.listOffers)
	ops("GET /v1/offers/{id}", s.getOffer)
	ops("POST /v1/offers/{id}/coupons", s.createCoupons)
	ops("POST /v1/offers/{id}/coupons/upload", s.uploadCoupons)
	ops("POST /v1/offers/{id}/issue", s.issueCoupons)
	ops("GET /v1/coupons/{code}", s.getCoupon)
	ops("POST /v1/coupons/revoke", s.revokeCoupons)
	ops("GET /v1/reports/{id}", s.getReport)
	ops("GET /v1/redemptions", s.listRedemptions)
	ops("GET /v1/redemptions/{id}", s.getRedemption)
	ops("POST /v1/redemptions/{id}/reverse", s.reverseRedemption)
	ops("GET /v1/conflicts", s.listConflicts)
	ops("GET /v1/conflicts/{id}", s.getConflict)
	ops("POST /v1/conflicts/{id}/resolve", s.resolveConflict)
	ops("GET /v1/tills", s.listTills)
	ops("DELETE /v1/tills/{store_id}/{till_id}/enrollment", s.resetTill)
	ops("GET /v1/anomalies", s.listAnomalies)

	route("POST /v1/till/enroll", s.handle(s.enroll))
	till("POST /v1/till/validate", s.tillValidate)
	till("POST /v1/till/redemptions", s.tillRedeem)
	till("POST /v1/till/redemptions/{id}/reverse", s.tillReverse)
	till("POST /v1/till/journal", s.tillUploadJournal)
	till("GET /v1/till/journal", s.tillJournalPosition)

	s.feed = newFeed(s.svc, s.reg, s.log, s.cfg.TempDir, s.cfg.FeedRetention)
	till("GET "+wire.PathSnapshot, s.feed.snapshot)
	till("GET "+wire.PathCatalog, s.feed.delta)

	return httpapi.Recover(s.log, httpapi.EnvelopeUnrouted(mux))
}

// statusRecorder remembers the status code for metrics. It unwraps, so that
// http.ResponseController reaches the connection (deadlines, flushing).
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		s.metrics.HTTPRequests.WithLabelValues(route, strconv.Itoa(rec.status)).Inc()
		s.metrics.HTTPDuration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

// tillAuth lets through requests bearing a valid till token, with the till they
// identify.
func (s *Server) tillAuth(h TillHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := httpapi.BearerToken(r)
		t, err := s.svc.AuthenticateTill(r.Context(), tok)
		if err != nil {
			if tillkeep.ErrorCode(err) == tillkeep.CodeUnauthorized {
				s.log.Warn("refused till request with missing or unknown token", "method", r.Method, "path", r.URL.Path,
					"remote", r.RemoteAddr, "token_present", tok != "")
			}
			httpapi.WriteError(w, r, s.log, err)
			return
		}
		if err := h(w, r, t); err != nil {
			httpapi.WriteError(w, r, s.log, err)
		}
	})
}

// extendDeadlines keeps a long streaming request's connection open for another chunk.
func extendDeadlines(w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	deadline := time.Now().Add(bulkDeadline)
	_ = rc.SetReadDeadline(deadline)
	_ = rc.SetWriteDeadline(deadline)
}

// query helpers

func queryLimit(r *http.Request, def, maxLimit int) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxLimit {
		return 0, tillkeep.Errorf(tillkeep.CodeInvalidRequest, "limit must be a number from 1 to %d", maxLimit)
	}
	return n, nil
}

func queryTime(r *http.Request, name string) (time.Time, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, tillkeep.Errorf(tillkeep.CodeInvalidRequest, "%s must be an RFC 3339 time such as 2026-03-01T10:00:00Z", name)
	}
	return t.UTC(), nil
}
