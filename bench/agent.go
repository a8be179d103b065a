package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/agent"
	"github.com/tillkeep/tillkeep/config"
	"github.com/tillkeep/tillkeep/store"
)

// The agent rows (issue #2): durable offline redemptions per second through the real
// POS API of one till agent — HTTP on loopback, the redemption engine, the bbolt ledger
// with its fsynced journal — for one lane and for sixteen, each held against the raw
// fdatasync'd append rate of the same disk in the same run; and the latency one
// redemption takes.

const (
	agentStoreID  = "S001"
	agentTillID   = "T01"
	agentPosToken = "bench-pos-token-0123456789abcdef"
	agentOfferID  = "BENCH10"
)

// agentRun is one timed run of n lanes.
type agentRun struct {
	lanes     int
	accepted  int64
	elapsed   time.Duration
	latencies []time.Duration
	// exhausted is set when the catalog ran out of coupons before the time was up.
	exhausted bool
	// rawBefore is the raw append rate measured just before the run; load notes the
	// machine's load average over it.
	rawBefore float64
	load      string
}

func (r agentRun) rate() float64 { return float64(r.accepted) / r.elapsed.Seconds() }

func measureAgent(ctx context.Context, e *env) ([]Row, error) {
	run, warm := 5*time.Second, time.Second
	coupons := 250_000
	if e.quick {
		run, warm, coupons = 1500*time.Millisecond, 300*time.Millisecond, 60_000
	}
	raw, rawHere, err := rawAppendsReference(ctx, e)
	if err != nil {
		return nil, err
	}

	dir := filepath.Join(e.dir, "agent")
	defer os.RemoveAll(dir)
	db, err := store.Open(filepath.Join(dir, store.FileName), store.Options{StoreID: agentStoreID, TillID: agentTillID})
	if err != nil {
		return nil, fmt.Errorf("open the agent's ledger: %w", err)
	}
	defer db.Close()

	began := time.Now()
	if err := db.ReplaceCatalog(ctx, agentCatalog(coupons, time.Now().UTC())); err != nil {
		return nil, fmt.Errorf("import a catalog of %d coupons: %w", coupons, err)
	}
	stepf("agent: imported a catalog of %d coupons in %s", coupons, time.Since(began).Round(time.Millisecond))

	cfg := config.DefaultAgent()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = dir
	cfg.PosToken = agentPosToken
	cfg.StoreID, cfg.TillID = agentStoreID, agentTillID
	// The outage budget (500 by default) would end the run after 500 redemptions; the
	// bench measures how fast the till records, not the budget.
	cfg.Offline.MaxRedemptions = 1 << 30
	srv := agent.New(cfg, db, nil) // no online path: every redemption is decided offline
	daemon, err := serveLoopback(ctx, "till agent", srv.ServeListener)
	if err != nil {
		return nil, err
	}
	defer daemon.stop()

	lg := &laneLoad{url: daemon.url + "/v1/redemptions", client: loopbackClient(32), total: int64(coupons)}
	if _, err := lg.run(ctx, 1, warm); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	rawBefore, loadBefore := rawAppendsNow(ctx, e), loadAverage()
	stopProfile := profilePhase("agent-1-lane")
	one, err := lg.run(ctx, 1, run)
	stopProfile()
	if err != nil {
		return nil, fmt.Errorf("1 lane: %w", err)
	}
	one.rawBefore, one.load = rawBefore, loadNote(loadBefore)
	stepf("agent: 1 lane: %d redemptions in %s", one.accepted, one.elapsed.Round(time.Millisecond))
	if _, err := lg.run(ctx, 16, warm); err != nil {
		return nil, fmt.Errorf("warm-up of 16 lanes: %w", err)
	}
	rawBefore, loadBefore = rawAppendsNow(ctx, e), loadAverage()
	stopProfile = profilePhase("agent-16-lanes")
	sixteen, err := lg.run(ctx, 16, run)
	stopProfile()
	if err != nil {
		return nil, fmt.Errorf("16 lanes: %w", err)
	}
	sixteen.rawBefore, sixteen.load = rawBefore, loadNote(loadBefore)
	stepf("agent: 16 lanes: %d redemptions in %s", sixteen.accepted, sixteen.elapsed.Round(time.Millisecond))

	// Every acknowledged redemption must be in the journal: the figures count only
	// redemptions the ledger holds.
	st, err := db.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the ledger's status: %w", err)
	}
	if int64(st.PendingUploads) != lg.accepted.Load() {
		return nil, fmt.Errorf("the journal holds %d pending entries but the POS API acknowledged %d redemptions", st.PendingUploads, lg.accepted.Load())
	}

	refName := "raw appends"
	if rawHere {
		refName = fmt.Sprintf("raw appends (%.0f/s, measured by this row)", raw)
	}
	rows := []Row{
		agentRateRow(one, raw, refName, 0.4),
		agentRateRow(sixteen, raw, refName, 3),
	}
	rows = append(rows, latencyRows("agent", "redemption latency, 1 lane", one.latencies, 2*time.Millisecond,
		"POST /v1/redemptions over loopback HTTP, offline decision, fsynced before the answer"+one.load)...)
	rows = append(rows, latencyRows("agent", "redemption latency, 16 lanes", sixteen.latencies, 0,
		"same, while 16 lanes share group commits"+sixteen.load)...)
	return rows, nil
}

func agentRateRow(r agentRun, raw float64, refName string, ratio float64) Row {
	lanes := "1 lane"
	if r.lanes > 1 {
		lanes = fmt.Sprintf("%d lanes", r.lanes)
	}
	rate := r.rate()
	note := fmt.Sprintf("%d redemptions in %.1f s, each POS lane sequential over its own loopback connection", r.accepted, r.elapsed.Seconds())
	if r.exhausted {
		note += "; the catalog ran out of coupons before the time was up"
	}
	if r.rawBefore > 0 {
		note += fmt.Sprintf("; raw appends measured just before: %.0f/s (%.2fx)", r.rawBefore, rate/r.rawBefore)
	}
	note += r.load
	return Row{
		Group: "agent", Name: "durable offline redemptions, " + lanes, Value: rate, Unit: "redemptions/s",
		Target: fmt.Sprintf(">= %gx raw", ratio), Reference: refName, Ratio: rate / raw,
		Pass: pass(rate >= ratio*raw), Note: note,
	}
}

// agentCatalog is the store's catalog: one fixed-discount single-use offer that allows
// offline use, with n coupons.
func agentCatalog(n int, now time.Time) tillkeep.CatalogSnapshot {
	snap := tillkeep.CatalogSnapshot{
		StoreID: agentStoreID,
		Seq:     1,
		Store: tillkeep.Store{ID: agentStoreID, Name: "Bench store", Zone: "east", Concept: "grocery",
			Timezone: "America/New_York", Currency: "USD"},
		AsOf: now,
		Offers: []tillkeep.Offer{{
			ID: agentOfferID, Name: "10 USD off",
			Discount:   tillkeep.Discount{Type: tillkeep.DiscountFixed, Amount: 1000, Currency: "USD"},
			ValidFrom:  now.AddDate(0, -1, 0),
			ValidUntil: now.AddDate(1, 0, 0),
			Expiry:     tillkeep.Expiry{Mode: tillkeep.ExpiryWithOffer},
			Rules:      tillkeep.Rules{MinBill: 5000, MaxRedemptionsPerCoupon: 1, Stores: []string{agentStoreID}},
			Offline:    tillkeep.OfflinePolicy{Allowed: true},
		}},
		Coupons: make([]tillkeep.Coupon, n),
	}
	for i := range snap.Coupons {
		snap.Coupons[i] = tillkeep.Coupon{Code: agentCode(i), OfferID: agentOfferID, Status: tillkeep.CouponActive,
			CreatedAt: now.AddDate(0, 0, -7), IssuedAt: now.AddDate(0, 0, -7)}
	}
	return snap
}

func agentCode(i int) string { return fmt.Sprintf("A%08d", i) }

// laneLoad drives POS lanes against one agent. Coupons and transaction ids are handed
// out from one counter across runs, so that every redemption is a first use of a fresh
// coupon under a fresh transaction id.
type laneLoad struct {
	url      string
	client   *http.Client
	next     atomic.Int64
	total    int64
	accepted atomic.Int64
}

// errCouponsExhausted ends a lane when every coupon of the catalog has been redeemed.
var errCouponsExhausted = errors.New("no coupons left")

type posRedeemBody struct {
	Code          string         `json:"code"`
	TransactionID string         `json:"transaction_id"`
	Bill          tillkeep.Money `json:"bill"`
}

type posRedeemAnswer struct {
	RedemptionID string         `json:"redemption_id"`
	Mode         string         `json:"mode"`
	Discount     tillkeep.Money `json:"discount"`
}

// run drives lanes concurrent lanes, each sending one redemption after the other,
// for d (or until the coupons run out).
func (l *laneLoad) run(ctx context.Context, lanes int, d time.Duration) (agentRun, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		res      = agentRun{lanes: lanes}
		start    = time.Now()
		deadline = start.Add(d)
	)
	for lane := range lanes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			var n int64
			err := func() error {
				for time.Now().Before(deadline) {
					i := l.next.Add(1) - 1
					if i >= l.total {
						return errCouponsExhausted
					}
					body := posRedeemBody{Code: agentCode(int(i)), TransactionID: fmt.Sprintf("pos%02d-%09d", lane, i),
						Bill: tillkeep.Money{Amount: 12000, Currency: "USD"}}
					var ans posRedeemAnswer
					t0 := time.Now()
					if err := loopbackCall(ctx, l.client, "POST", l.url, agentPosToken, body, 201, &ans); err != nil {
						return err
					}
					lat = append(lat, time.Since(t0))
					if ans.Mode != tillkeep.ModeOffline || ans.Discount.Amount != 1000 || ans.RedemptionID == "" {
						return fmt.Errorf("unexpected answer for %s: %+v", body.Code, ans)
					}
					n++
				}
				return nil
			}()
			mu.Lock()
			defer mu.Unlock()
			res.accepted += n
			res.latencies = append(res.latencies, lat...)
			switch {
			case errors.Is(err, errCouponsExhausted):
				res.exhausted = true
			case err != nil && firstErr == nil:
				firstErr = err
				cancel()
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	l.accepted.Add(res.accepted)
	if firstErr != nil {
		return res, firstErr
	}
	if res.accepted == 0 {
		return res, errors.New("no redemption was accepted")
	}
	return res, nil
}
