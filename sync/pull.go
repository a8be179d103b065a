package sync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/store"
	"github.com/tillkeep/tillkeep/sync/wire"
)

// Tunables of the catalog pull.
const (
	// cursorCatalogEpoch is the ledger cursor holding the platform epoch the cached
	// catalog came from; feed sequences mean nothing in another epoch.
	cursorCatalogEpoch = "sync.catalog_epoch"
	// cursorCatalogETag holds the validator of the last delta page, sent back in
	// If-None-Match so that an unchanged feed answers 304 without a body.
	cursorCatalogETag = "sync.catalog_etag"
	// snapshotChunk is how many coupons one staging transaction of a snapshot writes:
	// memory holds one chunk, and redemptions commit between chunks.
	snapshotChunk = 16384
	// snapshotTimeout bounds a whole snapshot download and load; snapshotStall bounds
	// a pause in its stream. A store's million coupons take seconds on a LAN and
	// minutes on a slow line, so the stall, not the total, is what detects a dead link.
	snapshotTimeout = 30 * time.Minute
	snapshotStall   = time.Minute
)

// deltaPageLimit is how many change-log entries one delta page may cover. It is a
// variable only so that tests can page through a few changes.
var deltaPageLimit = wire.DefaultDeltaLimit

// Pull brings the till's catalog up to date. Without a catalog (or without knowing
// which platform epoch it came from) the till fetches a snapshot; otherwise it asks for
// the changes after its cursor, page by page. When the platform says the cursor can no
// longer be continued (refetch_required: history compacted, a platform restored from an
// older backup, another epoch, the store's own record changed), the till first pushes
// its journal and only when the platform acknowledged every entry fetches a snapshot.
// No journal entry is ever dropped: a new catalog only changes which entries count as
// local use.
func (s *Syncer) Pull(ctx context.Context) error {
	c := s.currentClient()
	if c == nil {
		return errors.New("pull catalog: till not enrolled")
	}
	cs, err := s.ledger.CatalogState(ctx)
	if err != nil {
		return fmt.Errorf("pull catalog: %w", err)
	}
	epoch, err := s.ledger.Cursor(ctx, cursorCatalogEpoch)
	if err != nil {
		return fmt.Errorf("pull catalog: %w", err)
	}
	if cs.Seq == 0 || epoch == "" {
		err = s.bootstrap(ctx, c)
	} else {
		err = s.pullDeltas(ctx, c, cs, epoch)
		if tillkeep.ErrorCode(err) == tillkeep.CodeRefetchRequired {
			s.log.Info("the platform asks for a fresh catalog snapshot", "cursor", cs.Seq, "reason", tillkeep.ErrorMessage(err))
			err = s.refetch(ctx, c)
		}
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.status.LastPullAt = s.now().UTC()
	s.mu.Unlock()
	return nil
}

// refetch replaces the catalog by a snapshot after the journal is up: the snapshot's
// counts then include everything the till redeemed, and its reflects_till_seq covers it.
func (s *Syncer) refetch(ctx context.Context, c *Client) error {
	if err := s.Push(ctx); err != nil {
		return fmt.Errorf("re-fetch catalog: push the journal first: %w", err)
	}
	st, err := s.ledger.Status(ctx)
	if err != nil {
		return fmt.Errorf("re-fetch catalog: %w", err)
	}
	if st.LastSeq > st.AckedSeq {
		return fmt.Errorf("re-fetch catalog postponed: %d journal entries after seq %d are not acknowledged by the platform yet",
			st.LastSeq-st.AckedSeq, st.AckedSeq)
	}
	return s.bootstrap(ctx, c)
}

// pullDeltas applies delta pages from the catalog's cursor until the platform has no
// more.
func (s *Syncer) pullDeltas(ctx context.Context, c *Client, cs store.CatalogState, epoch string) error {
	since, reflects := cs.Seq, cs.ReflectsTillSeq
	tag, err := s.ledger.Cursor(ctx, cursorCatalogETag)
	if err != nil {
		return fmt.Errorf("pull catalog: %w", err)
	}
	for pages := 1; ; pages++ {
		d, newTag, notModified, err := fetchDelta(ctx, c, since, epoch, tag)
		if err != nil {
			return s.unreachable(fmt.Sprintf("pull catalog changes after %d", since), err)
		}
		s.breaker.Success()
		if notModified {
			return s.ledger.MarkSynced(ctx, s.PlatformNow())
		}
		if d.Since != since || d.Seq < since || (d.Epoch != "" && d.Epoch != epoch) {
			return fmt.Errorf("pull catalog: the platform answered changes %d..%d of epoch %q to a request after %d of epoch %q",
				d.Since, d.Seq, d.Epoch, since, epoch)
		}
		if d.More && d.Seq == since {
			return fmt.Errorf("pull catalog: the platform announced more changes after %d but sent none", since)
		}
		r := reflects
		if d.ReflectsTillSeq != nil {
			r = *d.ReflectsTillSeq
		}
		coupons := make([]tillkeep.Coupon, len(d.Coupons))
		for i := range d.Coupons {
			coupons[i] = d.Coupons[i].Coupon()
		}
		if len(d.Offers) == 0 && len(coupons) == 0 && len(d.RemovedOffers) == 0 && d.Seq == since && r == reflects {
			err = s.ledger.MarkSynced(ctx, d.AsOf)
		} else {
			err = s.ledger.ApplyCatalogChanges(ctx, d.Seq, d.AsOf, d.Offers, coupons, d.RemovedOffers, r)
		}
		if err != nil {
			return fmt.Errorf("apply catalog changes %d..%d: %w", since, d.Seq, err)
		}
		s.noteOutcomes(ctx, d.Outcomes)
		s.log.Debug("catalog changes applied", "since", since, "seq", d.Seq, "offers", len(d.Offers),
			"coupons", len(coupons), "removed_offers", len(d.RemovedOffers), "more", d.More)
		since, reflects, tag = d.Seq, r, ""
		if !d.More {
			if err := s.ledger.SetCursor(ctx, cursorCatalogETag, newTag); err != nil {
				s.log.Warn("keep the catalog feed's validator", "err", err)
			}
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// fetchDelta asks for one page of changes after since, through the bulk client.
func fetchDelta(ctx context.Context, c *Client, since uint64, epoch, ifNoneMatch string) (d wire.Delta, etag string, notModified bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, bulkCallTimeout)
	defer cancel()
	q := url.Values{}
	q.Set(wire.QuerySince, strconv.FormatUint(since, 10))
	q.Set(wire.QueryLimit, strconv.Itoa(deltaPageLimit))
	q.Set(wire.QueryEpoch, epoch)
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+wire.PathCatalog+"?"+q.Encode(), nil)
	if err != nil {
		return d, "", false, fmt.Errorf("build GET %s: %w", wire.PathCatalog, err)
	}
	c.setHeaders(req.Header, c.token, false)
	if ifNoneMatch != "" {
		req.Header.Set("If-None-Match", ifNoneMatch)
	}
	resp, err := c.bulk.Do(req)
	if err != nil {
		return d, "", false, fmt.Errorf("GET %s: %w: %v", wire.PathCatalog, ErrUnreachable, redactErr(err))
	}
	if resp.StatusCode == http.StatusNotModified {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<10))
		_ = resp.Body.Close()
		return d, ifNoneMatch, true, nil
	}
	etag = resp.Header.Get("ETag")
	if err := decodeAnswer(resp, http.MethodGet, wire.PathCatalog, &d); err != nil {
		return d, "", false, err
	}
	return d, etag, false, nil
}

// bootstrap replaces the catalog by a snapshot, streamed into a catalog load: the
// coupons are staged chunk by chunk as they arrive, and the switch happens only after
// the trailer's digest and counts match. A cut stream, a mismatch or any other failure
// aborts the load and leaves the old catalog as it was.
func (s *Syncer) bootstrap(ctx context.Context, c *Client) error {
	ctx, cancel := context.WithTimeout(ctx, snapshotTimeout)
	defer cancel()
	began := time.Now()
	resp, err := fetchSnapshot(ctx, c)
	if err != nil {
		return s.unreachable("fetch catalog snapshot", err)
	}
	defer resp.Body.Close()
	s.breaker.Success()
	watchdog := time.AfterFunc(snapshotStall, cancel)
	defer watchdog.Stop()
	r := wire.NewSnapshotReader(&stallReader{r: resp.Body, watchdog: watchdog})

	h, err := r.Header()
	if err != nil {
		return s.snapshotFailed(err)
	}
	if h.StoreID != s.cfg.StoreID {
		return fmt.Errorf("catalog snapshot: the platform sent store %s's catalog to a till of store %s", h.StoreID, s.cfg.StoreID)
	}
	offers, err := r.Offers()
	if err != nil {
		return s.snapshotFailed(err)
	}
	load, err := s.ledger.BeginCatalog(ctx, h.Store, offers)
	if err != nil {
		return fmt.Errorf("catalog snapshot: %w", err)
	}
	defer load.Abort()
	buf := make([]tillkeep.Coupon, 0, snapshotChunk)
	for {
		batch, done, err := r.Coupons(buf, snapshotChunk)
		if err != nil {
			return s.snapshotFailed(err)
		}
		if len(batch) > 0 {
			if err := load.Add(ctx, batch); err != nil {
				return fmt.Errorf("catalog snapshot: stage coupons: %w", err)
			}
		}
		if done {
			break
		}
	}
	watchdog.Stop() // the stream is complete; the switch must not be cut short
	if err := load.Commit(ctx, h.Seq, h.AsOf, h.ReflectsTillSeq); err != nil {
		return fmt.Errorf("catalog snapshot: switch to the new catalog: %w", err)
	}
	if err := s.ledger.SetCursor(ctx, cursorCatalogEpoch, h.Epoch); err != nil {
		return fmt.Errorf("catalog snapshot: keep its epoch: %w", err)
	}
	if err := s.ledger.SetCursor(ctx, cursorCatalogETag, ""); err != nil {
		s.log.Warn("clear the catalog feed's validator", "err", err)
	}
	nOffers, nCoupons := r.Counts()
	s.log.Info("catalog snapshot loaded", "seq", h.Seq, "offers", nOffers, "coupons", nCoupons,
		"reflects_till_seq", h.ReflectsTillSeq, "took", time.Since(began).Round(time.Millisecond))
	return nil
}

// snapshotFailed names a snapshot stream that must not be applied. A cut stream is the
// network's doing (the breaker hears of it); a corrupt one is not.
func (s *Syncer) snapshotFailed(err error) error {
	if errors.Is(err, wire.ErrSnapshotTruncated) {
		return s.unreachable("catalog snapshot", fmt.Errorf("%w: %w", ErrUnreachable, err))
	}
	return fmt.Errorf("catalog snapshot refused: %w", err)
}

// fetchSnapshot starts the snapshot download. It uses a client derived from the bulk
// one (same transport, retry policy, backoff and logger) without the per-attempt
// timeout, which would cut a long stream: bootstrap's stall watchdog and overall
// timeout bound it instead. Retries happen only until the answer starts.
func fetchSnapshot(ctx context.Context, c *Client) (*http.Response, error) {
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+wire.PathSnapshot, nil)
	if err != nil {
		return nil, fmt.Errorf("build GET %s: %w", wire.PathSnapshot, err)
	}
	c.setHeaders(req.Header, c.token, false)
	req.Header.Set("Accept", wire.SnapshotContentType+", application/json")
	resp, err := streamingClient(c.bulk).Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w: %v", wire.PathSnapshot, ErrUnreachable, redactErr(err))
	}
	if resp.StatusCode != http.StatusOK {
		err := decodeAnswer(resp, http.MethodGet, wire.PathSnapshot, nil)
		if err == nil {
			err = fmt.Errorf("GET %s: %w: unexpected HTTP %d", wire.PathSnapshot, ErrUnreachable, resp.StatusCode)
		}
		return nil, err
	}
	return resp, nil
}

// streamingClient is bulk without a whole-request timeout.
func streamingClient(bulk *retryablehttp.Client) *retryablehttp.Client {
	hc := *bulk.HTTPClient
	hc.Timeout = 0
	return &retryablehttp.Client{
		HTTPClient:      &hc,
		Logger:          bulk.Logger,
		RetryWaitMin:    bulk.RetryWaitMin,
		RetryWaitMax:    bulk.RetryWaitMax,
		RetryMax:        bulk.RetryMax,
		RequestLogHook:  bulk.RequestLogHook,
		ResponseLogHook: bulk.ResponseLogHook,
		CheckRetry:      bulk.CheckRetry,
		Backoff:         bulk.Backoff,
		ErrorHandler:    bulk.ErrorHandler,
		PrepareRetry:    bulk.PrepareRetry,
	}
}

// stallReader pushes back a watchdog at every read that brings data.
type stallReader struct {
	r        io.Reader
	watchdog *time.Timer
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.watchdog.Reset(snapshotStall)
	}
	return n, err
}
