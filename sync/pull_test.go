package sync

// Internal tests (package sync) so that their helpers cannot collide with those of the
// package's external tests.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	gosync "sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/config"
	"github.com/tillkeep/tillkeep/internal/faultproxy"
	"github.com/tillkeep/tillkeep/platform"
	"github.com/tillkeep/tillkeep/platform/boltstore"
	"github.com/tillkeep/tillkeep/store"
	"github.com/tillkeep/tillkeep/sync/wire"
)

const (
	feedAdminToken  = "feed-admin-token-0123456789abcdef"
	feedEnrollToken = "feed-enroll-token-0123456789abcdef"
	feedStore       = "S001"
	feedOffer       = "FEED10"
)

// feedClock is the platform's settable clock.
type feedClock struct {
	mu  gosync.Mutex
	now time.Time
}

func (c *feedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *feedClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// feedPlatform is a real platform server on a loopback port over a bbolt file.
type feedPlatform struct {
	t     *testing.T
	srv   *platform.Server
	url   string
	clock *feedClock
}

// startFeedPlatform serves the platform, through wrap when it is not nil.
func startFeedPlatform(t *testing.T, wrap func(http.Handler) http.Handler) *feedPlatform {
	t.Helper()
	st := boltstore.MustOpen(t)
	clock := &feedClock{now: time.Now().UTC().Truncate(time.Second)}
	srv, err := platform.NewServer(st, platform.ServerConfig{AdminToken: feedAdminToken, EnrollToken: feedEnrollToken,
		AutoRevoke: true, Now: clock.Now, TempDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	p := &feedPlatform{t: t, srv: srv, clock: clock}
	if wrap != nil {
		hs := httptest.NewServer(wrap(srv.Handler()))
		t.Cleanup(hs.Close)
		p.url = hs.URL
		return p
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeListener(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("platform stopped with %v", err)
		}
	})
	p.url = "http://" + ln.Addr().String()
	return p
}

func (p *feedPlatform) svc() *platform.Service { return p.srv.Service() }

// seed creates the store, a single-use offer and n coupons with scattered codes.
func (p *feedPlatform) seed(n int) []string {
	p.t.Helper()
	ctx := context.Background()
	if _, err := p.svc().PutStore(ctx, tillkeep.Store{ID: feedStore, Name: "Main", Timezone: "UTC", Currency: "USD"}); err != nil {
		p.t.Fatal(err)
	}
	now := p.clock.Now()
	_, err := p.svc().CreateOffer(ctx, tillkeep.Offer{
		ID: feedOffer, Name: "10 off", Discount: tillkeep.Discount{Type: tillkeep.DiscountFixed, Amount: 1000, Currency: "USD"},
		ValidFrom: now.AddDate(0, 0, -1), ValidUntil: now.AddDate(1, 0, 0),
		Offline: tillkeep.OfflinePolicy{Allowed: true}, Rules: tillkeep.Rules{Stores: []string{feedStore}},
	})
	if err != nil {
		p.t.Fatal(err)
	}
	return p.addCodes(0, n)
}

// addCodes creates coupons first..first+n-1; their codes do not sort in creation order.
func (p *feedPlatform) addCodes(first, n int) []string {
	p.t.Helper()
	codes := make([]string, n)
	for i := range codes {
		codes[i] = fmt.Sprintf("Q%02d%06d", (first+i)*37%97, first+i)
	}
	if _, err := p.svc().CreateCoupons(context.Background(), feedOffer, platform.CouponsRequest{Codes: codes}, nil); err != nil {
		p.t.Fatal(err)
	}
	return codes
}

func (p *feedPlatform) revoke(codes ...string) {
	p.t.Helper()
	if _, err := p.svc().Revoke(context.Background(), platform.RevokeRequest{Codes: codes}, nil); err != nil {
		p.t.Fatal(err)
	}
}

// feedTill is a till's ledger and syncer against a platform URL.
type feedTill struct {
	t      *testing.T
	ledger *store.DB
	syncer *Syncer
}

func newFeedTill(t *testing.T, url, tillID string) *feedTill {
	t.Helper()
	ctx := context.Background()
	cfg := config.DefaultAgent()
	cfg.DataDir = t.TempDir()
	cfg.StoreID, cfg.TillID = feedStore, tillID
	cfg.PosToken = "pos-token-0123456789abcdef"
	cfg.Platform.URL = url
	cfg.Platform.EnrollToken = feedEnrollToken
	log := slog.New(slog.DiscardHandler)
	db, err := store.Open(filepath.Join(cfg.DataDir, store.FileName), store.Options{StoreID: feedStore, TillID: tillID, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := Enroll(ctx, cfg, log); err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, db, log)
	if err != nil {
		t.Fatal(err)
	}
	return &feedTill{t: t, ledger: db, syncer: s}
}

func (tl *feedTill) pull() {
	tl.t.Helper()
	if err := tl.syncer.Pull(context.Background()); err != nil {
		tl.t.Fatalf("pull: %v", err)
	}
}

func (tl *feedTill) state() store.CatalogState {
	tl.t.Helper()
	cs, err := tl.ledger.CatalogState(context.Background())
	if err != nil {
		tl.t.Fatal(err)
	}
	return cs
}

func (tl *feedTill) coupon(code string) tillkeep.LocalState {
	tl.t.Helper()
	st, err := tl.ledger.Lookup(context.Background(), code, "")
	if err != nil {
		tl.t.Fatalf("lookup %s: %v", code, err)
	}
	return st
}

// redeemOffline journals an offline redemption of code, as the agent would.
func (tl *feedTill) redeemOffline(code string) {
	tl.t.Helper()
	id := uuid.Must(uuid.NewV7()).String()
	now := time.Now().UTC()
	_, _, err := tl.ledger.Record(context.Background(), tillkeep.RecordRequest{
		TransactionID: "tx-" + id, RequestHash: id, Code: code,
		Decide: func(st tillkeep.LocalState) (tillkeep.JournalEntry, error) {
			if st.Coupon.Redemptions+st.LocalCouponRedemptions >= 1 {
				return tillkeep.JournalEntry{}, tillkeep.Errorf(tillkeep.CodeAlreadyRedeemed, "used")
			}
			return tillkeep.JournalEntry{
				RedemptionID: id, Bill: tillkeep.NewMoney(5000, "USD"), Discount: tillkeep.NewMoney(1000, "USD"),
				Mode: tillkeep.ModeOffline, WallTime: now, HLC: tillkeep.NextHLC(st.LastHLC, now.UnixMilli()),
			}, nil
		},
	})
	if err != nil {
		tl.t.Fatalf("redeem %s offline: %v", code, err)
	}
}

func TestPullBootstrapsThenFollowsDeltas(t *testing.T) {
	p := startFeedPlatform(t, nil)
	codes := p.seed(300)
	tl := newFeedTill(t, p.url, "T01")

	tl.pull()
	cs := tl.state()
	if cs.Coupons != 300 || cs.Offers != 1 || cs.Seq == 0 {
		t.Fatalf("catalog after bootstrap: %+v", cs)
	}
	if epoch, _ := tl.ledger.Cursor(context.Background(), cursorCatalogEpoch); epoch != p.svc().Epoch() {
		t.Fatalf("catalog epoch %q, want %q", epoch, p.svc().Epoch())
	}
	if st, err := tl.ledger.Store(context.Background()); err != nil || st.ID != feedStore || st.Currency != "USD" {
		t.Fatalf("store record %+v, %v", st, err)
	}
	if tl.syncer.Status().LastPullAt.IsZero() {
		t.Fatal("LastPullAt not recorded")
	}

	// A coupon revoked centrally: the till learns it at the next pull.
	p.revoke(codes[17])
	tl.pull()
	if got := tl.coupon(codes[17]); got.Coupon.Status != tillkeep.CouponRevoked || got.Coupon.RevokedAt.IsZero() {
		t.Fatalf("%s after the delta: %+v", codes[17], got.Coupon)
	}
	if got := tl.state(); got.Seq <= cs.Seq || got.Coupons != 300 {
		t.Fatalf("catalog after the delta: %+v (was %+v)", got, cs)
	}

	// Offline redemptions, pushed: the next pull reflects them in the coupon counts and
	// stops counting them as local use.
	tl.redeemOffline(codes[1])
	tl.redeemOffline(codes[2])
	if got := tl.coupon(codes[1]); got.LocalCouponRedemptions != 1 {
		t.Fatalf("local use before the push: %+v", got)
	}
	if err := tl.syncer.Push(context.Background()); err != nil {
		t.Fatal(err)
	}
	tl.pull()
	got := tl.coupon(codes[1])
	if got.Coupon.Redemptions != 1 || got.Coupon.Status != tillkeep.CouponRedeemed || got.LocalCouponRedemptions != 0 {
		t.Fatalf("%s after push and pull: %+v", codes[1], got)
	}
	if cs := tl.state(); cs.ReflectsTillSeq != 2 {
		t.Fatalf("reflects_till_seq %d, want 2", cs.ReflectsTillSeq)
	}
	// A coupon added to the offer arrives too.
	added := p.addCodes(1000, 1)
	tl.pull()
	if got := tl.coupon(added[0]); got.Coupon.Status != tillkeep.CouponActive || got.Offer.ID != feedOffer {
		t.Fatalf("a new coupon after the pull: %+v", got)
	}
}

var notModifiedMetric = regexp.MustCompile(`tillkeep_platform_feed_requests_total\{kind="delta",outcome="not_modified"\} (\d+)`)

func (p *feedPlatform) notModified() int {
	p.t.Helper()
	resp, err := http.Get(p.url + "/metrics")
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := notModifiedMetric.FindSubmatch(b)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

func TestPullOfAnUnchangedFeedIsCheap(t *testing.T) {
	p := startFeedPlatform(t, nil)
	p.seed(20)
	tl := newFeedTill(t, p.url, "T01")
	tl.pull()
	before := tl.state()

	// The first delta at the head is empty: the catalog is marked current, no more.
	p.clock.Add(time.Minute)
	tl.pull()
	after := tl.state()
	if after.Seq != before.Seq || !after.SyncedAt.After(before.SyncedAt) {
		t.Fatalf("an empty delta: %+v → %+v", before, after)
	}
	if tag, _ := tl.ledger.Cursor(context.Background(), cursorCatalogETag); tag == "" {
		t.Fatal("no validator kept after a delta at the head")
	}
	// The next one is answered 304 and still counts as a sync.
	if n := p.notModified(); n != 0 {
		t.Fatalf("%d not-modified answers before", n)
	}
	tl.pull()
	if n := p.notModified(); n != 1 {
		t.Fatalf("%d not-modified answers, want 1", n)
	}
	if got := tl.state(); got.Seq != before.Seq || got.SyncedAt.Before(after.SyncedAt) {
		t.Fatalf("after a 304: %+v", got)
	}
}

func TestPullPagesThroughLongDeltas(t *testing.T) {
	old := deltaPageLimit
	deltaPageLimit = 7
	t.Cleanup(func() { deltaPageLimit = old })

	p := startFeedPlatform(t, nil)
	codes := p.seed(60)
	tl := newFeedTill(t, p.url, "T01")
	tl.pull()
	p.revoke(codes[:25]...)
	added := p.addCodes(500, 10)
	tl.pull()
	for _, c := range codes[:25] {
		if got := tl.coupon(c); got.Coupon.Status != tillkeep.CouponRevoked {
			t.Fatalf("%s after paging: %+v", c, got.Coupon)
		}
	}
	for _, c := range added {
		tl.coupon(c)
	}
	if cs := tl.state(); cs.Coupons != 70 {
		t.Fatalf("catalog after paging: %+v", cs)
	}
}

func TestPullRefetchesAfterCompactionWithoutLosingRedemptions(t *testing.T) {
	p := startFeedPlatform(t, nil)
	codes := p.seed(50)
	tl := newFeedTill(t, p.url, "T01")
	tl.pull()
	cursor := tl.state().Seq

	// The till redeems offline and does not sync for a long time; the platform moves on
	// and compacts its history past the till's cursor.
	tl.redeemOffline(codes[3])
	tl.redeemOffline(codes[4])
	p.revoke(codes[10])
	p.clock.Add(40 * 24 * time.Hour)
	p.revoke(codes[11])
	if n, err := p.svc().CompactFeed(context.Background(), p.clock.Now().Add(-platform.DefaultFeedRetention)); err != nil || n == 0 {
		t.Fatalf("compaction: %d, %v", n, err)
	}
	tl.pull() // 410 → push → snapshot
	cs := tl.state()
	if cs.Seq <= cursor || cs.ReflectsTillSeq != 2 || cs.Coupons != 50 {
		t.Fatalf("catalog after the re-fetch: %+v", cs)
	}
	st, err := tl.ledger.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.LastSeq != 2 || st.AckedSeq != 2 || st.PendingUploads != 0 {
		t.Fatalf("journal after the re-fetch: %+v", st)
	}
	for _, c := range codes[3:5] {
		if got := tl.coupon(c); got.Coupon.Status != tillkeep.CouponRedeemed || got.LocalCouponRedemptions != 0 {
			t.Fatalf("%s after the re-fetch: %+v", c, got)
		}
	}
	for _, c := range codes[10:12] {
		if got := tl.coupon(c); got.Coupon.Status != tillkeep.CouponRevoked {
			t.Fatalf("%s after the re-fetch: %+v", c, got.Coupon)
		}
	}
	// Deltas continue from the snapshot.
	p.revoke(codes[20])
	tl.pull()
	if got := tl.coupon(codes[20]); got.Coupon.Status != tillkeep.CouponRevoked {
		t.Fatalf("%s after the next delta: %+v", codes[20], got.Coupon)
	}
}

func TestPullCutSnapshotKeepsTheOldCatalog(t *testing.T) {
	p := startFeedPlatform(t, nil)
	codes := p.seed(4000)
	proxy, err := faultproxy.New(p.url[len("http://"):], nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	tl := newFeedTill(t, proxy.URL(), "T01")
	tl.pull()
	before := tl.state()

	// The platform replaces the catalog while the till must re-fetch it.
	p.revoke(codes[5])
	if err := tl.ledger.SetCursor(context.Background(), cursorCatalogEpoch, ""); err != nil {
		t.Fatal(err)
	}
	if err := proxy.Set(faultproxy.CutAfter{Bytes: 3000}); err != nil {
		t.Fatal(err)
	}
	err = tl.syncer.Pull(context.Background())
	if err == nil {
		t.Fatal("a pull through a cut snapshot succeeded")
	}
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("a cut snapshot is %v, want ErrUnreachable", err)
	}
	if got := tl.state(); got != before {
		t.Fatalf("a cut snapshot changed the catalog: %+v → %+v", before, got)
	}
	if got := tl.coupon(codes[5]); got.Coupon.Status != tillkeep.CouponActive {
		t.Fatalf("%s changed by a cut snapshot: %+v", codes[5], got.Coupon)
	}

	if err := proxy.Set(faultproxy.Pass{}); err != nil {
		t.Fatal(err)
	}
	tl.syncer.breaker.Success()
	tl.pull()
	if got := tl.coupon(codes[5]); got.Coupon.Status != tillkeep.CouponRevoked {
		t.Fatalf("%s after the retried snapshot: %+v", codes[5], got.Coupon)
	}
	if got := tl.state(); got.Coupons != 4000 || got.Seq <= before.Seq {
		t.Fatalf("catalog after the retried snapshot: %+v", got)
	}
}

func TestPullRefusesASnapshotWithAWrongChecksum(t *testing.T) {
	var corrupt gosync.Map // path → true: corrupt the next snapshot
	wrap := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != wire.PathSnapshot {
				h.ServeHTTP(w, r)
				return
			}
			if _, on := corrupt.Load("on"); !on {
				h.ServeHTTP(w, r)
				return
			}
			r.Header.Del("Accept-Encoding")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			body := bytes.Replace(rec.Body.Bytes(), []byte(`"s":"revoked"`), []byte(`"s":"active"`), 1)
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.WriteHeader(rec.Code)
			_, _ = w.Write(body)
		})
	}
	p := startFeedPlatform(t, wrap)
	codes := p.seed(30)
	tl := newFeedTill(t, p.url, "T01")
	tl.pull()
	before := tl.state()

	p.revoke(codes[9])
	corrupt.Store("on", true)
	if err := tl.ledger.SetCursor(context.Background(), cursorCatalogEpoch, ""); err != nil {
		t.Fatal(err)
	}
	err := tl.syncer.Pull(context.Background())
	if !errors.Is(err, wire.ErrSnapshotCorrupt) {
		t.Fatalf("a snapshot with a wrong digest: %v", err)
	}
	if got := tl.state(); got != before {
		t.Fatalf("a refused snapshot changed the catalog: %+v → %+v", before, got)
	}
	if got := tl.coupon(codes[9]); got.Coupon.Status != tillkeep.CouponActive {
		t.Fatalf("a refused snapshot reached the cache: %+v", got.Coupon)
	}
	corrupt.Delete("on")
	tl.pull()
	if got := tl.coupon(codes[9]); got.Coupon.Status != tillkeep.CouponRevoked {
		t.Fatalf("%s after a sound snapshot: %+v", codes[9], got.Coupon)
	}
}
