package platform

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the platform's Prometheus series. Each Server has its own registry, so
// tests and several servers in one process never share or collide.
type Metrics struct {
	Redemptions    *prometheus.CounterVec // mode, status
	Refusals       *prometheus.CounterVec // code
	Conflicts      *prometheus.CounterVec // kind: new cases
	ConflictJoins  *prometheus.CounterVec // kind: redemptions attached to a case
	JournalEntries *prometheus.CounterVec // result: applied, duplicate, gap
	ClockSkew      prometheus.Counter
	AutoRevoked    prometheus.Counter
	Anomalies      *prometheus.CounterVec // kind
	Coupons        *prometheus.CounterVec // how: created, issued, revoked
	HTTPRequests   *prometheus.CounterVec // route, code
	HTTPDuration   *prometheus.HistogramVec
}

// NewMetrics registers the platform's series (and the Go and process collectors) on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Redemptions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tillkeep_platform_redemptions_total", Help: "Redemptions recorded, by mode and status at recording.",
		}, []string{"mode", "status"}),
		Refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tillkeep_platform_refusals_total", Help: "Online redemptions refused, by refusal code.",
		}, []string{"code"}),
		Conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tillkeep_platform_conflicts_total", Help: "Conflict cases opened, by kind.",
		}, []string{"kind"}),
		ConflictJoins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tillkeep_platform_conflict_redemptions_total", Help: "Redemptions attached to conflict cases, by kind.",
		}, []string{"kind"}),
		JournalEntries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tillkeep_platform_journal_entries_total", Help: "Uploaded journal entries, by result (applied, duplicate, after_gap).",
		}, []string{"result"}),
		ClockSkew: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tillkeep_platform_clock_skew_total", Help: "Uploaded redemptions whose till clock was off by more than reconcile.max_clock_skew.",
		}),
		AutoRevoked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tillkeep_platform_auto_revoked_total", Help: "Coupons revoked automatically because a conflict was flagged on them.",
		}),
		Anomalies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tillkeep_platform_anomalies_total", Help: "Refused or suspicious requests recorded, by kind.",
		}, []string{"kind"}),
		Coupons: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tillkeep_platform_coupons_total", Help: "Coupons created, issued and revoked.",
		}, []string{"event"}),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tillkeep_platform_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tillkeep_platform_http_request_seconds", Help: "HTTP request duration by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10, 60},
		}, []string{"route"}),
	}
	reg.MustRegister(
		m.Redemptions, m.Refusals, m.Conflicts, m.ConflictJoins, m.JournalEntries, m.ClockSkew,
		m.AutoRevoked, m.Anomalies, m.Coupons, m.HTTPRequests, m.HTTPDuration,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// The helpers below make a nil *Metrics a no-op, so the service runs without metrics.

func (m *Metrics) redemption(mode, status string) {
	if m != nil {
		m.Redemptions.WithLabelValues(mode, status).Inc()
	}
}

func (m *Metrics) refusal(code string) {
	if m != nil {
		m.Refusals.WithLabelValues(code).Inc()
	}
}

func (m *Metrics) conflictOpened(kind string) {
	if m != nil {
		m.Conflicts.WithLabelValues(kind).Inc()
	}
}

func (m *Metrics) conflictJoined(kind string) {
	if m != nil {
		m.ConflictJoins.WithLabelValues(kind).Inc()
	}
}

func (m *Metrics) journal(result string, n int) {
	if m != nil && n > 0 {
		m.JournalEntries.WithLabelValues(result).Add(float64(n))
	}
}

func (m *Metrics) clockSkew(n int) {
	if m != nil && n > 0 {
		m.ClockSkew.Add(float64(n))
	}
}

func (m *Metrics) autoRevoked(n int) {
	if m != nil && n > 0 {
		m.AutoRevoked.Add(float64(n))
	}
}

func (m *Metrics) anomaly(kind string) {
	if m != nil {
		m.Anomalies.WithLabelValues(kind).Inc()
	}
}

func (m *Metrics) coupons(event string, n int64) {
	if m != nil && n > 0 {
		m.Coupons.WithLabelValues(event).Add(float64(n))
	}
}
