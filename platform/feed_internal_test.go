package platform

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep/sync/wire"
)

func TestDeltaCacheBounds(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	page := func(coupons int) *wire.Delta {
		return &wire.Delta{Coupons: make([]wire.SnapshotCoupon, coupons)}
	}
	key := func(store string, since, head uint64) deltaKey {
		return deltaKey{store: store, since: since, limit: 100, head: head}
	}

	c := newDeltaCache(3, 1<<20, time.Minute)
	for i := range uint64(4) {
		c.put(key("S1", i, 10), page(1), now)
	}
	if _, ok := c.get(key("S1", 0, 10), now); ok {
		t.Fatal("the least recently used answer survived a full cache")
	}
	for i := uint64(1); i < 4; i++ {
		if _, ok := c.get(key("S1", i, 10), now); !ok {
			t.Fatalf("answer %d was evicted", i)
		}
	}
	// A later head of the store drops its older answers, not other stores'.
	c.put(key("S2", 1, 5), page(1), now)
	c.put(key("S1", 9, 11), page(1), now)
	if _, ok := c.get(key("S1", 3, 10), now); ok {
		t.Fatal("an answer at an older head survived")
	}
	if _, ok := c.get(key("S2", 1, 5), now); !ok {
		t.Fatal("another store's answer was dropped")
	}
	// An answer computed at an older head than one already stored is not kept.
	c.put(key("S1", 2, 10), page(1), now)
	if _, ok := c.get(key("S1", 2, 10), now); ok {
		t.Fatal("a superseded answer was stored")
	}
	// Answers expire.
	if _, ok := c.get(key("S1", 9, 11), now.Add(2*time.Minute)); ok {
		t.Fatal("an answer outlived its time to live")
	}

	// The byte bound holds, and one huge page is not cached at all.
	small := newDeltaCache(100, 40_000, time.Minute)
	for i := range uint64(10) {
		small.put(key("S1", i, 1), page(100), now)
	}
	if small.bytes > small.maxBytes {
		t.Fatalf("cache holds %d bytes, bound %d", small.bytes, small.maxBytes)
	}
	small.put(key("S1", 99, 1), page(10_000), now)
	if _, ok := small.get(key("S1", 99, 1), now); ok {
		t.Fatal("a page larger than a quarter of the cache was cached")
	}
}

func TestFlightGroupSharesOneRun(t *testing.T) {
	var g flightGroup
	var runs atomic.Int32
	release := make(chan struct{})
	k := deltaKey{store: "S1", since: 1, limit: 10, head: 2}
	want := &wire.Delta{Seq: 2}
	var wg sync.WaitGroup
	shared := atomic.Int32{}
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, s, err := g.do(context.Background(), k, func() (*wire.Delta, error) {
				runs.Add(1)
				<-release
				return want, nil
			})
			if err != nil || d != want {
				t.Errorf("do = %v, %v", d, err)
			}
			if s {
				shared.Add(1)
			}
		}()
	}
	// Every caller but the first joins the run in progress; then it finishes.
	deadline := time.Now().Add(10 * time.Second)
	for {
		g.mu.Lock()
		waiters := 0
		if c := g.calls[k]; c != nil {
			waiters = c.waiters
		}
		g.mu.Unlock()
		if waiters == 9 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d callers joined the run in progress, want 9", waiters)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if runs.Load() != 1 || shared.Load() != 9 {
		t.Fatalf("%d runs for one key and %d callers sharing them, want 1 and 9", runs.Load(), shared.Load())
	}

	// A waiter whose request ends stops waiting; a panic is an error, not a crash.
	block := make(chan struct{})
	go func() {
		_, _, _ = g.do(context.Background(), k, func() (*wire.Delta, error) { <-block; return nil, nil })
	}()
	for {
		g.mu.Lock()
		n := len(g.calls)
		g.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := g.do(ctx, k, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled waiter got %v", err)
	}
	close(block)
	other := deltaKey{store: "S2"}
	if _, _, err := g.do(context.Background(), other, func() (*wire.Delta, error) { panic("boom") }); err == nil {
		t.Fatal("a panicking computation returned no error")
	}
}

func TestAcceptsGzipAndETags(t *testing.T) {
	for header, want := range map[string]bool{
		"": false, "gzip": true, "gzip, deflate, br": true, "deflate": false, "GZIP;q=0.5": true,
		"gzip;q=0": false, "gzip; q=0.0": false, "br, gzip;q=0.001": true,
	} {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Accept-Encoding", header)
		if got := acceptsGzip(r); got != want {
			t.Errorf("Accept-Encoding %q: gzip %v, want %v", header, got, want)
		}
	}
	tag := etag(FeedPosition{Epoch: "e1", Head: 7, AckedSeq: 3}, "S1")
	for header, want := range map[string]bool{
		tag: true, `W/"other", ` + tag: true, tag[2:]: true, "": false, `W/"feed-e1-S1-7-4"`: false, "*": false,
	} {
		if got := matchesETag(header, tag); got != want {
			t.Errorf("If-None-Match %q against %s: %v, want %v", header, tag, got, want)
		}
	}
}
