package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/config"
	tksync "github.com/tillkeep/tillkeep/sync"
	"github.com/tillkeep/tillkeep/sync/wire"
)

// The reconnect storm (issue #4): many tills that were offline, each holding pending
// redemptions, come back at the same moment and push their journals to one platform.
// Each simulated till talks through the agent's own platform client (sync.Client: the
// same paths, the same retry policy, its own connection) and follows the agent's push:
// read the platform's acknowledged point, upload what is pending, adopt the answer.
// One till in ten loses the answer to its upload and sends it again, as a till does
// after a cut connection. Afterwards the platform's ledger is read back: every till
// must be acknowledged to its last entry and every redemption recorded exactly once.

const (
	stormPending      = 100
	stormTillsByStore = 10
	stormOfferID      = "STORM40"
	// stormResendEvery: one till in this many sends its upload twice.
	stormResendEvery = 10
	// stormAckAttempts bounds how often a till retries reading the platform's
	// acknowledged point (the agent's online budget applies to that call, and in a
	// storm the answer can be late; the agent would try again at its next sync).
	stormAckAttempts = 10
)

// stormTill is one simulated till's outcome.
type stormTill struct {
	till       enrolledTill
	acked      uint64
	converged  time.Duration // since the storm began
	ackRetries int
	err        error
}

func measureStorm(ctx context.Context, e *env) ([]Row, error) {
	tillCount := 1000
	if e.quick {
		tillCount = 100
	}
	p, err := startBenchPlatform(ctx, filepath.Join(e.dir, "storm"))
	if err != nil {
		return nil, err
	}
	defer p.close()

	began := time.Now()
	now := time.Now().UTC()
	var refs [][2]string
	var storeIDs []string
	for i := range tillCount {
		store := fmt.Sprintf("S%04d", i/stormTillsByStore+1)
		if i%stormTillsByStore == 0 {
			storeIDs = append(storeIDs, store)
		}
		refs = append(refs, [2]string{store, fmt.Sprintf("T%02d", i%stormTillsByStore+1)})
	}
	if err := p.putStores(ctx, storeIDs...); err != nil {
		return nil, err
	}
	codes := make([]string, tillCount*stormPending)
	for i := range codes {
		codes[i] = fmt.Sprintf("R%08d", i)
	}
	if err := p.createOffer(ctx, stormOfferID, now, codes); err != nil {
		return nil, err
	}
	tills, err := p.enroll(ctx, loopbackClient(16), refs, 16)
	if err != nil {
		return nil, err
	}
	// The journals the tills wrote while offline, during the last hour.
	journals := make([][]tillkeep.JournalEntry, tillCount)
	outage := now.Add(-time.Hour)
	for k, t := range tills {
		for j := range stormPending {
			en, err := offlineJournalEntry(t, uint64(j+1), codes[k*stormPending+j], stormOfferID,
				outage.Add(time.Duration(rand.Int64N(int64(50*time.Minute)))))
			if err != nil {
				return nil, err
			}
			journals[k] = append(journals[k], en)
		}
		slices.SortFunc(journals[k], func(a, b tillkeep.JournalEntry) int { return a.WallTime.Compare(b.WallTime) })
		for j := range journals[k] {
			// The sequence follows the order the redemptions happened in.
			journals[k][j].Seq = uint64(j + 1)
			journals[k][j].TransactionID = fmt.Sprintf("pos-%s-%s-%06d", t.storeID, t.tillID, j+1)
		}
	}
	clients := make([]*tksync.Client, tillCount)
	quiet := slog.New(slog.DiscardHandler)
	for k, t := range tills {
		if clients[k], err = tksync.NewClient(p.daemon.url, t.token, config.DefaultPlatformTimeout, quiet); err != nil {
			return nil, fmt.Errorf("platform client of till %s/%s: %w", t.storeID, t.tillID, err)
		}
	}
	stepf("storm: %d stores, %d tills enrolled, %d coupons in %s", len(storeIDs), tillCount, len(codes),
		time.Since(began).Round(time.Millisecond))

	// Every till starts at the same instant.
	results := make([]stormTill, tillCount)
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for k := range tills {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			results[k] = reconnect(ctx, clients[k], tills[k], journals[k], k%stormResendEvery == 0)
		}()
	}
	loadBefore := loadAverage()
	stop := profilePhase("storm")
	start := time.Now()
	close(gate)
	wg.Wait()
	elapsed := time.Since(start)
	stop()

	converged, retries := 0, 0
	var firstErr error
	var times []time.Duration
	for _, r := range results {
		retries += r.ackRetries
		if r.err == nil && r.acked == stormPending {
			converged++
			times = append(times, r.converged)
		} else if firstErr == nil {
			firstErr = fmt.Errorf("till %s/%s: acked %d: %v", r.till.storeID, r.till.tillID, r.acked, r.err)
		}
	}
	slices.Sort(times)
	stepf("storm: %d of %d tills converged in %s", converged, tillCount, elapsed.Round(time.Millisecond))

	// What the platform holds, read back from its ledger.
	census, err := p.census(ctx, stormOfferID)
	if err != nil {
		return nil, err
	}
	acked, err := p.ackedSeqs(ctx)
	if err != nil {
		return nil, err
	}
	cases, err := p.conflictCases(ctx, stormOfferID)
	if err != nil {
		return nil, err
	}
	platformAcked, wrongTills := 0, 0
	for _, t := range tills {
		key := t.storeID + "/" + t.tillID
		if acked[key] == stormPending {
			platformAcked++
		}
		if census.byTill[key] != stormPending {
			wrongTills++
		}
	}
	want := tillCount * stormPending
	caseCount := 0
	for _, n := range cases {
		caseCount += n
	}

	label := fmt.Sprintf("%d tills x %d pending", tillCount, stormPending)
	convergedRow := Row{Group: "storm", Name: "tills converged, " + label, Value: float64(converged), Unit: "tills",
		Target: fmt.Sprintf("all %d", tillCount), Pass: pass(converged == tillCount && platformAcked == tillCount),
		Note: fmt.Sprintf("till saw acked_seq %d and the platform's ledger agrees for %d tills; %d tills sent their upload twice (lost answer); %d reads of the acknowledged point missed the agent's %s online budget and were retried after 0.1-0.5 s (a real agent would wait for its next sync)",
			stormPending, platformAcked, (tillCount+stormResendEvery-1)/stormResendEvery, retries, config.DefaultPlatformTimeout)}
	if firstErr != nil {
		convergedRow.Note += "; first failure: " + firstErr.Error()
	}
	countRow := Row{Group: "storm", Name: "redemptions on the platform after the storm", Value: float64(census.total), Unit: "redemptions",
		Target: fmt.Sprintf("exactly %d", want), Pass: pass(census.total == want && census.duplicateSeqs == 0 && wrongTills == 0 && caseCount == 0),
		Note: fmt.Sprintf("read back from the ledger: %d journal positions recorded twice, %d tills without exactly %d, %d conflict cases (all codes distinct: none expected)",
			census.duplicateSeqs, wrongTills, stormPending, caseCount)}
	timeRow := Row{Group: "storm", Name: "reconnect storm, time to converge", Value: elapsed.Seconds(), Unit: "s",
		Note: fmt.Sprintf("all %d tills at once, one connection each (the agent's sync.Client); median till done after %.2f s, p99 %.2f s; %.0f redemptions/s",
			tillCount, latencyPercentile(times, 50).Seconds(), latencyPercentile(times, 99).Seconds(), float64(census.total)/elapsed.Seconds()) + loadNote(loadBefore)}
	return []Row{convergedRow, countRow, timeRow}, nil
}

// reconnect is one till coming back online: the agent's push, once.
func reconnect(ctx context.Context, c *tksync.Client, t enrolledTill, journal []tillkeep.JournalEntry, loseAnswer bool) stormTill {
	res := stormTill{till: t}
	start := time.Now()
	// The platform's acknowledged point decides what is pending.
	var st wire.AckState
	var err error
	for attempt := 0; attempt < stormAckAttempts; attempt++ {
		if st, err = c.Ack(ctx); err == nil || !errors.Is(err, tksync.ErrUnreachable) {
			break
		}
		res.ackRetries++
		time.Sleep(time.Duration(100+rand.IntN(400)) * time.Millisecond)
	}
	if err != nil {
		res.err = fmt.Errorf("read the acknowledged point: %w", err)
		return res
	}
	pending := journal[min(int(st.AckedSeq), len(journal)):]
	for len(pending) > 0 {
		batch := pending[:min(len(pending), ingestBatch)]
		resp, err := c.Push(ctx, wire.PushRequest{Epoch: t.epoch, Entries: batch})
		if err != nil {
			res.err = fmt.Errorf("push %d entries: %w", len(batch), err)
			return res
		}
		if loseAnswer {
			// The answer never reached the till: it sends the same batch again and must
			// be told the same point, with nothing applied twice.
			loseAnswer = false
			again, err := c.Push(ctx, wire.PushRequest{Epoch: t.epoch, Entries: batch})
			if err != nil {
				res.err = fmt.Errorf("push %d entries again: %w", len(batch), err)
				return res
			}
			if again.AckedSeq != resp.AckedSeq {
				res.err = fmt.Errorf("a re-sent upload was acknowledged at %d, the first at %d", again.AckedSeq, resp.AckedSeq)
				return res
			}
			resp = again
		}
		res.acked = resp.AckedSeq
		if resp.AckedSeq > uint64(len(journal)) {
			res.err = fmt.Errorf("platform acknowledged %d entries of a journal of %d", resp.AckedSeq, len(journal))
			return res
		}
		if resp.AckedSeq < batch[len(batch)-1].Seq {
			res.err = fmt.Errorf("platform acknowledged %d after an upload up to %d (resume from %d)", resp.AckedSeq, batch[len(batch)-1].Seq, resp.ResumeFrom)
			return res
		}
		pending = journal[resp.AckedSeq:]
	}
	res.converged = time.Since(start)
	return res
}
