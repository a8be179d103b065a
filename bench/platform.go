package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/platform"
	"github.com/tillkeep/tillkeep/sync/wire"
)

// The platform rows (issue #3): online redemptions per second over the till API, and
// ingest of offline journal uploads with reconciliation, both against a real
// platform.Server on its bolt store, over loopback HTTP.

const (
	onlineOfferID = "ONLINE40"
	ingestOfferID = "INGEST40"
	// onlineCallers is how many tills redeem online at once.
	onlineCallers = 16
	// ingestTills upload their journals at once, each in batches of ingestBatch
	// entries: the agent's own push batch.
	ingestTills = 8
	ingestBatch = 500
	// One entry in doubleEvery of a till redeems a code another till redeemed too: a
	// double use that reconciliation must flag.
	doubleEvery = 10
)

func measurePlatform(ctx context.Context, e *env) ([]Row, error) {
	run, warm := 5*time.Second, 500*time.Millisecond
	onlineCoupons, perTill := 80_000, 25_000
	if e.quick {
		run, warm, onlineCoupons, perTill = 1500*time.Millisecond, 200*time.Millisecond, 20_000, 4_000
	}
	p, err := startBenchPlatform(ctx, filepath.Join(e.dir, "platform"))
	if err != nil {
		return nil, err
	}
	defer p.close()

	seeded, err := p.seedLoad(ctx, "platform", onlineCoupons, perTill)
	if err != nil {
		return nil, err
	}
	client, tills, onlineCodes, ingestCodes, now := seeded.client, seeded.tills, seeded.onlineCodes, seeded.ingestCodes, seeded.now

	online := &onlineLoad{url: p.daemon.url + wire.PathRedemptions, client: client, tills: tills[:onlineCallers], codes: onlineCodes}
	if _, err := online.run(ctx, warm); err != nil {
		return nil, fmt.Errorf("online warm-up: %w", err)
	}
	onlineLoad := loadAverage()
	stop := profilePhase("platform-online")
	on, err := online.run(ctx, run)
	stop()
	if err != nil {
		return nil, fmt.Errorf("online redemptions: %w", err)
	}
	stepf("platform: %d online redemptions in %s", on.accepted, on.elapsed.Round(time.Millisecond))
	onlineRow := Row{Group: "platform", Name: "online redemptions over HTTP", Value: on.rate(), Unit: "redemptions/s",
		Note: fmt.Sprintf("%d tills at once, each sequential POST %s; bolt store, each answer after its commit; p50 %.2f ms, p99 %.2f ms",
			onlineCallers, wire.PathRedemptions, millis(latencyPercentile(on.sorted(), 50)), millis(latencyPercentile(on.sorted(), 99)))}
	if on.exhausted {
		onlineRow.Note += "; coupons ran out before the time was up"
	}
	onlineRow.Note += loadNote(onlineLoad)

	ingestRow, err := measureIngest(ctx, p, client, tills[onlineCallers:], ingestCodes, perTill, now)
	if err != nil {
		return []Row{onlineRow}, fmt.Errorf("ingest (the online row was measured: %.0f redemptions/s): %w", on.rate(), err)
	}
	return []Row{onlineRow, ingestRow}, nil
}

// onlineLoad is tills redeeming online, each one request after the other.
type onlineLoad struct {
	url    string
	client *http.Client
	tills  []enrolledTill
	codes  []string
	next   atomic.Int64
}

type onlineRun struct {
	accepted  int64
	elapsed   time.Duration
	latencies []time.Duration
	exhausted bool
}

func (r onlineRun) rate() float64 { return float64(r.accepted) / r.elapsed.Seconds() }

func (r onlineRun) sorted() []time.Duration {
	s := slices.Clone(r.latencies)
	slices.Sort(s)
	return s
}

func (l *onlineLoad) run(ctx context.Context, d time.Duration) (onlineRun, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		res      onlineRun
		firstErr error
		start    = time.Now()
		deadline = start.Add(d)
	)
	for _, t := range l.tills {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			err := func() error {
				for time.Now().Before(deadline) {
					i := l.next.Add(1) - 1
					if i >= int64(len(l.codes)) {
						return errCouponsExhausted
					}
					id, err := uuid.NewV7()
					if err != nil {
						return err
					}
					at := time.Now().UTC()
					req := wire.RedeemRequest{RedemptionID: id.String(), TransactionID: fmt.Sprintf("pos-%s-%08d", t.tillID, i),
						Code: l.codes[i], Bill: tillkeep.Money{Amount: 12000, Currency: "USD"},
						WallTime: at, HLC: tillkeep.HLC{WallMS: at.UnixMilli()}}
					var ans wire.RedeemResponse
					t0 := time.Now()
					if err := loopbackCall(ctx, l.client, "POST", l.url, t.token, req, http.StatusCreated, &ans); err != nil {
						return err
					}
					lat = append(lat, time.Since(t0))
					if ans.Mode != tillkeep.ModeOnline || ans.Status != tillkeep.RedemptionAccepted || ans.RedemptionID != req.RedemptionID {
						return fmt.Errorf("unexpected answer for %s: %+v", req.Code, ans)
					}
				}
				return nil
			}()
			mu.Lock()
			defer mu.Unlock()
			res.accepted += int64(len(lat))
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
	if firstErr != nil {
		return res, firstErr
	}
	if res.accepted == 0 {
		return res, errors.New("no online redemption was accepted")
	}
	return res, nil
}

// measureIngest uploads the offline journals of several tills at once through POST
// /v1/till/journal in batches of 500, as the agent's push does, and checks afterwards
// that the platform holds every redemption exactly once and flagged every double use.
func measureIngest(ctx context.Context, p *benchPlatform, client *http.Client, tills []enrolledTill, codes []string, perTill int, now time.Time) (Row, error) {
	// Till k's entry j redeems code k*perTill+j, except every doubleEvery-th entry,
	// which redeems the code the next till redeemed in its entry before: a double use
	// across tills, made while both were offline.
	bodies := make([][][]byte, len(tills))
	outage := now.Add(-2 * time.Hour)
	for k, t := range tills {
		entries := make([]tillkeep.JournalEntry, 0, ingestBatch)
		for j := 0; j < perTill; j++ {
			code := codes[k*perTill+j]
			if j%doubleEvery == doubleEvery-1 {
				code = codes[((k+1)%len(tills))*perTill+j-1]
			}
			en, err := offlineJournalEntry(t, uint64(j+1), code, ingestOfferID, outage.Add(time.Duration(j)*100*time.Millisecond))
			if err != nil {
				return Row{}, err
			}
			entries = append(entries, en)
			if len(entries) == ingestBatch || j == perTill-1 {
				b, err := json.Marshal(wire.PushRequest{Epoch: t.epoch, Entries: entries})
				if err != nil {
					return Row{}, fmt.Errorf("encode an upload: %w", err)
				}
				bodies[k] = append(bodies[k], b)
				entries = entries[:0]
			}
		}
	}
	total := len(tills) * perTill

	// When half the entries are in, so that the note can show whether the rate holds
	// up as the ledger grows.
	var acked atomic.Int64
	var halfway atomic.Int64
	loadBefore := loadAverage()
	stop := profilePhase("platform-ingest")
	start := time.Now()
	err := runParallel(ctx, len(tills), len(tills), func(ctx context.Context, k int) error {
		t := tills[k]
		var sent uint64
		for _, b := range bodies[k] {
			var ack wire.PushResponse
			if err := loopbackCallRaw(ctx, client, "POST", p.daemon.url+wire.PathJournal, t.token, b, http.StatusOK, &ack); err != nil {
				return fmt.Errorf("till %s: %w", t.tillID, err)
			}
			sent += uint64(len(ack.Results))
			if n := acked.Add(int64(len(ack.Results))); n >= int64(total/2) && n-int64(len(ack.Results)) < int64(total/2) {
				halfway.Store(int64(time.Since(start)))
			}
			if ack.ResumeFrom != 0 || ack.AckedSeq != sent {
				return fmt.Errorf("till %s: acked %d (resume from %d) after sending %d entries", t.tillID, ack.AckedSeq, ack.ResumeFrom, sent)
			}
		}
		return nil
	})
	elapsed := time.Since(start)
	stop()
	if err != nil {
		return Row{}, err
	}
	stepf("platform: ingested %d journal entries from %d tills in %s", total, len(tills), elapsed.Round(time.Millisecond))

	census, err := p.census(ctx, ingestOfferID)
	if err != nil {
		return Row{}, err
	}
	if census.total != total || census.duplicateSeqs != 0 {
		return Row{}, fmt.Errorf("the platform holds %d redemptions (%d repeated journal positions) of the %d uploaded", census.total, census.duplicateSeqs, total)
	}
	cases, err := p.conflictCases(ctx, ingestOfferID)
	if err != nil {
		return Row{}, err
	}
	doubles := len(tills) * (perTill / doubleEvery)
	if cases[platform.KindDoubleRedemption] != doubles {
		return Row{}, fmt.Errorf("reconciliation flagged %d double_redemption cases (%v); %d double uses were uploaded", cases[platform.KindDoubleRedemption], cases, doubles)
	}
	rate := float64(total) / elapsed.Seconds()
	half := time.Duration(halfway.Load())
	return Row{
		Group: "platform", Name: "offline-upload ingest with reconciliation", Value: rate, Unit: "redemptions/s",
		Target: ">= 20000/s", Pass: pass(rate >= 20_000),
		Note: fmt.Sprintf("%d tills at once, %d entries each in batches of %d over POST %s; 1 in %d a double use across tills (%d cases flagged, checked); all %d recorded once; first half %.0f/s, second half %.0f/s",
			len(tills), perTill, ingestBatch, wire.PathJournal, doubleEvery, doubles, total,
			float64(total/2)/half.Seconds(), float64(total-total/2)/(elapsed-half).Seconds()) + loadNote(loadBefore),
	}, nil
}

// seedLoad creates store S001, the online offer with onlineCoupons codes, the ingest
// offer with perTill codes for each ingest till, and enrolls every till, on any
// backend. label names the figure group in progress lines.
func (p *benchPlatform) seedLoad(ctx context.Context, label string, onlineCoupons, perTill int) (seededLoad, error) {
	now := time.Now().UTC()
	began := time.Now()
	if err := p.putStores(ctx, "S001"); err != nil {
		return seededLoad{}, err
	}
	onlineCodes := make([]string, onlineCoupons)
	for i := range onlineCodes {
		onlineCodes[i] = fmt.Sprintf("N%08d", i)
	}
	if err := p.createOffer(ctx, onlineOfferID, now, onlineCodes); err != nil {
		return seededLoad{}, err
	}
	ingestCodes := make([]string, ingestTills*perTill)
	for i := range ingestCodes {
		ingestCodes[i] = fmt.Sprintf("G%08d", i)
	}
	if err := p.createOffer(ctx, ingestOfferID, now, ingestCodes); err != nil {
		return seededLoad{}, err
	}
	client := loopbackClient(64)
	var refs [][2]string
	for i := range onlineCallers {
		refs = append(refs, [2]string{"S001", fmt.Sprintf("L%02d", i+1)})
	}
	for i := range ingestTills {
		refs = append(refs, [2]string{"S001", fmt.Sprintf("U%02d", i+1)})
	}
	tills, err := p.enroll(ctx, client, refs, 8)
	if err != nil {
		return seededLoad{}, err
	}
	stepf(label+": %d + %d coupons created and %d tills enrolled in %s", onlineCoupons, len(ingestCodes), len(tills),
		time.Since(began).Round(time.Millisecond))

	return seededLoad{client: client, tills: tills, onlineCodes: onlineCodes, ingestCodes: ingestCodes, now: now}, nil
}

// seededLoad is what seedLoad made.
type seededLoad struct {
	client      *http.Client
	tills       []enrolledTill
	onlineCodes []string
	ingestCodes []string
	now         time.Time
}
