package platform_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/platform"
	"github.com/tillkeep/tillkeep/sync/wire"
)

// feedAnswer is a raw feed answer.
type feedAnswer struct {
	status int
	header http.Header
	body   []byte
}

// feedGet calls a feed route as till tl with extra request headers.
func (tl *till) feedGet(path string, headers ...string) feedAnswer {
	tl.e.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, tl.e.http.URL+path, nil)
	if err != nil {
		tl.e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tl.token)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := tl.e.http.Client().Do(req)
	if err != nil {
		tl.e.t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		tl.e.t.Fatalf("GET %s: read body: %v", path, err)
	}
	return feedAnswer{status: res.StatusCode, header: res.Header, body: body}
}

// snapshot is a verified snapshot as a till reads it.
type snapshot struct {
	header  wire.SnapshotHeader
	offers  []tillkeep.Offer
	coupons []tillkeep.Coupon
}

func (s snapshot) offerIDs() []string {
	var out []string
	for _, o := range s.offers {
		out = append(out, o.ID)
	}
	return out
}

func (s snapshot) coupon(code string) (tillkeep.Coupon, bool) {
	for _, c := range s.coupons {
		if c.Code == code {
			return c, true
		}
	}
	return tillkeep.Coupon{}, false
}

func readSnapshot(t *testing.T, body []byte) snapshot {
	t.Helper()
	r := wire.NewSnapshotReader(bytes.NewReader(body))
	var s snapshot
	var err error
	if s.header, err = r.Header(); err != nil {
		t.Fatalf("snapshot header: %v", err)
	}
	if s.offers, err = r.Offers(); err != nil {
		t.Fatalf("snapshot offers: %v", err)
	}
	for {
		batch, done, err := r.Coupons(make([]tillkeep.Coupon, 0, 3), 3)
		if err != nil {
			t.Fatalf("snapshot coupons: %v", err)
		}
		s.coupons = append(s.coupons, batch...)
		if done {
			return s
		}
	}
}

func (tl *till) snapshot() snapshot {
	tl.e.t.Helper()
	a := tl.feedGet(wire.PathSnapshot)
	if a.status != 200 {
		tl.e.t.Fatalf("snapshot: status %d: %s", a.status, a.body)
	}
	if ct := a.header.Get("Content-Type"); ct != wire.SnapshotContentType {
		tl.e.t.Fatalf("snapshot content type %q", ct)
	}
	return readSnapshot(tl.e.t.(*testing.T), a.body)
}

func (tl *till) delta(since uint64, limit int, headers ...string) (wire.Delta, feedAnswer) {
	tl.e.t.Helper()
	path := fmt.Sprintf("%s?since=%d", wire.PathCatalog, since)
	if limit > 0 {
		path += "&limit=" + strconv.Itoa(limit)
	}
	a := tl.feedGet(path, headers...)
	var d wire.Delta
	if a.status == 200 {
		if err := json.Unmarshal(a.body, &d); err != nil {
			tl.e.t.Fatalf("decode delta: %v\n%s", err, a.body)
		}
	}
	return d, a
}

func (tl *till) mustDelta(since uint64, limit int) wire.Delta {
	tl.e.t.Helper()
	d, a := tl.delta(since, limit)
	if a.status != 200 {
		tl.e.t.Fatalf("delta since %d: status %d: %s", since, a.status, a.body)
	}
	return d
}

func codesOf(cs []wire.SnapshotCoupon) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, c.Code)
	}
	return out
}

func offerIDsOf(os []tillkeep.Offer) []string {
	out := []string{}
	for _, o := range os {
		out = append(out, o.ID)
	}
	return out
}

// feedFixture: stores S001 and S002 (zone east, concept mall) and S003 (zone west);
// SPRING40 for S001/S002 with K1..K5, ZONE for zone east with Z1 Z2, WEST for S003 with
// W1, RECENT (ended two days ago) with R1, OLD (ended ten days ago) with D1, and LATER
// (starting next month) with L1.
func feedFixture(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	e.basic()
	e.must(200, e.admin("PUT", "/v1/stores/S003", map[string]any{
		"name": "West", "zone": "west", "concept": "mall", "timezone": "UTC", "currency": "USD",
	}), "put store S003")
	aimed := func(key string, v []string) func(map[string]any) {
		return func(o map[string]any) {
			r := rules(o)
			delete(r, "stores")
			r[key] = v
		}
	}
	window := func(from, until time.Time) func(map[string]any) {
		return func(o map[string]any) { o["valid_from"], o["valid_until"] = from, until }
	}
	e.createOffer("ZONE", aimed("zones", []string{"east"}))
	e.createCodes("ZONE", "Z1", "Z2")
	e.createOffer("WEST", aimed("stores", []string{"S003"}))
	e.createCodes("WEST", "W1")
	e.createOffer("RECENT", window(start.AddDate(0, -2, 0), start.AddDate(0, 0, -2)))
	e.createCodes("RECENT", "R1")
	e.createOffer("OLD", window(start.AddDate(0, -2, 0), start.AddDate(0, 0, -10)))
	e.createCodes("OLD", "D1")
	e.createOffer("LATER", window(start.AddDate(0, 1, 0), start.AddDate(0, 3, 0)))
	e.createCodes("LATER", "L1")
	return e
}

func TestFeedSnapshotHoldsTheStoreScope(t *testing.T) {
	e := feedFixture(t)
	t1 := e.enroll("S001", "T01")
	t3 := e.enroll("S003", "T01")

	// Coupons of every status travel: a till must refuse revoked and used ones.
	e.must(200, e.admin("POST", "/v1/coupons/revoke", map[string]any{"codes": []string{"K2"}}), "revoke K2")
	e.must(201, t1.redeem("K3", "", 12000), "redeem K3")
	t1.upload(t1.entry("K4", "", 12000, start)) // acked 1

	s := t1.snapshot()
	if s.header.StoreID != "S001" || s.header.Store.ID != "S001" || s.header.Store.Zone != "east" || s.header.Epoch == "" {
		t.Fatalf("header %+v", s.header)
	}
	if s.header.ReflectsTillSeq != 1 {
		t.Fatalf("reflects_till_seq %d, want the till's acked 1", s.header.ReflectsTillSeq)
	}
	head := e.lastChange()
	if s.header.Seq != head {
		t.Fatalf("snapshot at seq %d, want the head %d", s.header.Seq, head)
	}
	if got, want := s.offerIDs(), []string{"LATER", "RECENT", "SPRING40", "ZONE"}; !slices.Equal(got, want) {
		t.Fatalf("offers %v, want %v", got, want)
	}
	var codes []string
	for _, c := range s.coupons {
		codes = append(codes, c.Code)
	}
	if want := []string{"K1", "K2", "K3", "K4", "K5", "L1", "R1", "Z1", "Z2"}; !slices.Equal(codes, want) {
		t.Fatalf("coupons %v, want %v", codes, want)
	}
	for code, want := range map[string]string{"K1": tillkeep.CouponActive, "K2": tillkeep.CouponRevoked, "K3": tillkeep.CouponRedeemed, "K4": tillkeep.CouponRedeemed} {
		if c, _ := s.coupon(code); c.Status != want || c.OfferID != "SPRING40" {
			t.Fatalf("%s in the snapshot: %+v, want status %s", code, c, want)
		}
	}
	if c, _ := s.coupon("K2"); c.RevokedAt.IsZero() {
		t.Fatalf("K2 lost its revocation time: %+v", c)
	}
	if c, _ := s.coupon("K3"); c.Redemptions != 1 {
		t.Fatalf("K3 redemptions %d, want 1", c.Redemptions)
	}

	// Another store's till gets its own store's scope only.
	s3 := t3.snapshot()
	if got, want := s3.offerIDs(), []string{"WEST"}; !slices.Equal(got, want) {
		t.Fatalf("S003 offers %v, want %v", got, want)
	}
	if s3.header.StoreID != "S003" || len(s3.coupons) != 1 {
		t.Fatalf("S003 snapshot: %+v, %d coupons", s3.header, len(s3.coupons))
	}

	// A gzip-accepting till gets the same bytes compressed (Go's client undoes it).
	if a := t1.feedGet(wire.PathSnapshot, "Accept-Encoding", "gzip"); a.status != 200 || a.header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("gzip snapshot: %d %v", a.status, a.header)
	}
	// Without a till token there is no catalog.
	if r := e.do("GET", wire.PathSnapshot, "", nil); r.status != 401 {
		t.Fatalf("snapshot without a token: %d", r.status)
	}
	if r := e.do("GET", wire.PathSnapshot, adminToken, nil); r.status != 401 {
		t.Fatalf("snapshot with the admin token: %d", r.status)
	}
}

// lastChange is the change log's head.
func (e *env) lastChange() uint64 {
	e.t.Helper()
	var head uint64
	if err := e.store.View(context.Background(), func(tx platform.ReadTx) error {
		var err error
		head, err = tx.LastChangeSeq()
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
	return head
}

func TestFeedDeltaCarriesCurrentStateOnce(t *testing.T) {
	e := feedFixture(t)
	t1 := e.enroll("S001", "T01")
	s := t1.snapshot()
	cursor := s.header.Seq

	// Nothing changed: an empty page at the same cursor, with the till's point.
	d := t1.mustDelta(cursor, 0)
	if d.Seq != cursor || d.More || len(d.Coupons) != 0 || len(d.Offers) != 0 || len(d.RemovedOffers) != 0 ||
		d.ReflectsTillSeq == nil || *d.ReflectsTillSeq != 0 || d.Epoch != s.header.Epoch {
		t.Fatalf("empty delta %+v", d)
	}

	// K1 revoked; K4 redeemed then reversed (three changes, one coupon); a new code in
	// scope; changes of another store's offer.
	e.must(200, e.admin("POST", "/v1/coupons/revoke", map[string]any{"codes": []string{"K1"}}), "revoke K1")
	r := e.must(201, t1.redeem("K4", "", 12000), "redeem K4")
	e.must(200, t1.do("POST", "/v1/till/redemptions/"+r.str("redemption_id")+"/reverse", nil), "reverse K4")
	e.createCodes("SPRING40", "K6")
	e.createCodes("WEST", "W2")
	e.must(200, e.admin("POST", "/v1/coupons/revoke", map[string]any{"codes": []string{"W1"}}), "revoke W1")
	t1.upload(t1.entry("K5", "", 12000, start)) // acked 1, K5 redeemed offline

	d = t1.mustDelta(cursor, 0)
	if got, want := codesOf(d.Coupons), []string{"K1", "K4", "K5", "K6"}; !slices.Equal(got, want) {
		t.Fatalf("delta coupons %v, want %v", got, want)
	}
	if got := offerIDsOf(d.Offers); !slices.Equal(got, []string{"SPRING40"}) {
		t.Fatalf("delta offers %v", got)
	}
	byCode := map[string]wire.SnapshotCoupon{}
	for _, c := range d.Coupons {
		byCode[c.Code] = c
	}
	if byCode["K1"].Status != tillkeep.CouponRevoked || byCode["K4"].Status != tillkeep.CouponActive || byCode["K4"].Redemptions != 0 ||
		byCode["K5"].Status != tillkeep.CouponRedeemed || byCode["K6"].Status != tillkeep.CouponActive {
		t.Fatalf("delta states %+v", byCode)
	}
	head := e.lastChange()
	if d.Seq != head || d.More || d.ReflectsTillSeq == nil || *d.ReflectsTillSeq != 1 || d.Since != cursor {
		t.Fatalf("delta position: seq %d (head %d) more %v reflects %v since %d", d.Seq, head, d.More, d.ReflectsTillSeq, d.Since)
	}

	// Paging: small pages cover the same changes, and only the last page reflects.
	var paged []string
	since := cursor
	pages := 0
	for {
		p := t1.mustDelta(since, 2)
		pages++
		paged = append(paged, codesOf(p.Coupons)...)
		if p.More != (p.ReflectsTillSeq == nil) {
			t.Fatalf("page %d: more=%v but reflects=%v", pages, p.More, p.ReflectsTillSeq)
		}
		if p.Since != since || p.Seq <= since && p.More {
			t.Fatalf("page %d does not advance: %+v", pages, p)
		}
		for _, c := range p.Coupons {
			if !slices.Contains(offerIDsOf(p.Offers), c.OfferID) {
				t.Fatalf("page %d holds coupon %s without its offer", pages, c.Code)
			}
		}
		since = p.Seq
		if !p.More {
			break
		}
	}
	slices.Sort(paged)
	if got := slices.Compact(paged); !slices.Equal(got, []string{"K1", "K4", "K5", "K6"}) || pages < 3 || since != head {
		t.Fatalf("paged through %d pages to %d: %v", pages, since, got)
	}

	// At the head: the ETag answers 304 while nothing changes for this till.
	last, a := t1.delta(head, 0)
	tag := a.header.Get("ETag")
	if a.status != 200 || tag == "" || len(last.Coupons) != 0 {
		t.Fatalf("delta at the head: %d etag %q %+v", a.status, tag, last)
	}
	if _, a := t1.delta(head, 0, "If-None-Match", tag); a.status != http.StatusNotModified || len(a.body) != 0 {
		t.Fatalf("If-None-Match at the head: %d %s", a.status, a.body)
	}
	// Once the till's journal moves, the same tag is stale.
	t1.upload(t1.entry("NOPE", "", 12000, start))
	if _, a := t1.delta(head, 0, "If-None-Match", tag); a.status != 200 {
		t.Fatalf("If-None-Match after an upload: %d", a.status)
	}
}

func TestFeedRemovesOffersThatLeaveTheScope(t *testing.T) {
	e := feedFixture(t)
	t1 := e.enroll("S001", "T01")
	s := t1.snapshot()

	// RECENT ended two days ago: five days later its grace is over.
	e.clock.Add(6 * 24 * time.Hour)
	d := t1.mustDelta(s.header.Seq, 0)
	if !slices.Equal(d.RemovedOffers, []string{"RECENT"}) {
		t.Fatalf("removed %v, want [RECENT]", d.RemovedOffers)
	}
	// OLD left before the till's cursor and is not repeated; a cursor taken after
	// RECENT left does not repeat it either.
	e.createCodes("SPRING40", "K7")
	s2 := t1.snapshot()
	if slices.Contains(s2.offerIDs(), "RECENT") {
		t.Fatal("a snapshot holds an offer past its grace")
	}
	e.createCodes("SPRING40", "K8")
	d = t1.mustDelta(s2.header.Seq, 0)
	if len(d.RemovedOffers) != 0 || !slices.Equal(codesOf(d.Coupons), []string{"K8"}) {
		t.Fatalf("delta after the snapshot: removed %v coupons %v", d.RemovedOffers, codesOf(d.Coupons))
	}

	// An offer whose rules change: it joins a store's scope with all its coupons, and
	// leaves it again.
	moveWest := func(stores ...string) {
		t.Helper()
		err := e.store.Update(context.Background(), func(tx platform.Tx) error {
			o, err := tx.Offer("WEST")
			if err != nil {
				return err
			}
			o.Rules.Stores = stores
			if err := tx.UpdateOffer(o); err != nil {
				return err
			}
			_, err = tx.AppendChange(platform.Change{At: e.clock.Now(), Entity: platform.EntityOffer, Key: "WEST", Event: platform.EventUpdated, OfferID: "WEST"})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	cursor := d.Seq
	moveWest("S001", "S003")
	d = t1.mustDelta(cursor, 0)
	if !slices.Equal(offerIDsOf(d.Offers), []string{"WEST"}) || !slices.Equal(codesOf(d.Coupons), []string{"W1"}) {
		t.Fatalf("offer joining the scope: offers %v coupons %v", offerIDsOf(d.Offers), codesOf(d.Coupons))
	}
	cursor = d.Seq
	moveWest("S003")
	d = t1.mustDelta(cursor, 0)
	if !slices.Equal(d.RemovedOffers, []string{"WEST"}) || len(d.Offers) != 0 {
		t.Fatalf("offer leaving the scope: removed %v offers %v", d.RemovedOffers, offerIDsOf(d.Offers))
	}
}

func wantRefetch(t *testing.T, a feedAnswer, what string) {
	t.Helper()
	var body struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(a.body, &body)
	if a.status != http.StatusGone || body.Error.Code != string(wire.CodeRefetch) {
		t.Fatalf("%s: %d %s, want 410 %s", what, a.status, a.body, wire.CodeRefetch)
	}
}

func TestFeedRefetchCases(t *testing.T) {
	e := feedFixture(t)
	t1 := e.enroll("S001", "T01")
	s := t1.snapshot()
	old := s.header.Seq

	e.createCodes("SPRING40", "K6")
	e.clock.Add(31 * 24 * time.Hour)
	e.createCodes("SPRING40", "K7")
	newer := e.lastChange()

	deleted, err := e.srv.Service().CompactFeed(context.Background(), e.clock.Now().Add(-30*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if deleted != int(newer-1) {
		t.Fatalf("compaction deleted %d changes, want %d", deleted, newer-1)
	}
	_, a := t1.delta(old, 0)
	wantRefetch(t, a, "cursor below the compacted history")
	// A cursor at the floor is still served, and sees what came after it.
	d := t1.mustDelta(newer-1, 0)
	if !slices.Equal(codesOf(d.Coupons), []string{"K7"}) {
		t.Fatalf("delta from the floor: %v", codesOf(d.Coupons))
	}
	// Compacting again changes nothing.
	if n, err := e.srv.Service().CompactFeed(context.Background(), e.clock.Now().Add(-30*24*time.Hour)); err != nil || n != 0 {
		t.Fatalf("second compaction: %d, %v", n, err)
	}

	_, a = t1.delta(newer+5, 0)
	wantRefetch(t, a, "cursor beyond the head")
	_, a = t1.delta(newer, 0, "X-Unused", "")
	if a.status != 200 {
		t.Fatalf("cursor at the head: %d %s", a.status, a.body)
	}
	a = t1.feedGet(fmt.Sprintf("%s?since=%d&epoch=another", wire.PathCatalog, newer))
	wantRefetch(t, a, "cursor of another epoch")
	a = t1.feedGet(fmt.Sprintf("%s?since=%d&epoch=%s", wire.PathCatalog, newer, s.header.Epoch))
	if a.status != 200 {
		t.Fatalf("cursor of this epoch: %d %s", a.status, a.body)
	}
	// The store's own record changed: its whole scope may differ.
	e.putStore("S001")
	_, a = t1.delta(newer, 0)
	wantRefetch(t, a, "store record changed")

	for _, q := range []string{"", "?since=x", "?since=1&limit=0", "?since=1&limit=999999"} {
		if a := t1.feedGet(wire.PathCatalog + q); a.status != 400 {
			t.Fatalf("delta %q: %d %s", q, a.status, a.body)
		}
	}
}

var cacheMetric = regexp.MustCompile(`tillkeep_platform_feed_delta_cache_total\{result="(\w+)"\} (\d+)`)

func (e *env) cacheCounts() map[string]int {
	e.t.Helper()
	m := e.must(200, e.do("GET", "/metrics", "", nil), "metrics")
	out := map[string]int{}
	for _, g := range cacheMetric.FindAllStringSubmatch(string(m.raw), -1) {
		out[g[1]], _ = strconv.Atoi(g[2])
	}
	return out
}

// Fifty tills of a store polling at the same cursor cost one computation, and each
// still gets its own reflects_till_seq.
func TestFeedDeltaServesAllTillsOfAStoreFromOneComputation(t *testing.T) {
	e := feedFixture(t)
	tills := make([]*till, 50)
	for i := range tills {
		tills[i] = e.enroll("S001", fmt.Sprintf("T%02d", i))
	}
	cursor := tills[0].snapshot().header.Seq
	for i := range 3 {
		e.createCodes("SPRING40", fmt.Sprintf("N%d", i))
	}
	tills[7].upload(tills[7].entry("NOPE", "", 12000, start), tills[7].entry("NOPE2", "", 12000, start))
	before := e.cacheCounts()

	var wg sync.WaitGroup
	answers := make([]wire.Delta, len(tills))
	for i, tl := range tills {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, a := tl.delta(cursor, 0)
			if a.status != 200 {
				t.Errorf("till %d: %d %s", i, a.status, a.body)
			}
			answers[i] = d
		}()
	}
	wg.Wait()
	after := e.cacheCounts()
	if got := after["miss"] - before["miss"]; got != 1 {
		t.Fatalf("%d computations for 50 tills at one cursor, want 1 (counts %v → %v)", got, before, after)
	}
	if got := after["hit"] + after["shared"] - before["hit"] - before["shared"]; got != len(tills)-1 {
		t.Fatalf("%d answers served from the first computation, want %d", got, len(tills)-1)
	}
	for i, d := range answers {
		want := uint64(0)
		if i == 7 {
			want = 2
		}
		if d.ReflectsTillSeq == nil || *d.ReflectsTillSeq != want || !slices.Equal(codesOf(d.Coupons), []string{"N0", "N1", "N2"}) {
			t.Fatalf("till %d got reflects %v coupons %v", i, d.ReflectsTillSeq, codesOf(d.Coupons))
		}
	}
	// A new change moves the head: the next answer is computed afresh.
	e.createCodes("SPRING40", "N3")
	if d := tills[0].mustDelta(cursor, 0); !slices.Contains(codesOf(d.Coupons), "N3") {
		t.Fatalf("a cached answer outlived the head: %v", codesOf(d.Coupons))
	}
}

// The till protocol answers carry the platform's clock, for the tills' hybrid clocks.
func TestTillAnswersCarryServerTime(t *testing.T) {
	e := newEnv(t)
	e.basic()
	t1 := e.enroll("S001", "T01")
	pos := decode[platform.JournalPosition](t, e.must(200, t1.do("GET", "/v1/till/journal", nil), "position"))
	if !pos.ServerTime.Equal(start) {
		t.Fatalf("journal position server_time %v, want %v", pos.ServerTime, start)
	}
	res := decode[platform.RedeemResult](t, e.must(201, t1.redeem("K1", "", 12000), "redeem"))
	if !res.ServerTime.Equal(start) {
		t.Fatalf("redemption server_time %v, want %v", res.ServerTime, start)
	}
	e.clock.Add(time.Minute)
	// A replay of the same redemption answers with the clock of the replay.
	t1.n--
	res = decode[platform.RedeemResult](t, e.must(201, t1.redeem("K1", "", 12000), "replay"))
	if !res.ServerTime.Equal(start.Add(time.Minute)) {
		t.Fatalf("replayed redemption server_time %v", res.ServerTime)
	}
	if strings.Contains(string(e.must(200, t1.do("GET", "/v1/till/journal", nil), "position").raw), `"server_time"`) == false {
		t.Fatal("server_time missing from the JSON")
	}
}
