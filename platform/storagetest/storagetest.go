package storagetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/platform"
)

// Run runs the suite. open must return a fresh, empty storage for each call; the
// caller arranges its cleanup (t.Cleanup).
func Run(t *testing.T, open func(t *testing.T) platform.Storage) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s platform.Storage)
	}{
		{"Epoch", testEpoch},
		{"Meta", testMeta},
		{"StoresCustomersOffers", testDefinitions},
		{"Coupons", testCoupons},
		{"CouponIndexes", testCouponIndexes},
		{"Redemptions", testRedemptions},
		{"RedemptionPaging", testRedemptionPaging},
		{"Usage", testUsage},
		{"Tills", testTills},
		{"Conflicts", testConflicts},
		{"ChangeLog", testChangeLog},
		{"ChangeLogCompaction", testChangeCompaction},
		{"AnomaliesAndReports", testAnomaliesReports},
		{"FailedUpdateLeavesNothing", testAtomicity},
		{"ConcurrentCounters", testConcurrentCounters},
		{"CancelledContext", testCancelled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

var ctx = context.Background()

func update(t *testing.T, s platform.Storage, fn func(tx platform.Tx) error) {
	t.Helper()
	if err := s.Update(ctx, fn); err != nil {
		t.Fatalf("update: %v", err)
	}
}

func view(t *testing.T, s platform.Storage, fn func(tx platform.ReadTx) error) {
	t.Helper()
	if err := s.View(ctx, fn); err != nil {
		t.Fatalf("view: %v", err)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func testEpoch(t *testing.T, s platform.Storage) {
	e := s.Epoch()
	if e == "" {
		t.Fatal("epoch is empty")
	}
	if s.Epoch() != e {
		t.Fatal("epoch changed between calls")
	}
}

func testMeta(t *testing.T, s platform.Storage) {
	view(t, s, func(tx platform.ReadTx) error {
		_, err := tx.Meta("codegen/X")
		wantErr(t, "missing meta", err, platform.ErrNotFound)
		return nil
	})
	update(t, s, func(tx platform.Tx) error { return tx.PutMeta("codegen/X", []byte("state-1")) })
	var got []byte
	view(t, s, func(tx platform.ReadTx) error {
		var err error
		got, err = tx.Meta("codegen/X")
		return err
	})
	// got must stay valid after the transaction ended.
	if string(got) != "state-1" {
		t.Fatalf("meta = %q, want state-1", got)
	}
	update(t, s, func(tx platform.Tx) error { return tx.PutMeta("codegen/X", []byte("state-2")) })
	view(t, s, func(tx platform.ReadTx) error {
		v, err := tx.Meta("codegen/X")
		must(t, "meta", err)
		if string(v) != "state-2" {
			t.Fatalf("meta after overwrite = %q", v)
		}
		return nil
	})
}

func offer(id string) tillkeep.Offer {
	return tillkeep.Offer{
		ID: id, Name: "Offer " + id,
		Discount:  tillkeep.Discount{Type: tillkeep.DiscountFixed, Amount: 4000, Currency: "USD"},
		ValidFrom: t0, ValidUntil: t0.AddDate(1, 0, 0),
		Expiry:    tillkeep.Expiry{Mode: tillkeep.ExpiryWithOffer},
		Rules:     tillkeep.Rules{MinBill: 10000, MaxRedemptionsPerCoupon: 1, Stores: []string{"S001"}},
		Offline:   tillkeep.OfflinePolicy{Allowed: true},
		CreatedAt: t0,
	}
}

func testDefinitions(t *testing.T, s platform.Storage) {
	update(t, s, func(tx platform.Tx) error {
		for _, id := range []string{"S003", "S001", "S002"} {
			must(t, "put store", tx.PutStore(tillkeep.Store{ID: id, Name: "Store " + id, Timezone: "America/New_York", Currency: "USD"}))
		}
		must(t, "put customer", tx.PutCustomer(tillkeep.Customer{ID: "C1", Email: "a@example.com", RegisteredAt: t0, Transactions: 3}))
		must(t, "insert offer", tx.InsertOffer(offer("SPRING40")))
		must(t, "insert offer", tx.InsertOffer(offer("AUTUMN10")))
		wantErr(t, "insert existing offer", tx.InsertOffer(offer("SPRING40")), platform.ErrExists)
		wantErr(t, "update missing offer", tx.UpdateOffer(offer("NOPE")), platform.ErrNotFound)
		return nil
	})
	// Upserts replace.
	update(t, s, func(tx platform.Tx) error {
		must(t, "put store", tx.PutStore(tillkeep.Store{ID: "S002", Name: "Renamed", Timezone: "UTC", Currency: "EUR"}))
		o := offer("AUTUMN10")
		o.Name = "changed"
		return tx.UpdateOffer(o)
	})
	view(t, s, func(tx platform.ReadTx) error {
		st, err := tx.Store("S002")
		must(t, "store", err)
		if st.Name != "Renamed" || st.Currency != "EUR" {
			t.Fatalf("store after upsert = %+v", st)
		}
		_, err = tx.Store("S999")
		wantErr(t, "missing store", err, platform.ErrNotFound)

		all, err := tx.Stores("", 0)
		must(t, "stores", err)
		if ids := storeIDs(all); !slices.Equal(ids, []string{"S001", "S002", "S003"}) {
			t.Fatalf("stores = %v, want key order", ids)
		}
		page, err := tx.Stores("S001", 1)
		must(t, "stores page", err)
		if ids := storeIDs(page); !slices.Equal(ids, []string{"S002"}) {
			t.Fatalf("stores after S001 limit 1 = %v", ids)
		}

		c, err := tx.Customer("C1")
		must(t, "customer", err)
		if c.Email != "a@example.com" || !c.RegisteredAt.Equal(t0) || c.Transactions != 3 {
			t.Fatalf("customer = %+v", c)
		}
		_, err = tx.Customer("C2")
		wantErr(t, "missing customer", err, platform.ErrNotFound)

		o, err := tx.Offer("SPRING40")
		must(t, "offer", err)
		if o.Discount.Amount != 4000 || o.Rules.MinBill != 10000 || !slices.Equal(o.Rules.Stores, []string{"S001"}) || !o.ValidFrom.Equal(t0) {
			t.Fatalf("offer did not round-trip: %+v", o)
		}
		offers, err := tx.Offers("", 0)
		must(t, "offers", err)
		if len(offers) != 2 || offers[0].ID != "AUTUMN10" || offers[0].Name != "changed" || offers[1].ID != "SPRING40" {
			t.Fatalf("offers = %+v", offers)
		}
		return nil
	})
}

func storeIDs(ss []tillkeep.Store) []string {
	var ids []string
	for _, s := range ss {
		ids = append(ids, s.ID)
	}
	return ids
}

func codes(cs []tillkeep.Coupon) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, c.Code)
	}
	return out
}

func coupon(offerID, code string) tillkeep.Coupon {
	return tillkeep.Coupon{Code: code, OfferID: offerID, Status: tillkeep.CouponActive, CreatedAt: t0}
}

func testCoupons(t *testing.T, s platform.Storage) {
	update(t, s, func(tx platform.Tx) error {
		existing, err := tx.InsertCoupons([]tillkeep.Coupon{coupon("O1", "C3"), coupon("O1", "C1"), coupon("O1", "C2")})
		must(t, "insert coupons", err)
		if len(existing) != 0 {
			t.Fatalf("fresh insert reported existing %v", existing)
		}
		return nil
	})
	update(t, s, func(tx platform.Tx) error {
		// C2 exists; C4 appears twice in the batch: the first is inserted.
		batch := []tillkeep.Coupon{coupon("O1", "C4"), coupon("O1", "C2"), coupon("O2", "C5"), coupon("O1", "C4")}
		batch[0].CustomerID = "first"
		existing, err := tx.InsertCoupons(batch)
		must(t, "insert coupons", err)
		if !slices.Equal(existing, []string{"C2", "C4"}) {
			t.Fatalf("existing = %v, want [C2 C4] in input order", existing)
		}
		c4, err := tx.Coupon("C4")
		must(t, "coupon C4", err)
		if c4.CustomerID != "first" {
			t.Fatalf("the first of two equal codes in a batch must win, got %+v", c4)
		}
		return nil
	})
	view(t, s, func(tx platform.ReadTx) error {
		_, err := tx.Coupon("NOPE")
		wantErr(t, "missing coupon", err, platform.ErrNotFound)
		c, err := tx.Coupon("C1")
		must(t, "coupon", err)
		if c.OfferID != "O1" || c.Status != tillkeep.CouponActive || !c.CreatedAt.Equal(t0) {
			t.Fatalf("coupon = %+v", c)
		}
		all, err := tx.CouponsByOffer("O1", "", 0)
		must(t, "coupons by offer", err)
		if got := codes(all); !slices.Equal(got, []string{"C1", "C2", "C3", "C4"}) {
			t.Fatalf("coupons of O1 = %v", got)
		}
		page, err := tx.CouponsByOffer("O1", "C2", 1)
		must(t, "coupons page", err)
		if got := codes(page); !slices.Equal(got, []string{"C3"}) {
			t.Fatalf("coupons of O1 after C2 limit 1 = %v", got)
		}
		o2, err := tx.CouponsByOffer("O2", "", 0)
		must(t, "coupons of O2", err)
		if got := codes(o2); !slices.Equal(got, []string{"C5"}) {
			t.Fatalf("coupons of O2 = %v", got)
		}
		return nil
	})
	update(t, s, func(tx platform.Tx) error {
		c := coupon("O1", "NOPE")
		wantErr(t, "update missing coupon", tx.UpdateCoupon(c), platform.ErrNotFound)
		return nil
	})
}

func testCouponIndexes(t *testing.T, s platform.Storage) {
	update(t, s, func(tx platform.Tx) error {
		var cs []tillkeep.Coupon
		for i := range 6 {
			cs = append(cs, coupon("O1", fmt.Sprintf("K%d", i)))
		}
		cs = append(cs, coupon("O2", "Z1"))
		_, err := tx.InsertCoupons(cs)
		return err
	})
	// Issue K1 to A and K2 to B, revoke K3, redeem K4 to exhaustion; Z1 to A.
	update(t, s, func(tx platform.Tx) error {
		for code, cust := range map[string]string{"K1": "A", "K2": "B", "Z1": "A"} {
			c, err := tx.Coupon(code)
			must(t, "coupon", err)
			c.CustomerID, c.IssuedAt = cust, t0
			must(t, "issue", tx.UpdateCoupon(c))
		}
		c, _ := tx.Coupon("K3")
		c.Status, c.RevokedAt = tillkeep.CouponRevoked, t0
		must(t, "revoke", tx.UpdateCoupon(c))
		c, _ = tx.Coupon("K4")
		c.Status, c.Redemptions = tillkeep.CouponRedeemed, 1
		must(t, "redeem", tx.UpdateCoupon(c))
		return nil
	})
	view(t, s, func(tx platform.ReadTx) error {
		un, err := tx.UnissuedCoupons("O1", "", 0)
		must(t, "unissued", err)
		if got := codes(un); !slices.Equal(got, []string{"K0", "K5"}) {
			t.Fatalf("unissued of O1 = %v, want [K0 K5]", got)
		}
		un, err = tx.UnissuedCoupons("O1", "K0", 0)
		must(t, "unissued", err)
		if got := codes(un); !slices.Equal(got, []string{"K5"}) {
			t.Fatalf("unissued of O1 after K0 = %v", got)
		}
		a, err := tx.CouponsByCustomer("A", "")
		must(t, "by customer", err)
		if got := codes(a); !slices.Equal(got, []string{"K1", "Z1"}) {
			t.Fatalf("coupons of A = %v", got)
		}
		a, err = tx.CouponsByCustomer("A", "O2")
		must(t, "by customer and offer", err)
		if got := codes(a); !slices.Equal(got, []string{"Z1"}) {
			t.Fatalf("coupons of A in O2 = %v", got)
		}
		none, err := tx.CouponsByCustomer("nobody", "")
		must(t, "by customer", err)
		if len(none) != 0 {
			t.Fatalf("coupons of nobody = %v", codes(none))
		}
		return nil
	})
	// Reinstating K3 puts it back in the pool; moving K1 from A to B re-indexes it.
	update(t, s, func(tx platform.Tx) error {
		c, _ := tx.Coupon("K3")
		c.Status, c.RevokedAt = tillkeep.CouponActive, time.Time{}
		must(t, "reinstate", tx.UpdateCoupon(c))
		c, _ = tx.Coupon("K1")
		c.CustomerID = "B"
		return tx.UpdateCoupon(c)
	})
	view(t, s, func(tx platform.ReadTx) error {
		un, _ := tx.UnissuedCoupons("O1", "", 0)
		if got := codes(un); !slices.Equal(got, []string{"K0", "K3", "K5"}) {
			t.Fatalf("unissued after reinstate = %v", got)
		}
		a, _ := tx.CouponsByCustomer("A", "O1")
		b, _ := tx.CouponsByCustomer("B", "O1")
		if len(a) != 0 || !slices.Equal(codes(b), []string{"K1", "K2"}) {
			t.Fatalf("after moving K1: A=%v B=%v", codes(a), codes(b))
		}
		return nil
	})
}

func redemption(id, code, till string, at time.Time) platform.Redemption {
	return platform.Redemption{
		ID: id, Code: code, OfferID: "O1", StoreID: "S001", TillID: till, TransactionID: "tx-" + id,
		Bill: tillkeep.NewMoney(12000, "USD"), Discount: tillkeep.NewMoney(4000, "USD"),
		Mode: tillkeep.ModeOffline, Status: tillkeep.RedemptionAccepted,
		At: at, EventAt: at, ReceivedAt: at.Add(time.Hour), HLC: tillkeep.HLC{WallMS: at.UnixMilli()}, Seq: 1,
	}
}

func testRedemptions(t *testing.T, s platform.Storage) {
	update(t, s, func(tx platform.Tx) error {
		must(t, "insert", tx.InsertRedemption(redemption("r1", "C1", "T01", t0)))
		must(t, "insert", tx.InsertRedemption(redemption("r2", "C1", "T02", t0.Add(time.Minute))))
		must(t, "insert", tx.InsertRedemption(redemption("r3", "C2", "T01", t0.Add(2*time.Minute))))
		// A second redemption under r1's transaction id is kept; the index names r1.
		dup := redemption("r4", "C3", "T01", t0.Add(3*time.Minute))
		dup.TransactionID = "tx-r1"
		must(t, "insert same transaction", tx.InsertRedemption(dup))
		return nil
	})
	// Uniqueness of the id survives across transactions and is detectable.
	err := s.Update(ctx, func(tx platform.Tx) error {
		return tx.InsertRedemption(redemption("r1", "C9", "T09", t0))
	})
	wantErr(t, "insert existing redemption id", err, platform.ErrExists)
	// ErrExists must not poison the transaction: the rest of it still commits.
	update(t, s, func(tx platform.Tx) error {
		wantErr(t, "insert existing id", tx.InsertRedemption(redemption("r2", "C9", "T09", t0)), platform.ErrExists)
		return tx.InsertRedemption(redemption("r5", "C5", "T05", t0.Add(4*time.Minute)))
	})
	view(t, s, func(tx platform.ReadTx) error {
		r, err := tx.Redemption("r1")
		must(t, "redemption", err)
		if r.Code != "C1" || r.TillID != "T01" || r.Bill.Amount != 12000 || !r.EventAt.Equal(t0) || r.HLC.WallMS != t0.UnixMilli() {
			t.Fatalf("r1 did not round-trip: %+v", r)
		}
		_, err = tx.Redemption("nope")
		wantErr(t, "missing redemption", err, platform.ErrNotFound)
		_, err = tx.Redemption("r5")
		must(t, "redemption committed beside an ErrExists", err)

		byCoupon, err := tx.RedemptionsByCoupon("C1")
		must(t, "by coupon", err)
		if len(byCoupon) != 2 || byCoupon[0].ID != "r1" || byCoupon[1].ID != "r2" {
			t.Fatalf("redemptions of C1 = %+v", byCoupon)
		}
		r, err = tx.RedemptionByTransaction("S001", "T01", "tx-r1")
		must(t, "by transaction", err)
		if r.ID != "r1" {
			t.Fatalf("by transaction = %s, want the first one recorded (r1)", r.ID)
		}
		_, err = tx.RedemptionByTransaction("S001", "T02", "tx-r1")
		wantErr(t, "transaction of another till", err, platform.ErrNotFound)
		return nil
	})
	update(t, s, func(tx platform.Tx) error {
		r, _ := tx.Redemption("r2")
		r.Status, r.IsReversed, r.LastStatusChangeOn = tillkeep.RedemptionReversed, true, t0.Add(time.Hour)
		must(t, "update", tx.UpdateRedemption(r))
		wantErr(t, "update missing", tx.UpdateRedemption(redemption("nope", "C1", "T01", t0)), platform.ErrNotFound)
		return nil
	})
	view(t, s, func(tx platform.ReadTx) error {
		r, _ := tx.Redemption("r2")
		if r.Status != tillkeep.RedemptionReversed || !r.IsReversed {
			t.Fatalf("update lost: %+v", r)
		}
		page, _, err := tx.Redemptions(platform.RedemptionFilter{Status: tillkeep.RedemptionReversed}, "", 0)
		must(t, "list reversed", err)
		if len(page) != 1 || page[0].ID != "r2" {
			t.Fatalf("reversed redemptions = %+v", page)
		}
		return nil
	})
}

func testRedemptionPaging(t *testing.T, s platform.Storage) {
	const n = 25
	update(t, s, func(tx platform.Tx) error {
		for i := range n {
			till := []string{"T01", "T02"}[i%2]
			// Inserted out of time order on purpose.
			at := t0.Add(time.Duration((i*7)%n) * time.Minute)
			must(t, "insert", tx.InsertRedemption(redemption(fmt.Sprintf("r%02d", i), "C1", till, at)))
		}
		return nil
	})
	var all []platform.Redemption
	cursor := ""
	pages := 0
	for {
		var page []platform.Redemption
		var next string
		view(t, s, func(tx platform.ReadTx) error {
			var err error
			page, next, err = tx.Redemptions(platform.RedemptionFilter{}, cursor, 4)
			return err
		})
		if len(page) > 4 {
			t.Fatalf("page of %d over limit 4", len(page))
		}
		all = append(all, page...)
		pages++
		if next == "" {
			break
		}
		if pages > n {
			t.Fatal("paging does not end")
		}
		cursor = next
	}
	if len(all) != n {
		t.Fatalf("paged through %d redemptions, want %d", len(all), n)
	}
	for i := 1; i < len(all); i++ {
		if all[i].EventAt.Before(all[i-1].EventAt) {
			t.Fatalf("page order broken at %d: %v before %v", i, all[i].EventAt, all[i-1].EventAt)
		}
	}
	view(t, s, func(tx platform.ReadTx) error {
		f := platform.RedemptionFilter{TillID: "T02", From: t0.Add(5 * time.Minute), To: t0.Add(15 * time.Minute)}
		got, next, err := tx.Redemptions(f, "", 0)
		must(t, "filtered", err)
		if next != "" {
			t.Fatalf("unlimited list returned a cursor %q", next)
		}
		for _, r := range got {
			if !f.Match(r) {
				t.Fatalf("filter let through %+v", r)
			}
		}
		want := 0
		for _, r := range all {
			if f.Match(r) {
				want++
			}
		}
		if len(got) != want || want == 0 {
			t.Fatalf("filtered %d, want %d (>0)", len(got), want)
		}
		_, _, err = tx.Redemptions(platform.RedemptionFilter{}, "not-a-cursor", 5)
		if err == nil {
			t.Fatal("a bad cursor was accepted")
		}
		return nil
	})
}

func testUsage(t *testing.T, s platform.Storage) {
	view(t, s, func(tx platform.ReadTx) error {
		u, err := tx.OfferUsage("O1")
		must(t, "offer usage", err)
		if u != (platform.OfferUsage{OfferID: "O1"}) {
			t.Fatalf("fresh offer usage = %+v", u)
		}
		cu, err := tx.CustomerUsage("A", "O1")
		must(t, "customer usage", err)
		if cu != (platform.CustomerUsage{CustomerID: "A", OfferID: "O1"}) {
			t.Fatalf("fresh customer usage = %+v", cu)
		}
		return nil
	})
	update(t, s, func(tx platform.Tx) error {
		must(t, "put", tx.PutOfferUsage(platform.OfferUsage{OfferID: "O1", Redemptions: 3, Issued: 7, Coupons: 10}))
		return tx.PutCustomerUsage(platform.CustomerUsage{CustomerID: "A", OfferID: "O1", Redemptions: 2, LastRedeemedAt: t0, Issued: 1, LastIssuedAt: t0, HasGeneric: true})
	})
	view(t, s, func(tx platform.ReadTx) error {
		u, _ := tx.OfferUsage("O1")
		cu, _ := tx.CustomerUsage("A", "O1")
		other, _ := tx.CustomerUsage("A", "O2")
		if u.Redemptions != 3 || u.Issued != 7 || u.Coupons != 10 {
			t.Fatalf("offer usage = %+v", u)
		}
		if cu.Redemptions != 2 || !cu.LastRedeemedAt.Equal(t0) || cu.Issued != 1 || !cu.HasGeneric {
			t.Fatalf("customer usage = %+v", cu)
		}
		if other.Redemptions != 0 {
			t.Fatalf("usage leaked to another offer: %+v", other)
		}
		return nil
	})
}

func testTills(t *testing.T, s platform.Storage) {
	update(t, s, func(tx platform.Tx) error {
		must(t, "put", tx.PutTill(platform.Till{StoreID: "S001", TillID: "T02", TokenHash: "h2", EnrolledAt: t0}))
		must(t, "put", tx.PutTill(platform.Till{StoreID: "S001", TillID: "T01", TokenHash: "h1", EnrolledAt: t0}))
		must(t, "put", tx.PutTill(platform.Till{StoreID: "S002", TillID: "T01", TokenHash: "h3", EnrolledAt: t0}))
		return nil
	})
	view(t, s, func(tx platform.ReadTx) error {
		tl, err := tx.TillByTokenHash("h1")
		must(t, "by hash", err)
		if tl.StoreID != "S001" || tl.TillID != "T01" {
			t.Fatalf("till by h1 = %+v", tl)
		}
		_, err = tx.TillByTokenHash("")
		wantErr(t, "empty hash", err, platform.ErrNotFound)
		_, err = tx.Till("S001", "T09")
		wantErr(t, "missing till", err, platform.ErrNotFound)
		s1, err := tx.Tills("S001")
		must(t, "tills", err)
		if len(s1) != 2 || s1[0].TillID != "T01" || s1[1].TillID != "T02" {
			t.Fatalf("tills of S001 = %+v", s1)
		}
		all, _ := tx.Tills("")
		if len(all) != 3 {
			t.Fatalf("all tills = %+v", all)
		}
		return nil
	})
	// A new token replaces the old one in the index; the acked seq is plain data.
	update(t, s, func(tx platform.Tx) error {
		tl, _ := tx.Till("S001", "T01")
		tl.TokenHash, tl.AckedSeq = "h1b", 42
		must(t, "put", tx.PutTill(tl))
		t2, _ := tx.Till("S001", "T02")
		t2.TokenHash = ""
		must(t, "put", tx.PutTill(t2))
		clash := platform.Till{StoreID: "S009", TillID: "T01", TokenHash: "h3"}
		wantErr(t, "token hash of another till", tx.PutTill(clash), platform.ErrExists)
		return nil
	})
	view(t, s, func(tx platform.ReadTx) error {
		_, err := tx.TillByTokenHash("h1")
		wantErr(t, "old token", err, platform.ErrNotFound)
		_, err = tx.TillByTokenHash("h2")
		wantErr(t, "cleared token", err, platform.ErrNotFound)
		tl, err := tx.TillByTokenHash("h1b")
		must(t, "new token", err)
		if tl.AckedSeq != 42 {
			t.Fatalf("till = %+v", tl)
		}
		return nil
	})
}

func conflict(id, code, kind string) platform.Conflict {
	return platform.Conflict{
		ID: id, Kind: kind, Code: code, OfferID: "O1", Status: platform.ConflictOpen,
		RedemptionIDs: []string{"r1"}, TillIDs: []string{"T01"}, StoreIDs: []string{"S001"},
		CreatedAt: t0, UpdatedAt: t0,
		Audit: []platform.AuditEntry{{At: t0, Actor: "platform", Action: "opened"}},
	}
}

func testConflicts(t *testing.T, s platform.Storage) {
	update(t, s, func(tx platform.Tx) error {
		must(t, "insert", tx.InsertConflict(conflict("c1", "K1", platform.KindDoubleRedemption)))
		must(t, "insert", tx.InsertConflict(conflict("c2", "K1", platform.KindRedeemedAfterExpiry)))
		must(t, "insert", tx.InsertConflict(conflict("c3", "K2", platform.KindDoubleRedemption)))
		wantErr(t, "second open case for (code, kind)", tx.InsertConflict(conflict("c4", "K1", platform.KindDoubleRedemption)), platform.ErrExists)
		wantErr(t, "existing id", tx.InsertConflict(conflict("c1", "K9", platform.KindUnknownCoupon)), platform.ErrExists)
		return nil
	})
	view(t, s, func(tx platform.ReadTx) error {
		c, err := tx.OpenConflict("K1", platform.KindDoubleRedemption)
		must(t, "open case", err)
		if c.ID != "c1" || len(c.Audit) != 1 || !slices.Equal(c.RedemptionIDs, []string{"r1"}) {
			t.Fatalf("open case = %+v", c)
		}
		_, err = tx.OpenConflict("K2", platform.KindRedeemedAfterExpiry)
		wantErr(t, "no such open case", err, platform.ErrNotFound)
		return nil
	})
	// A join and a resolution.
	update(t, s, func(tx platform.Tx) error {
		c, _ := tx.Conflict("c1")
		c.RedemptionIDs = append(c.RedemptionIDs, "r2")
		c.TillIDs = append(c.TillIDs, "T02")
		must(t, "join", tx.UpdateConflict(c))
		c3, _ := tx.Conflict("c3")
		c3.Status, c3.ResolvedAt, c3.Resolution = platform.ConflictResolved, t0, "accept_loss"
		c3.Audit = append(c3.Audit, platform.AuditEntry{At: t0, Actor: "admin", Action: "accept_loss", Note: "ok"})
		must(t, "resolve", tx.UpdateConflict(c3))
		wantErr(t, "update missing", tx.UpdateConflict(conflict("nope", "K", "k")), platform.ErrNotFound)
		return nil
	})
	view(t, s, func(tx platform.ReadTx) error {
		c, _ := tx.OpenConflict("K1", platform.KindDoubleRedemption)
		if !slices.Equal(c.RedemptionIDs, []string{"r1", "r2"}) || !slices.Equal(c.TillIDs, []string{"T01", "T02"}) {
			t.Fatalf("joined case = %+v", c)
		}
		_, err := tx.OpenConflict("K2", platform.KindDoubleRedemption)
		wantErr(t, "resolved case is not open", err, platform.ErrNotFound)
		open, err := tx.Conflicts(platform.ConflictOpen, "", 0)
		must(t, "open list", err)
		resolved, _ := tx.Conflicts(platform.ConflictResolved, "", 0)
		all, _ := tx.Conflicts("", "", 0)
		page, _ := tx.Conflicts(platform.ConflictOpen, "c1", 1)
		if ids := conflictIDs(open); !slices.Equal(ids, []string{"c1", "c2"}) {
			t.Fatalf("open = %v", ids)
		}
		if ids := conflictIDs(resolved); !slices.Equal(ids, []string{"c3"}) {
			t.Fatalf("resolved = %v", ids)
		}
		if ids := conflictIDs(all); !slices.Equal(ids, []string{"c1", "c2", "c3"}) {
			t.Fatalf("all = %v", ids)
		}
		if ids := conflictIDs(page); !slices.Equal(ids, []string{"c2"}) {
			t.Fatalf("open after c1 = %v", ids)
		}
		return nil
	})
	// Once resolved, a new case for the same (code, kind) may open.
	update(t, s, func(tx platform.Tx) error {
		return tx.InsertConflict(conflict("c5", "K2", platform.KindDoubleRedemption))
	})
}

func conflictIDs(cs []platform.Conflict) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

func testChangeLog(t *testing.T, s platform.Storage) {
	var seqs []uint64
	for i := range 3 {
		update(t, s, func(tx platform.Tx) error {
			seqs = seqs[:i] // fn may run more than once
			for j := range 2 {
				seq, err := tx.AppendChange(platform.Change{At: t0, Entity: platform.EntityCoupon, Key: fmt.Sprintf("K%d-%d", i, j), Event: platform.EventCreated, OfferID: "O1"})
				if err != nil {
					return err
				}
				seqs = append(seqs, seq)
			}
			seqs = seqs[:i+1]
			return nil
		})
	}
	// A failed transaction's changes vanish and leave no gap.
	_ = s.Update(ctx, func(tx platform.Tx) error {
		if _, err := tx.AppendChange(platform.Change{Entity: platform.EntityCoupon, Key: "lost"}); err != nil {
			return err
		}
		return errors.New("roll back")
	})
	update(t, s, func(tx platform.Tx) error {
		_, err := tx.AppendChange(platform.Change{At: t0, Entity: platform.EntityOffer, Key: "O1", Event: platform.EventUpdated})
		return err
	})
	view(t, s, func(tx platform.ReadTx) error {
		all, err := tx.ChangesSince(0, 0)
		must(t, "changes", err)
		if len(all) != 7 {
			t.Fatalf("%d changes, want 7", len(all))
		}
		for i, c := range all {
			if i > 0 && c.Seq != all[i-1].Seq+1 {
				t.Fatalf("change seqs not contiguous: %d after %d", c.Seq, all[i-1].Seq)
			}
			if c.Key == "lost" {
				t.Fatal("a rolled-back change is visible")
			}
		}
		if all[0].Key != "K0-0" || all[1].Key != "K0-1" || all[6].Entity != platform.EntityOffer {
			t.Fatalf("change order = %+v", all)
		}
		last, err := tx.LastChangeSeq()
		must(t, "last seq", err)
		if last != all[6].Seq {
			t.Fatalf("last seq %d, want %d", last, all[6].Seq)
		}
		page, _ := tx.ChangesSince(all[2].Seq, 2)
		if len(page) != 2 || page[0].Seq != all[3].Seq || page[1].Seq != all[4].Seq {
			t.Fatalf("changes since %d limit 2 = %+v", all[2].Seq, page)
		}
		none, _ := tx.ChangesSince(last, 0)
		if len(none) != 0 {
			t.Fatalf("changes after the last = %+v", none)
		}
		return nil
	})
}

func testAnomaliesReports(t *testing.T, s platform.Storage) {
	update(t, s, func(tx platform.Tx) error {
		must(t, "anomaly", tx.InsertAnomaly(platform.Anomaly{ID: "a2", At: t0, Kind: platform.AnomalyIdempotencyReuse, Detail: "x"}))
		must(t, "anomaly", tx.InsertAnomaly(platform.Anomaly{ID: "a1", At: t0, Kind: platform.AnomalyTillImpersonation, Detail: "y"}))
		wantErr(t, "dup anomaly", tx.InsertAnomaly(platform.Anomaly{ID: "a1"}), platform.ErrExists)
		must(t, "report", tx.PutReportPart("R1", 0, []byte("row,code\n")))
		must(t, "report", tx.PutReportPart("R1", 1, []byte("1,duplicate_code\n")))
		return nil
	})
	view(t, s, func(tx platform.ReadTx) error {
		as, err := tx.Anomalies("", 0)
		must(t, "anomalies", err)
		if len(as) != 2 || as[0].ID != "a1" || as[1].Kind != platform.AnomalyIdempotencyReuse {
			t.Fatalf("anomalies = %+v", as)
		}
		p0, err := tx.ReportPart("R1", 0)
		must(t, "part 0", err)
		p1, _ := tx.ReportPart("R1", 1)
		if string(p0)+string(p1) != "row,code\n1,duplicate_code\n" {
			t.Fatalf("report = %q %q", p0, p1)
		}
		_, err = tx.ReportPart("R1", 2)
		wantErr(t, "part past the end", err, platform.ErrNotFound)
		_, err = tx.ReportPart("R2", 0)
		wantErr(t, "missing report", err, platform.ErrNotFound)
		return nil
	})
}

func testAtomicity(t *testing.T, s platform.Storage) {
	boom := errors.New("boom")
	err := s.Update(ctx, func(tx platform.Tx) error {
		must(t, "put", tx.PutStore(tillkeep.Store{ID: "S1"}))
		must(t, "offer", tx.InsertOffer(offer("O1")))
		if _, err := tx.InsertCoupons([]tillkeep.Coupon{coupon("O1", "K1")}); err != nil {
			return err
		}
		must(t, "redemption", tx.InsertRedemption(redemption("r1", "K1", "T01", t0)))
		must(t, "usage", tx.PutOfferUsage(platform.OfferUsage{OfferID: "O1", Redemptions: 1}))
		must(t, "till", tx.PutTill(platform.Till{StoreID: "S1", TillID: "T01", TokenHash: "h"}))
		must(t, "conflict", tx.InsertConflict(conflict("c1", "K1", platform.KindDoubleRedemption)))
		must(t, "meta", tx.PutMeta("k", []byte("v")))
		if _, err := tx.AppendChange(platform.Change{Entity: platform.EntityCoupon, Key: "K1"}); err != nil {
			return err
		}
		return fmt.Errorf("fail on purpose: %w", boom)
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update returned %v, want the function's error", err)
	}
	view(t, s, func(tx platform.ReadTx) error {
		_, e1 := tx.Store("S1")
		_, e2 := tx.Offer("O1")
		_, e3 := tx.Coupon("K1")
		_, e4 := tx.Redemption("r1")
		_, e5 := tx.TillByTokenHash("h")
		_, e6 := tx.Conflict("c1")
		_, e7 := tx.Meta("k")
		for i, e := range []error{e1, e2, e3, e4, e5, e6, e7} {
			wantErr(t, fmt.Sprintf("record %d of a failed update", i+1), e, platform.ErrNotFound)
		}
		u, _ := tx.OfferUsage("O1")
		byOffer, _ := tx.CouponsByOffer("O1", "", 0)
		byCoupon, _ := tx.RedemptionsByCoupon("K1")
		changes, _ := tx.ChangesSince(0, 0)
		open, _ := tx.Conflicts(platform.ConflictOpen, "", 0)
		if u.Redemptions != 0 || len(byOffer) != 0 || len(byCoupon) != 0 || len(changes) != 0 || len(open) != 0 {
			t.Fatalf("a failed update left traces: usage=%+v coupons=%d redemptions=%d changes=%d open=%d",
				u, len(byOffer), len(byCoupon), len(changes), len(open))
		}
		return nil
	})
}

// testConcurrentCounters runs read-modify-write increments from many goroutines at
// once, some of whose updates fail: every successful increment must be counted once.
func testConcurrentCounters(t *testing.T, s platform.Storage) {
	const workers, per = 20, 15
	var wg sync.WaitGroup
	errs := make(chan error, workers*per)
	var okCount sync.Map
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				fail := (w+i)%5 == 0
				id := fmt.Sprintf("w%02d-%02d", w, i)
				err := s.Update(ctx, func(tx platform.Tx) error {
					u, err := tx.OfferUsage("O1")
					if err != nil {
						return err
					}
					u.Redemptions++
					if err := tx.PutOfferUsage(u); err != nil {
						return err
					}
					cu, err := tx.CustomerUsage("A", "O1")
					if err != nil {
						return err
					}
					cu.Redemptions++
					if err := tx.PutCustomerUsage(cu); err != nil {
						return err
					}
					if err := tx.InsertRedemption(redemption(id, "K1", "T01", t0)); err != nil {
						return err
					}
					if fail {
						return errors.New("refused")
					}
					return nil
				})
				switch {
				case fail && err == nil:
					errs <- fmt.Errorf("%s: failing update reported success", id)
				case !fail && err != nil:
					errs <- fmt.Errorf("%s: %w", id, err)
				case !fail:
					okCount.Store(id, true)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	want := 0
	okCount.Range(func(any, any) bool { want++; return true })
	view(t, s, func(tx platform.ReadTx) error {
		u, _ := tx.OfferUsage("O1")
		cu, _ := tx.CustomerUsage("A", "O1")
		rs, _ := tx.RedemptionsByCoupon("K1")
		if int(u.Redemptions) != want || cu.Redemptions != want || len(rs) != want {
			t.Fatalf("offer counter %d, customer counter %d, rows %d; want %d each", u.Redemptions, cu.Redemptions, len(rs), want)
		}
		return nil
	})
}

func testCancelled(t *testing.T, s platform.Storage) {
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	ran := false
	err := s.Update(cctx, func(tx platform.Tx) error {
		ran = true
		return tx.PutStore(tillkeep.Store{ID: "S1"})
	})
	if err == nil {
		t.Fatal("Update with a cancelled context succeeded")
	}
	if ran {
		view(t, s, func(tx platform.ReadTx) error {
			if _, err := tx.Store("S1"); err == nil {
				t.Fatal("Update with a cancelled context reported an error but committed")
			}
			return nil
		})
	}
}

func testChangeCompaction(t *testing.T, s platform.Storage) {
	appendN := func(n int) {
		t.Helper()
		update(t, s, func(tx platform.Tx) error {
			for i := range n {
				if _, err := tx.AppendChange(platform.Change{At: t0, Entity: platform.EntityCoupon, Key: fmt.Sprintf("K%d", i), Event: platform.EventCreated}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	deleteThrough := func(seq uint64, limit int) int {
		t.Helper()
		var n int
		update(t, s, func(tx platform.Tx) error {
			var err error
			n, err = tx.DeleteChangesThrough(seq, limit)
			return err
		})
		return n
	}
	state := func() (first, last uint64, count int) {
		t.Helper()
		view(t, s, func(tx platform.ReadTx) error {
			all, err := tx.ChangesSince(0, 0)
			must(t, "changes", err)
			last, err = tx.LastChangeSeq()
			must(t, "last seq", err)
			count = len(all)
			if count > 0 {
				first = all[0].Seq
			}
			return nil
		})
		return first, last, count
	}
	appendN(10)
	if n := deleteThrough(4, 2); n != 2 {
		t.Fatalf("deleted %d changes with limit 2, want 2", n)
	}
	if first, last, count := state(); first != 3 || last != 10 || count != 8 {
		t.Fatalf("after deleting 2: first %d last %d count %d", first, last, count)
	}
	if n := deleteThrough(4, 0); n != 2 {
		t.Fatalf("deleted %d changes through 4, want 2", n)
	}
	if n := deleteThrough(4, 0); n != 0 {
		t.Fatalf("deleted %d changes again, want 0", n)
	}
	if first, last, count := state(); first != 5 || last != 10 || count != 6 {
		t.Fatalf("after deleting through 4: first %d last %d count %d", first, last, count)
	}
	// Deleting everything keeps the head: new changes continue the sequence.
	if n := deleteThrough(1000, 0); n != 6 {
		t.Fatalf("deleted %d changes through 1000, want 6", n)
	}
	if _, last, count := state(); last != 10 || count != 0 {
		t.Fatalf("after deleting all: last %d count %d", last, count)
	}
	appendN(1)
	if first, last, count := state(); first != 11 || last != 11 || count != 1 {
		t.Fatalf("after appending to an emptied log: first %d last %d count %d", first, last, count)
	}
}
