package agent

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcome labels of tillkeep_agent_redemptions_total.
const (
	outcomeAccepted = "accepted"
	outcomeReplayed = "replayed"
	outcomeRefused  = "refused"
	outcomeConflict = "idempotency_conflict"
	outcomeFailed   = "failed"
)

// metrics are the agent's Prometheus series. Each Server has its own registry, so two
// agents in one test process (or one binary) never share or collide on series.
type metrics struct {
	redemptions     *prometheus.CounterVec
	refusals        *prometheus.CounterVec
	validations     *prometheus.CounterVec
	reversals       *prometheus.CounterVec
	onlineFallbacks prometheus.Counter
	requestDuration *prometheus.HistogramVec
}

// newMetrics makes the series and registers them with reg (nil: not exported).
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		redemptions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tillkeep_agent_redemptions_total",
			Help: "Redemption attempts by where they were decided (online, offline) and outcome (accepted, replayed, refused, idempotency_conflict, failed).",
		}, []string{"mode", "outcome"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tillkeep_agent_refusals_total",
			Help: "Refused redemptions by refusal code.",
		}, []string{"code"}),
		validations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tillkeep_agent_validations_total",
			Help: "Validations by where they were judged and whether the coupon was valid.",
		}, []string{"mode", "valid"}),
		reversals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tillkeep_agent_reversals_total",
			Help: "Reversal requests by outcome (reversed, replayed, or the error code).",
		}, []string{"outcome"}),
		onlineFallbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tillkeep_agent_online_fallbacks_total",
			Help: "Online attempts that got no decision from the platform and fell back to offline.",
		}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tillkeep_agent_http_request_duration_seconds",
			Help: "Latency of POS API requests by route and status code.",
			// A durable redemption takes a few fsyncs; an online one up to platform.timeout.
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "status"}),
	}
	if reg != nil {
		reg.MustRegister(m.redemptions, m.refusals, m.validations, m.reversals, m.onlineFallbacks, m.requestDuration)
	}
	return m
}

// ledgerCollector reads the ledger's status at scrape time, so the gauges are exact
// without the redemption path having to maintain them.
type ledgerCollector struct {
	redeemer       *Redeemer
	pendingUploads *prometheus.Desc
	coupons        *prometheus.Desc
	offline        *prometheus.Desc
	syncedAt       *prometheus.Desc
	online         *prometheus.Desc
	up             *prometheus.Desc
}

func newLedgerCollector(r *Redeemer) *ledgerCollector {
	return &ledgerCollector{
		redeemer:       r,
		pendingUploads: prometheus.NewDesc("tillkeep_agent_pending_uploads", "Journal entries not yet acknowledged by the platform.", nil, nil),
		coupons:        prometheus.NewDesc("tillkeep_agent_catalog_coupons", "Coupons in the till's cached catalog.", nil, nil),
		offline:        prometheus.NewDesc("tillkeep_agent_offline_redemptions", "Offline redemptions since the till last reached the platform.", nil, nil),
		syncedAt:       prometheus.NewDesc("tillkeep_agent_catalog_synced_timestamp_seconds", "When the catalog was last synced (0: never).", nil, nil),
		online:         prometheus.NewDesc("tillkeep_agent_online", "1 while the till decides online, 0 while offline.", nil, nil),
		up:             prometheus.NewDesc("tillkeep_agent_ledger_up", "1 if the ledger status could be read at scrape time.", nil, nil),
	}
}

func (c *ledgerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.pendingUploads, c.coupons, c.offline, c.syncedAt, c.online, c.up} {
		ch <- d
	}
}

func (c *ledgerCollector) Collect(ch chan<- prometheus.Metric) {
	online := 0.0
	if c.redeemer.Mode() == "online" {
		online = 1
	}
	ch <- prometheus.MustNewConstMetric(c.online, prometheus.GaugeValue, online)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := c.redeemer.ledger.Status(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(c.pendingUploads, prometheus.GaugeValue, float64(st.PendingUploads))
	ch <- prometheus.MustNewConstMetric(c.coupons, prometheus.GaugeValue, float64(st.Coupons))
	ch <- prometheus.MustNewConstMetric(c.offline, prometheus.GaugeValue, float64(st.OfflineRedemptions))
	synced := 0.0
	if !st.SyncedAt.IsZero() {
		synced = float64(st.SyncedAt.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(c.syncedAt, prometheus.GaugeValue, synced)
}
