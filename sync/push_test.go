package sync_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/config"
	"github.com/tillkeep/tillkeep/platform"
	"github.com/tillkeep/tillkeep/platform/boltstore"
	"github.com/tillkeep/tillkeep/store"
	tksync "github.com/tillkeep/tillkeep/sync"
)

const (
	adminToken  = "admin-token-0123456789abcdef"
	enrollToken = "enroll-token-0123456789abcdef"
	storeID     = "S001"
	offerID     = "SINGLE"
)

// platformUnderTest is a real platform server on a loopback port, over a bbolt file that
// can be closed, copied and reopened to play "restored from an older backup".
type platformUnderTest struct {
	t    *testing.T
	dir  string
	addr string
	st   *boltstore.Store
	srv  *platform.Server
	hs   *http.Server
}

func startPlatform(t *testing.T, dir, addr string) *platformUnderTest {
	t.Helper()
	st, err := boltstore.OpenDir(dir, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := platform.NewServer(st, platform.ServerConfig{AdminToken: adminToken, EnrollToken: enrollToken, AutoRevoke: true})
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	for i := 0; ; i++ {
		ln, err = net.Listen("tcp", addr)
		if err == nil {
			break
		}
		if i > 50 {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p := &platformUnderTest{t: t, dir: dir, addr: ln.Addr().String(), st: st, srv: srv, hs: &http.Server{Handler: srv.Handler()}}
	go p.hs.Serve(ln)
	t.Cleanup(p.stop)
	return p
}

func (p *platformUnderTest) stop() {
	if p.hs == nil {
		return
	}
	_ = p.hs.Close()
	_ = p.st.Close()
	p.hs = nil
}

func (p *platformUnderTest) url() string { return "http://" + p.addr }

// seed creates the store, a single-use offer allowed offline, and n coupons.
func (p *platformUnderTest) seed(ctx context.Context, n int) []string {
	p.t.Helper()
	svc := p.srv.Service()
	if _, err := svc.PutStore(ctx, tillkeep.Store{ID: storeID, Name: "Main", Timezone: "UTC", Currency: "USD"}); err != nil {
		p.t.Fatal(err)
	}
	now := time.Now().UTC()
	_, err := svc.CreateOffer(ctx, tillkeep.Offer{
		ID: offerID, Name: "10 off", Discount: tillkeep.Discount{Type: tillkeep.DiscountFixed, Amount: 1000, Currency: "USD"},
		ValidFrom: now.AddDate(0, 0, -1), ValidUntil: now.AddDate(0, 1, 0),
		Offline: tillkeep.OfflinePolicy{Allowed: true},
	})
	if err != nil {
		p.t.Fatal(err)
	}
	codes := make([]string, n)
	for i := range codes {
		codes[i] = fmt.Sprintf("C%04d", i)
	}
	if _, err := svc.CreateCoupons(ctx, offerID, platform.CouponsRequest{Codes: codes}, nil); err != nil {
		p.t.Fatal(err)
	}
	return codes
}

// redemptionsOf counts the platform's redemptions of one till.
func (p *platformUnderTest) redemptionsOf(ctx context.Context, tillID string) int {
	p.t.Helper()
	n, cursor := 0, ""
	for {
		page, next, err := p.srv.Service().ListRedemptions(ctx, platform.RedemptionFilter{TillID: tillID}, cursor, 500)
		if err != nil {
			p.t.Fatal(err)
		}
		n += len(page)
		if next == "" {
			return n
		}
		cursor = next
	}
}

// till is a real ledger plus a syncer, without the POS API.
type till struct {
	cfg    config.Agent
	ledger *store.DB
	syncer *tksync.Syncer
}

func newTill(t *testing.T, platformURL, tillID string, codes []string) *till {
	t.Helper()
	ctx := context.Background()
	cfg := config.DefaultAgent()
	cfg.DataDir = t.TempDir()
	cfg.StoreID, cfg.TillID = storeID, tillID
	cfg.PosToken = "pos-token-0123456789abcdef"
	cfg.Platform.URL = platformURL
	cfg.Platform.EnrollToken = enrollToken
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := store.Open(filepath.Join(cfg.DataDir, store.FileName), store.Options{StoreID: storeID, TillID: tillID, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	now := time.Now().UTC()
	snap := tillkeep.CatalogSnapshot{
		StoreID: storeID, Seq: 1, AsOf: now,
		Store: tillkeep.Store{ID: storeID, Name: "Main", Timezone: "UTC", Currency: "USD"},
		Offers: []tillkeep.Offer{{ID: offerID, Name: "10 off",
			Discount:  tillkeep.Discount{Type: tillkeep.DiscountFixed, Amount: 1000, Currency: "USD"},
			ValidFrom: now.AddDate(0, 0, -1), ValidUntil: now.AddDate(0, 1, 0),
			Rules: tillkeep.Rules{MaxRedemptionsPerCoupon: 1}, Offline: tillkeep.OfflinePolicy{Allowed: true}}},
	}
	for _, c := range codes {
		snap.Coupons = append(snap.Coupons, tillkeep.Coupon{Code: c, OfferID: offerID, Status: tillkeep.CouponActive})
	}
	if err := db.ReplaceCatalog(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if _, err := tksync.Enroll(ctx, cfg, log); err != nil {
		t.Fatal(err)
	}
	s, err := tksync.New(cfg, db, log)
	if err != nil {
		t.Fatal(err)
	}
	return &till{cfg: cfg, ledger: db, syncer: s}
}

// redeemOffline journals an offline redemption of code, as the agent would.
func (tl *till) redeemOffline(t *testing.T, code string) string {
	t.Helper()
	id := uuid.Must(uuid.NewV7()).String()
	now := time.Now().UTC()
	_, _, err := tl.ledger.Record(context.Background(), tillkeep.RecordRequest{
		TransactionID: "tx-" + id, RequestHash: id, Code: code,
		Decide: func(st tillkeep.LocalState) (tillkeep.JournalEntry, error) {
			return tillkeep.JournalEntry{
				EntryID: id, Kind: tillkeep.EntryRedemption, RedemptionID: id, TransactionID: "tx-" + id,
				Code: code, OfferID: st.Offer.ID, Bill: tillkeep.NewMoney(5000, "USD"), Discount: tillkeep.NewMoney(1000, "USD"),
				Mode: tillkeep.ModeOffline, WallTime: now, HLC: tillkeep.NextHLC(st.LastHLC, now.UnixMilli()),
			}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (tl *till) acked(t *testing.T) uint64 {
	t.Helper()
	seq, err := tl.ledger.AckedSeq(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

func TestPushUploadsPendingEntriesOnce(t *testing.T) {
	ctx := context.Background()
	p := startPlatform(t, t.TempDir(), "127.0.0.1:0")
	codes := p.seed(ctx, 10)
	tl := newTill(t, p.url(), "T01", codes)
	for _, c := range codes[:3] {
		tl.redeemOffline(t, c)
	}
	if err := tl.syncer.Push(ctx); err != nil {
		t.Fatal(err)
	}
	if got := tl.acked(t); got != 3 {
		t.Fatalf("acked seq %d after push, want 3", got)
	}
	// A second push sends nothing new and the platform still holds three.
	if err := tl.syncer.Push(ctx); err != nil {
		t.Fatal(err)
	}
	if n := p.redemptionsOf(ctx, "T01"); n != 3 {
		t.Fatalf("platform holds %d redemptions of T01, want 3", n)
	}
}

func TestPushResendsWhatARestoredPlatformLost(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p := startPlatform(t, dir, "127.0.0.1:0")
	addr := p.addr
	codes := p.seed(ctx, 10)
	tl := newTill(t, p.url(), "T01", codes)
	for _, c := range codes[:3] {
		tl.redeemOffline(t, c)
	}
	if err := tl.syncer.Push(ctx); err != nil {
		t.Fatal(err)
	}
	// Back the platform up at this point (3 acknowledged), then let it take two more.
	p.stop()
	backup := filepath.Join(t.TempDir(), "platform.db")
	copyFile(t, filepath.Join(dir, boltstore.FileName), backup)
	p = startPlatform(t, dir, addr)
	for _, c := range codes[3:5] {
		tl.redeemOffline(t, c)
	}
	if err := tl.syncer.Push(ctx); err != nil {
		t.Fatal(err)
	}
	if got := tl.acked(t); got != 5 {
		t.Fatalf("acked seq %d, want 5", got)
	}
	// Restore the older copy: the platform now knows only three.
	p.stop()
	copyFile(t, backup, filepath.Join(dir, boltstore.FileName))
	p = startPlatform(t, dir, addr)
	if n := p.redemptionsOf(ctx, "T01"); n != 3 {
		t.Fatalf("restored platform holds %d, want 3", n)
	}
	if err := tl.syncer.Push(ctx); err != nil {
		t.Fatal(err)
	}
	if n := p.redemptionsOf(ctx, "T01"); n != 5 {
		t.Fatalf("after the re-send the platform holds %d redemptions, want 5 (no loss, no duplicate)", n)
	}
	if got := tl.acked(t); got != 5 {
		t.Fatalf("acked seq %d after re-send, want 5", got)
	}
}

func TestPushReportsConflictsToTheTill(t *testing.T) {
	ctx := context.Background()
	p := startPlatform(t, t.TempDir(), "127.0.0.1:0")
	codes := p.seed(ctx, 2)
	t1 := newTill(t, p.url(), "T01", codes)
	t2 := newTill(t, p.url(), "T02", codes)
	t1.redeemOffline(t, codes[0])
	second := t2.redeemOffline(t, codes[0])
	if err := t1.syncer.Push(ctx); err != nil {
		t.Fatal(err)
	}
	if err := t2.syncer.Push(ctx); err != nil {
		t.Fatal(err)
	}
	st := t2.syncer.Status()
	if st.Conflicts.Total != 1 || len(st.Conflicts.Recent) != 1 {
		t.Fatalf("till 2 conflicts %+v, want one", st.Conflicts)
	}
	got := st.Conflicts.Recent[0]
	if got.RedemptionID != second || got.ConflictKind != "double_redemption" {
		t.Fatalf("conflict %+v, want double_redemption of %s", got, second)
	}
	// The outcome survives a restart of the syncer (it is kept in the ledger).
	again, err := tksync.New(t2.cfg, t2.ledger, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if again.Status().Conflicts.Total != 1 {
		t.Fatalf("conflicts after restart %+v", again.Status().Conflicts)
	}
}

func TestOnlinePathOpensTheBreakerWhenThePlatformIsGone(t *testing.T) {
	ctx := context.Background()
	p := startPlatform(t, t.TempDir(), "127.0.0.1:0")
	codes := p.seed(ctx, 2)
	tl := newTill(t, p.url(), "T01", codes)
	if err := tl.syncer.Push(ctx); err != nil { // first contact closes the breaker
		t.Fatal(err)
	}
	online := tl.syncer.Online()
	if !online.Reachable() {
		t.Fatal("platform answered, yet the online path says unreachable")
	}
	p.stop()
	if err := tl.syncer.Push(ctx); err == nil {
		t.Fatal("push to a stopped platform succeeded")
	}
	if online.Reachable() {
		t.Fatal("breaker still closed after the platform went away")
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
