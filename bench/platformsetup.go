package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/google/uuid"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/platform"
	"github.com/tillkeep/tillkeep/platform/boltstore"
	"github.com/tillkeep/tillkeep/sync/wire"
)

// Shared set-up of the platform rows (platform.go) and the reconnect storm (storm.go):
// a real platform.Server on a boltstore file in the scratch directory, serving on a
// loopback port. Stores, offers and coupons are created through the Service directly,
// because set-up is not what is measured; every measured call goes over HTTP.

const (
	benchAdminToken  = "bench-admin-token-0123456789abcdef"
	benchEnrollToken = "bench-enroll-token-0123456789abcdef"
)

type benchPlatform struct {
	dir    string
	store  platform.Storage
	server *platform.Server
	daemon *loopbackDaemon
}

func startBenchPlatform(ctx context.Context, dir string) (*benchPlatform, error) {
	st, err := boltstore.OpenDir(dir, boltstore.Options{})
	if err != nil {
		return nil, fmt.Errorf("open the platform's bolt store: %w", err)
	}
	return startBenchPlatformOn(ctx, dir, st)
}

// startBenchPlatformOn serves a platform on st, an opened store of any backend, with
// dir for its spool files; it closes st when it fails, and close closes it.
func startBenchPlatformOn(ctx context.Context, dir string, st platform.Storage) (*benchPlatform, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("make the platform's spool directory: %w", err)
	}
	srv, err := platform.NewServer(st, platform.ServerConfig{
		AdminToken: benchAdminToken, EnrollToken: benchEnrollToken, AutoRevoke: true, TempDir: dir,
	})
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	daemon, err := serveLoopback(ctx, "platform", srv.ServeListener)
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	return &benchPlatform{dir: dir, store: st, server: srv, daemon: daemon}, nil
}

// close stops the server, closes the store and removes its directory.
func (p *benchPlatform) close() {
	if err := p.daemon.stop(); err != nil {
		stepf("platform: stop: %v", err)
	}
	if err := p.store.Close(); err != nil {
		stepf("platform: close store: %v", err)
	}
	_ = os.RemoveAll(p.dir)
}

func (p *benchPlatform) svc() *platform.Service { return p.server.Service() }

func (p *benchPlatform) putStores(ctx context.Context, ids ...string) error {
	for _, id := range ids {
		if _, err := p.svc().PutStore(ctx, tillkeep.Store{ID: id, Name: "Store " + id, Zone: "east", Concept: "grocery",
			Timezone: "America/New_York", Currency: "USD"}); err != nil {
			return fmt.Errorf("create store %s: %w", id, err)
		}
	}
	return nil
}

// createOffer makes a 40 USD off 100 USD single-use offer valid around now that
// allows offline use, with the given codes as its coupons.
func (p *benchPlatform) createOffer(ctx context.Context, id string, now time.Time, codes []string) error {
	o := tillkeep.Offer{
		ID: id, Name: "Bench " + id,
		Discount:   tillkeep.Discount{Type: tillkeep.DiscountFixed, Amount: 4000, Currency: "USD"},
		ValidFrom:  now.AddDate(0, -1, 0),
		ValidUntil: now.AddDate(1, 0, 0),
		Expiry:     tillkeep.Expiry{Mode: tillkeep.ExpiryWithOffer},
		Rules:      tillkeep.Rules{MinBill: 10000, MaxRedemptionsPerCoupon: 1},
		Offline:    tillkeep.OfflinePolicy{Allowed: true},
	}
	if _, err := p.svc().CreateOffer(ctx, o); err != nil {
		return fmt.Errorf("create offer %s: %w", id, err)
	}
	const perCall = 100_000
	for i := 0; i < len(codes); i += perCall {
		part := codes[i:min(i+perCall, len(codes))]
		res, err := p.svc().CreateCoupons(ctx, id, platform.CouponsRequest{Codes: part}, nil)
		if err != nil {
			return fmt.Errorf("create coupons of offer %s: %w", id, err)
		}
		if res.Created != int64(len(part)) {
			return fmt.Errorf("create coupons of offer %s: %d of %d created (%v)", id, res.Created, len(part), res.Errors)
		}
	}
	return nil
}

// enrolledTill is a till enrolled over HTTP, with its own bearer token.
type enrolledTill struct {
	storeID, tillID, token, epoch string
}

// enroll enrolls tills over POST /v1/till/enroll, workers at a time.
func (p *benchPlatform) enroll(ctx context.Context, c *http.Client, refs [][2]string, workers int) ([]enrolledTill, error) {
	out := make([]enrolledTill, len(refs))
	err := runParallel(ctx, len(refs), workers, func(ctx context.Context, i int) error {
		var res wire.EnrollResponse
		req := wire.EnrollRequest{StoreID: refs[i][0], TillID: refs[i][1], EnrollToken: benchEnrollToken}
		if err := loopbackCall(ctx, c, "POST", p.daemon.url+wire.PathEnroll, "", req, http.StatusCreated, &res); err != nil {
			return fmt.Errorf("enroll till %s/%s: %w", refs[i][0], refs[i][1], err)
		}
		if res.Token == "" {
			return fmt.Errorf("enroll till %s/%s: no token in the answer", refs[i][0], refs[i][1])
		}
		out[i] = enrolledTill{storeID: res.StoreID, tillID: res.TillID, token: res.Token, epoch: res.Epoch}
		return nil
	})
	return out, err
}

// runParallel runs fn for 0..n-1 on workers goroutines and returns the first error (the
// others are told to stop through ctx).
func runParallel(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan int)
	done := make(chan struct{})
	for range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range jobs {
				if ctx.Err() != nil {
					continue
				}
				if err := fn(ctx, i); err != nil {
					cancel(err)
				}
			}
		}()
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	for range workers {
		<-done
	}
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// offlineJournalEntry is a till's journal entry of an offline redemption of code, made at
// at: what the agent's ledger writes and its sync uploads.
func offlineJournalEntry(t enrolledTill, seq uint64, code, offerID string, at time.Time) (tillkeep.JournalEntry, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return tillkeep.JournalEntry{}, fmt.Errorf("make a redemption id: %w", err)
	}
	return tillkeep.JournalEntry{
		Seq: seq, EntryID: id.String(), Kind: tillkeep.EntryRedemption, RedemptionID: id.String(),
		StoreID: t.storeID, TillID: t.tillID, TransactionID: fmt.Sprintf("pos-%s-%06d", t.tillID, seq),
		Code: code, OfferID: offerID,
		Bill:     tillkeep.Money{Amount: 12000, Currency: "USD"},
		Discount: tillkeep.Money{Amount: 4000, Currency: "USD"},
		Mode:     tillkeep.ModeOffline,
		WallTime: at, HLC: tillkeep.HLC{WallMS: at.UnixMilli()},
	}, nil
}

// redemptionCensus counts the platform's redemptions of one offer by reading every
// one of them: the check that an upload lost or doubled nothing.
type redemptionCensus struct {
	total         int
	byTill        map[string]int // store/till -> redemptions
	duplicateSeqs int            // (till, seq) recorded more than once
}

func (p *benchPlatform) census(ctx context.Context, offerID string) (redemptionCensus, error) {
	c := redemptionCensus{byTill: map[string]int{}}
	seen := map[string]struct{}{}
	ids := map[string]struct{}{}
	cursor := ""
	for {
		var page []platform.Redemption
		var next string
		err := p.store.View(ctx, func(tx platform.ReadTx) error {
			var err error
			page, next, err = tx.Redemptions(platform.RedemptionFilter{OfferID: offerID}, cursor, 10_000)
			return err
		})
		if err != nil {
			return c, fmt.Errorf("list redemptions of offer %s: %w", offerID, err)
		}
		for _, r := range page {
			if _, dup := ids[r.ID]; dup {
				return c, fmt.Errorf("redemption %s listed twice", r.ID)
			}
			ids[r.ID] = struct{}{}
			c.total++
			c.byTill[r.StoreID+"/"+r.TillID]++
			k := fmt.Sprintf("%s/%s/%d", r.StoreID, r.TillID, r.Seq)
			if _, dup := seen[k]; dup {
				c.duplicateSeqs++
			}
			seen[k] = struct{}{}
		}
		if next == "" {
			return c, nil
		}
		cursor = next
	}
}

// ackedSeqs returns every till's acknowledged journal point, by store/till.
func (p *benchPlatform) ackedSeqs(ctx context.Context) (map[string]uint64, error) {
	out := map[string]uint64{}
	err := p.store.View(ctx, func(tx platform.ReadTx) error {
		tills, err := tx.Tills("")
		for _, t := range tills {
			out[t.StoreID+"/"+t.TillID] = t.AckedSeq
		}
		return err
	})
	return out, err
}

// conflictCases counts the conflict cases of an offer by kind.
func (p *benchPlatform) conflictCases(ctx context.Context, offerID string) (map[string]int, error) {
	out := map[string]int{}
	after := ""
	for {
		var page []platform.Conflict
		err := p.store.View(ctx, func(tx platform.ReadTx) error {
			var err error
			page, err = tx.Conflicts("", after, 10_000)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("list conflicts: %w", err)
		}
		for _, c := range page {
			if c.OfferID == offerID {
				out[c.Kind]++
			}
		}
		if len(page) < 10_000 {
			return out, nil
		}
		after = page[len(page)-1].ID
	}
}
