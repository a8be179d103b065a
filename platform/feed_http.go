package platform

import (
	"compress/gzip"
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/internal/httpapi"
	"github.com/tillkeep/tillkeep/sync/wire"
)

// Tunables of the feed's HTTP side.
const (
	// deltaCacheEntries and deltaCacheBytes bound the cache of delta answers.
	deltaCacheEntries = 1024
	deltaCacheBytes   = 64 << 20
	// deltaCacheTTL bounds how stale a cached answer may be while the head stands
	// still: offers leave the scope by time alone, without a change in the log.
	deltaCacheTTL = time.Minute
	// compactEvery is how often the change log is compacted; firstCompaction is the
	// delay after start, so that a restart loop does not compact in a loop.
	compactEvery    = time.Hour
	firstCompaction = time.Minute
	// deltaComputeTimeout bounds one delta computation shared by several tills.
	deltaComputeTimeout = 30 * time.Second
)

// feed serves the catalog feed to tills: snapshots spooled to a file and streamed,
// deltas computed once per store and cursor and cached, and the periodic compaction of
// the change log.
type feed struct {
	svc       *Service
	log       *slog.Logger
	tempDir   string
	retention time.Duration

	cache  *deltaCache
	flight flightGroup

	requests  *prometheus.CounterVec // kind, outcome
	cacheUse  *prometheus.CounterVec // result
	compacted prometheus.Counter
}

func newFeed(svc *Service, reg prometheus.Registerer, log *slog.Logger, tempDir string, retention time.Duration) *feed {
	if retention <= 0 {
		retention = DefaultFeedRetention
	}
	f := &feed{
		svc: svc, log: log, tempDir: tempDir, retention: retention,
		cache: newDeltaCache(deltaCacheEntries, deltaCacheBytes, deltaCacheTTL),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tillkeep_platform_feed_requests_total",
			Help: "Catalog feed requests of tills, by kind (snapshot, delta) and outcome (ok, not_modified, refetch, error, cut: a snapshot stream that ended early).",
		}, []string{"kind", "outcome"}),
		cacheUse: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tillkeep_platform_feed_delta_cache_total",
			Help: "Delta answers by how they were obtained: hit (cached), shared (computed once for concurrent tills), miss (computed).",
		}, []string{"result"}),
		compacted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tillkeep_platform_feed_compacted_changes_total",
			Help: "Change-log entries deleted by feed compaction.",
		}),
	}
	reg.MustRegister(f.requests, f.cacheUse, f.compacted)
	return f
}

// outcome names the result of a feed request for the metrics.
func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case tillkeep.ErrorCode(err) == tillkeep.CodeRefetchRequired:
		return "refetch"
	}
	return "error"
}

// snapshot serves GET /v1/till/catalog/snapshot. The snapshot is written to a spool
// file inside one read transaction, and sent from the file as it grows: the read
// transaction lasts as long as the platform takes to read the catalog, never as long as
// a till on a slow link takes to receive it (a long read transaction blocks bbolt's
// remaps, and with them every redemption), while a till on a fast link loads coupons
// while the platform still reads them. An error before the first byte gets a proper
// error answer; one after it cuts the stream, which the till refuses for want of a
// trailer.
func (f *feed) snapshot(w http.ResponseWriter, r *http.Request, t TillRef) (err error) {
	result := "" // set once the answer is under way
	defer func() {
		if result == "" {
			result = outcome(err)
		}
		f.requests.WithLabelValues("snapshot", result).Inc()
	}()
	sp, err := newSnapshotSpool(f.tempDir)
	if err != nil {
		return storageErr(err, "write catalog snapshot")
	}
	ctx, cancel := context.WithCancel(r.Context())
	var info SnapshotInfo
	writerDone := make(chan struct{})
	defer func() {
		cancel()
		<-writerDone // the writer is done with the file before it goes
		sp.remove()
	}()
	go func() {
		defer close(writerDone)
		var err error
		info, err = f.svc.WriteCatalogSnapshot(ctx, t, sp)
		sp.finish(err)
	}()

	extendDeadlines(w)
	if err := sp.waitFor(ctx, 1); err != nil {
		return err // nothing sent yet: the till gets the error itself
	}
	h := w.Header()
	h.Set("Content-Type", wire.SnapshotContentType)
	h.Set("Cache-Control", "no-store")
	h.Set("Vary", "Accept-Encoding")
	var out io.Writer = w
	var gz *gzip.Writer
	if acceptsGzip(r) {
		// Codes and offer ids repeat and compress several times over: it is the
		// difference between minutes and seconds on a store's DSL line.
		h.Set("Content-Encoding", "gzip")
		gz, _ = gzip.NewWriterLevel(w, gzip.BestSpeed)
		out = gz
	} else if size, done, _ := sp.state(); done {
		h.Set("Content-Length", strconv.FormatInt(size, 10))
	}
	w.WriteHeader(http.StatusOK)
	result = "cut" // until the last byte is sent
	flusher := http.NewResponseController(w)
	buf := make([]byte, 256<<10)
	var sent int64
	for {
		size, done, werr := sp.state()
		if werr != nil {
			f.log.Error("catalog snapshot failed while being sent; the till gets a cut stream", "store", t.StoreID, "till", t.TillID, "sent", sent, "err", werr)
			return nil
		}
		if sent == size {
			if done {
				break
			}
			if gz != nil {
				_ = gz.Flush()
			}
			_ = flusher.Flush()
			if err := sp.waitFor(ctx, sent+1); err != nil {
				f.log.Info("catalog snapshot not delivered", "store", t.StoreID, "till", t.TillID, "sent", sent, "err", err)
				return nil
			}
			continue
		}
		extendDeadlines(w)
		n, rerr := sp.r.ReadAt(buf[:min(int64(len(buf)), size-sent)], sent)
		if n > 0 {
			if _, err := out.Write(buf[:n]); err != nil {
				// The answer is under way: the till sees a cut stream without a
				// trailer and drops what it staged.
				f.log.Info("catalog snapshot not delivered", "store", t.StoreID, "till", t.TillID, "sent", sent, "err", err)
				return nil
			}
			sent += int64(n)
		}
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			f.log.Error("read the catalog snapshot spool", "store", t.StoreID, "till", t.TillID, "sent", sent, "err", rerr)
			return nil
		}
	}
	if gz != nil {
		if err := gz.Close(); err != nil {
			f.log.Info("catalog snapshot not delivered", "store", t.StoreID, "till", t.TillID, "err", err)
			return nil
		}
	}
	<-writerDone
	result = "ok"
	f.log.Info("catalog snapshot sent", "store", t.StoreID, "till", t.TillID, "seq", info.Seq,
		"offers", info.Offers, "coupons", info.Coupons, "bytes", sent, "reflects_till_seq", info.ReflectsTillSeq)
	return nil
}

// snapshotSpool is a temporary file written by the snapshot reader and read, while it
// grows, by the sender.
type snapshotSpool struct {
	w, r   *os.File
	notify chan struct{}

	mu      sync.Mutex
	written int64
	done    bool
	err     error
}

func newSnapshotSpool(dir string) (*snapshotSpool, error) {
	w, err := os.CreateTemp(dir, "tillkeep-snapshot-*.ndjson")
	if err != nil {
		return nil, fmt.Errorf("create snapshot spool: %w", err)
	}
	r, err := os.Open(w.Name())
	if err != nil {
		_ = w.Close()
		_ = os.Remove(w.Name())
		return nil, fmt.Errorf("open snapshot spool: %w", err)
	}
	return &snapshotSpool{w: w, r: r, notify: make(chan struct{}, 1)}, nil
}

// Write appends to the spool and wakes the sender.
func (s *snapshotSpool) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	s.mu.Lock()
	s.written += int64(n)
	s.mu.Unlock()
	s.wake()
	return n, err
}

// finish records the end of writing.
func (s *snapshotSpool) finish(err error) {
	s.mu.Lock()
	s.done, s.err = true, err
	s.mu.Unlock()
	s.wake()
}

func (s *snapshotSpool) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *snapshotSpool) state() (written int64, done bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.written, s.done, s.err
}

// waitFor waits until the spool holds at least n bytes or writing ended; it returns
// the writer's error, if writing ended with one.
func (s *snapshotSpool) waitFor(ctx context.Context, n int64) error {
	for {
		written, done, err := s.state()
		if err != nil {
			return err
		}
		if written >= n || done {
			return nil
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *snapshotSpool) remove() {
	_ = s.r.Close()
	_ = s.w.Close()
	_ = os.Remove(s.w.Name())
}

// acceptsGzip reports whether the request accepts a gzip-encoded answer (and does not
// refuse it with q=0).
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		fields := strings.Split(part, ";")
		if !strings.EqualFold(strings.TrimSpace(fields[0]), "gzip") {
			continue
		}
		for _, p := range fields[1:] {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if q, err := strconv.ParseFloat(strings.TrimSpace(v), 64); strings.EqualFold(k, "q") && err == nil && q == 0 {
				return false
			}
		}
		return true
	}
	return false
}

// etag is the validator of a till's last delta page: the feed's head and what of the
// till's journal the platform holds. Either moving means the till has something new.
func etag(pos FeedPosition, storeID string) string {
	return fmt.Sprintf(`W/"feed-%s-%s-%d-%d"`, pos.Epoch, storeID, pos.Head, pos.AckedSeq)
}

// matchesETag reports whether an If-None-Match header names tag (weak comparison).
func matchesETag(header, tag string) bool {
	if header == "" {
		return false
	}
	want := strings.TrimPrefix(tag, "W/")
	for _, part := range strings.Split(header, ",") {
		if strings.TrimPrefix(strings.TrimSpace(part), "W/") == want {
			return true
		}
	}
	return false
}

// delta serves GET /v1/till/catalog?since=SEQ[&limit=N][&epoch=E].
func (f *feed) delta(w http.ResponseWriter, r *http.Request, t TillRef) (err error) {
	result := "ok"
	defer func() {
		if err != nil {
			result = outcome(err)
		}
		f.requests.WithLabelValues("delta", result).Inc()
	}()
	q := r.URL.Query()
	since, err := strconv.ParseUint(q.Get(wire.QuerySince), 10, 64)
	if err != nil {
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "since must be the feed sequence of the till's catalog, a number; a till without a catalog fetches %s", wire.PathSnapshot)
	}
	limit, err := queryLimit(r, wire.DefaultDeltaLimit, wire.MaxDeltaLimit)
	if err != nil {
		return err
	}
	pos, err := f.svc.CatalogFeedPosition(r.Context(), t)
	if err != nil {
		return err
	}
	if err := pos.CheckCursor(since, q.Get(wire.QueryEpoch)); err != nil {
		f.log.Info("till must re-fetch its catalog", "store", t.StoreID, "till", t.TillID, "since", since,
			"head", pos.Head, "floor", pos.Floor, "reason", tillkeep.ErrorMessage(err))
		return err
	}
	tag := etag(pos, t.StoreID)
	if since == pos.Head && matchesETag(r.Header.Get("If-None-Match"), tag) {
		w.Header().Set("ETag", tag)
		w.Header().Set("Cache-Control", "private, no-cache")
		w.WriteHeader(http.StatusNotModified)
		result = "not_modified"
		return nil
	}
	page, err := f.page(r.Context(), t.StoreID, since, limit, pos.Head, pos.Now)
	if err != nil {
		if tillkeep.ErrorCode(err) == tillkeep.CodeRefetchRequired {
			f.log.Info("till must re-fetch its catalog", "store", t.StoreID, "till", t.TillID, "since", since, "reason", tillkeep.ErrorMessage(err))
		}
		return err
	}
	answer := *page // shallow: the shared slices are only read
	answer.AsOf = pos.Now
	answer.Outcomes = nil
	for _, o := range page.Outcomes {
		if o.TillID == t.TillID {
			answer.Outcomes = append(answer.Outcomes, o)
		}
	}
	w.Header().Set("Cache-Control", "private, no-cache")
	if !answer.More {
		// The coupon states include everything up to the head read with the till's
		// acknowledged point (or later), so the till may stop counting its entries up
		// to that point as local use.
		acked := pos.AckedSeq
		answer.ReflectsTillSeq = &acked
		if answer.Seq == pos.Head {
			w.Header().Set("ETag", tag)
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, &answer)
	return nil
}

// page returns the delta page of (store, since, limit) at head, from the cache, from a
// computation another till of the store started, or computed now.
func (f *feed) page(ctx context.Context, storeID string, since uint64, limit int, head uint64, now time.Time) (*wire.Delta, error) {
	key := deltaKey{store: storeID, since: since, limit: limit, head: head}
	if d, ok := f.cache.get(key, now); ok {
		f.cacheUse.WithLabelValues("hit").Inc()
		return d, nil
	}
	fromCache := false
	d, shared, err := f.flight.do(ctx, key, func() (*wire.Delta, error) {
		// Another till's computation may have finished between the lookup above and
		// this one taking the lead.
		if d, ok := f.cache.get(key, now); ok {
			fromCache = true
			return d, nil
		}
		// The tills waiting for this answer must not fail because the first of them
		// hung up: the computation gets a context of its own.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deltaComputeTimeout)
		defer cancel()
		d, computedAt, err := f.svc.CatalogDelta(cctx, storeID, since, limit)
		if err != nil {
			return nil, err
		}
		f.cache.put(deltaKey{store: storeID, since: since, limit: limit, head: computedAt}, d, now)
		return d, nil
	})
	if err != nil {
		return nil, err
	}
	switch {
	case shared:
		f.cacheUse.WithLabelValues("shared").Inc()
	case fromCache:
		f.cacheUse.WithLabelValues("hit").Inc()
	default:
		f.cacheUse.WithLabelValues("miss").Inc()
	}
	return d, nil
}

// compactLoop compacts the change log every compactEvery until ctx ends.
func (f *feed) compactLoop(ctx context.Context) {
	t := time.NewTimer(firstCompaction)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		before := f.svc.now().Add(-f.retention)
		n, err := f.svc.CompactFeed(ctx, before)
		f.compacted.Add(float64(n))
		switch {
		case err != nil && ctx.Err() == nil:
			f.log.Warn("compact the catalog change log", "err", err)
		case n > 0:
			f.log.Info("compacted the catalog change log", "deleted", n, "before", before)
		}
		t.Reset(compactEvery)
	}
}

// deltaKey identifies a delta answer: the same for every till of a store at the same
// cursor, as long as the head stands still.
type deltaKey struct {
	store string
	since uint64
	limit int
	head  uint64
}

// deltaCache is a bounded LRU of delta answers. An answer is dropped as soon as an
// answer at a later head of its store is stored, and after ttl.
type deltaCache struct {
	mu       sync.Mutex
	maxItems int
	maxBytes int64
	ttl      time.Duration
	bytes    int64
	order    *list.List // front: most recently used
	items    map[deltaKey]*list.Element
	heads    map[string]uint64 // the latest head stored per store
}

type cacheEntry struct {
	key  deltaKey
	d    *wire.Delta
	size int64
	at   time.Time
}

func newDeltaCache(maxItems int, maxBytes int64, ttl time.Duration) *deltaCache {
	return &deltaCache{maxItems: maxItems, maxBytes: maxBytes, ttl: ttl, order: list.New(),
		items: map[deltaKey]*list.Element{}, heads: map[string]uint64{}}
}

// deltaSize estimates what an answer holds in memory.
func deltaSize(d *wire.Delta) int64 {
	n := int64(256 + 600*len(d.Offers) + 32*len(d.RemovedOffers))
	for i := range d.Coupons {
		c := &d.Coupons[i]
		n += int64(120 + len(c.Code) + len(c.OfferID) + len(c.CustomerID) + len(c.Status))
	}
	return n
}

func (c *deltaCache) get(k deltaKey, now time.Time) (*wire.Delta, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[k]
	if !ok {
		return nil, false
	}
	ent := e.Value.(*cacheEntry)
	if now.Sub(ent.at) > c.ttl || now.Before(ent.at) {
		c.remove(e)
		return nil, false
	}
	c.order.MoveToFront(e)
	return ent.d, true
}

func (c *deltaCache) put(k deltaKey, d *wire.Delta, now time.Time) {
	size := deltaSize(d)
	c.mu.Lock()
	defer c.mu.Unlock()
	if size > c.maxBytes/4 {
		return // one huge page must not flush everything else
	}
	switch latest := c.heads[k.store]; {
	case k.head < latest:
		return // already superseded
	case k.head > latest:
		c.heads[k.store] = k.head
		for e := c.order.Front(); e != nil; {
			next := e.Next()
			if ent := e.Value.(*cacheEntry); ent.key.store == k.store && ent.key.head < k.head {
				c.remove(e)
			}
			e = next
		}
	}
	if old, ok := c.items[k]; ok {
		c.remove(old)
	}
	c.items[k] = c.order.PushFront(&cacheEntry{key: k, d: d, size: size, at: now})
	c.bytes += size
	for c.order.Len() > c.maxItems || c.bytes > c.maxBytes {
		c.remove(c.order.Back())
	}
}

func (c *deltaCache) remove(e *list.Element) {
	ent := c.order.Remove(e).(*cacheEntry)
	delete(c.items, ent.key)
	c.bytes -= ent.size
}

// flightGroup runs one computation per key at a time; callers that arrive while it runs
// wait for its result instead of starting their own.
type flightGroup struct {
	mu    sync.Mutex
	calls map[deltaKey]*flightCall
}

type flightCall struct {
	done chan struct{}
	d    *wire.Delta
	err  error
	// waiters counts the callers that joined this run (under flightGroup.mu).
	waiters int
}

// do runs fn for key, or waits for the run in progress (until ctx ends); shared
// reports the latter.
func (g *flightGroup) do(ctx context.Context, key deltaKey, fn func() (*wire.Delta, error)) (d *wire.Delta, shared bool, err error) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = map[deltaKey]*flightCall{}
	}
	if c, ok := g.calls[key]; ok {
		c.waiters++
		g.mu.Unlock()
		select {
		case <-c.done:
			return c.d, true, c.err
		case <-ctx.Done():
			return nil, true, ctx.Err()
		}
	}
	c := &flightCall{done: make(chan struct{})}
	g.calls[key] = c
	g.mu.Unlock()
	defer func() {
		if v := recover(); v != nil {
			c.err = fmt.Errorf("compute catalog delta panicked: %v", v)
		}
		g.mu.Lock()
		delete(g.calls, key)
		g.mu.Unlock()
		close(c.done)
		d, err = c.d, c.err
	}()
	c.d, c.err = fn()
	return c.d, false, c.err
}
