package security

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/platform"
	"github.com/tillkeep/tillkeep/sync/wire"
)

// credential is one way a request may present itself.
type credential struct {
	name string
	// auth is the Authorization header; enrollToken what an enrollment body carries.
	auth        string
	enrollToken string
}

// credentialsFor lists every credential that must NOT open a route for who, each
// expected to answer 401 and to be logged: none, a wrong token, a token in another
// scheme, and every other principal's real token.
func (w *world) credentialsFor(who principal) []credential {
	wrong := w.wrongToken("presented to " + string(who))
	other := map[principal]string{
		pos: w.posToken, admin: w.adminToken, enroll: w.enrollToken, till: w.tills["S001/T01"],
	}
	creds := []credential{
		{name: "no token"},
		{name: "wrong token", auth: bearer(wrong), enrollToken: wrong},
		{name: "empty bearer", auth: "Bearer "},
		{name: "right token in Basic scheme", auth: "Basic " + base64.StdEncoding.EncodeToString([]byte("x:"+other[who]))},
	}
	if who == enroll {
		// The enroll token travels in the body; every bearer token stays irrelevant.
		creds[3] = credential{name: "enroll token as bearer, none in body", auth: bearer(w.enrollToken)}
	}
	for _, p := range []principal{pos, admin, till, enroll} {
		if p == who {
			continue
		}
		creds = append(creds, credential{name: string(p) + " token", auth: bearer(other[p]), enrollToken: other[p]})
	}
	return creds
}

// rightCredential is what opens a route for who.
func (w *world) rightCredential(who principal) credential {
	switch who {
	case pos:
		return credential{name: "pos token", auth: bearer(w.posToken)}
	case admin:
		return credential{name: "admin token", auth: bearer(w.adminToken)}
	case till:
		return credential{name: "till token", auth: bearer(w.tills["S001/T01"])}
	case enroll:
		return credential{name: "enroll token", enrollToken: w.enrollToken}
	}
	return credential{name: "none"}
}

func (w *world) daemonOf(r route) *daemon {
	if r.daemon == "agent" {
		return w.agent
	}
	return w.platform
}

// requestFor builds a request of route r with credential c. Enrollment carries its
// token in a body naming a till that does not exist yet.
func requestFor(t testing.TB, r route, c credential) request {
	rq := request{method: r.method(), path: r.path(), auth: c.auth}
	if r.who == enroll {
		rq.body = jsonBody(t, platform.EnrollRequest{StoreID: "S001", TillID: "T-NEW", EnrollToken: c.enrollToken})
	}
	return rq
}

// isEnrollmentRefusal matches the platform's log line for a refused enrollment, which
// names the till rather than the path.
func isEnrollmentRefusal(rec logRecord) bool {
	return rec.level == "WARN" && strings.Contains(rec.msg, "enroll")
}

// TestEveryRouteRefusesMissingAndWrongCredentials is the authorization matrix: every
// route of both daemons, with no token, a wrong one, one in another scheme, and the
// real token of every other principal (a POS token against the platform, an admin token
// used as a till, a till token on the ops API, ...). Each answers 401 in the error
// envelope and is logged as a refusal; the right credential gets past authorization.
func TestEveryRouteRefusesMissingAndWrongCredentials(t *testing.T) {
	w := newWorld(t)
	for _, r := range routes {
		d := w.daemonOf(r)
		t.Run(r.daemon+" "+r.pattern, func(t *testing.T) {
			if r.who == public {
				a := d.do(t, request{method: r.method(), path: r.path()})
				if a.status != http.StatusOK {
					t.Errorf("public route answered %d without a token, want 200; body %s", a.status, a.raw)
				}
				return
			}
			for _, c := range w.credentialsFor(r.who) {
				mark := d.logs.mark()
				a := d.do(t, requestFor(t, r, c))
				expectRefused(t, a, http.StatusUnauthorized, tillkeep.CodeUnauthorized, c.name)
				if r.who == enroll {
					if !anyRecord(d.logs.since(t, mark), isEnrollmentRefusal) {
						t.Errorf("%s: refused enrollment was not logged", c.name)
					}
				} else {
					refusalLogged(t, d, mark, a.path, c.name)
				}
			}
			// The right credential passes authorization (the wildcards name nothing,
			// so it ends in 400, 404 or 2xx, never 401 or 403).
			a := d.do(t, requestFor(t, r, w.rightCredential(r.who)))
			if a.status == http.StatusUnauthorized || a.status == http.StatusForbidden {
				t.Errorf("the right credential (%s) answered %d: %s", r.who, a.status, a.raw)
			}
			if a.status >= 300 {
				envelopeCode(t, a)
			}
		})
	}
}

func anyRecord(recs []logRecord, match func(logRecord) bool) bool {
	for _, r := range recs {
		if match(r) {
			return true
		}
	}
	return false
}

// journalEntry is a well-formed offline redemption of code by storeID/tillID.
func journalEntry(seq uint64, storeID, tillID, code, offerID, redemptionID string) tillkeep.JournalEntry {
	return tillkeep.JournalEntry{
		Seq: seq, EntryID: redemptionID, Kind: tillkeep.EntryRedemption, RedemptionID: redemptionID,
		StoreID: storeID, TillID: tillID, TransactionID: "tx-" + redemptionID, Code: code, OfferID: offerID,
		Bill:     tillkeep.Money{Amount: 5000, Currency: "USD"},
		Discount: tillkeep.Money{Amount: 1000, Currency: "USD"},
		Mode:     "offline", WallTime: fixedNow, HLC: tillkeep.HLC{WallMS: fixedNow.UnixMilli()},
	}
}

func (w *world) ackedSeq(t testing.TB, till string) float64 {
	t.Helper()
	a := w.till(t, till, "GET", "/v1/till/journal", nil)
	w.must(t, a, http.StatusOK, "journal position of "+till)
	var pos struct {
		AckedSeq float64 `json:"acked_seq"`
	}
	if err := json.Unmarshal(a.raw, &pos); err != nil {
		t.Fatalf("journal position %s: %v", a.raw, err)
	}
	return pos.AckedSeq
}

func (w *world) redemptionsOf(t testing.TB, code string) []map[string]any {
	t.Helper()
	a := w.admin(t, "GET", "/v1/coupons/"+code, nil)
	w.must(t, a, http.StatusOK, "coupon "+code)
	var c struct {
		Redemptions []map[string]any `json:"redemptions"`
	}
	if err := json.Unmarshal(a.raw, &c); err != nil {
		t.Fatalf("coupon %s: %v", a.raw, err)
	}
	return c.Redemptions
}

// TestTillCannotUploadAnotherTillsJournal: a till that uploads entries naming another
// till (of its store or of another store), alone or mixed with its own, is refused
// with 403 as a whole, logged, and recorded as an anomaly for ops; nothing of the batch
// is applied. The same till's own entries go through.
func TestTillCannotUploadAnotherTillsJournal(t *testing.T) {
	w := newWorld(t)
	const self = "S001/T01"
	cases := []struct {
		name    string
		entries []tillkeep.JournalEntry
	}{
		{"another till of its store", []tillkeep.JournalEntry{
			journalEntry(1, "S001", "T02", "S001-ONLY-1", "ONLY-S001", "0197a000-0000-7000-8000-00000000a001"),
		}},
		{"the same till id in another store", []tillkeep.JournalEntry{
			journalEntry(1, "S002", "T01", "S002-ONLY-1", "ONLY-S002", "0197a000-0000-7000-8000-00000000a002"),
		}},
		{"its own entry followed by another till's", []tillkeep.JournalEntry{
			journalEntry(1, "S001", "T01", "S001-ONLY-1", "ONLY-S001", "0197a000-0000-7000-8000-00000000a003"),
			journalEntry(2, "S001", "T02", "S001-ONLY-2", "ONLY-S001", "0197a000-0000-7000-8000-00000000a004"),
		}},
		{"another till's entry before its own", []tillkeep.JournalEntry{
			journalEntry(1, "S002", "T01", "S002-ONLY-2", "ONLY-S002", "0197a000-0000-7000-8000-00000000a005"),
			journalEntry(2, "S001", "T01", "S001-ONLY-2", "ONLY-S001", "0197a000-0000-7000-8000-00000000a006"),
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mark := w.platform.logs.mark()
			a := w.till(t, self, "POST", "/v1/till/journal", platform.JournalUpload{Entries: tc.entries})
			expectRefused(t, a, http.StatusForbidden, tillkeep.CodeForbidden, "upload as another till")
			logged := anyRecord(w.platform.logs.since(t, mark), func(r logRecord) bool {
				return r.level == "WARN" && r.str("till") == "T01" && r.str("store") == "S001" && r.str("entry_till") != ""
			})
			if !logged {
				t.Errorf("the refused upload was not logged with the uploading and the named till:\n%s",
					joinRaw(w.platform.logs.since(t, mark)))
			}
			if got := w.ackedSeq(t, self); got != 0 {
				t.Errorf("acked_seq of %s is %v after a refused upload, want 0", self, got)
			}
			for _, e := range tc.entries {
				if reds := w.redemptionsOf(t, e.Code); len(reds) != 0 {
					t.Errorf("coupon %s has redemptions %v after a refused upload", e.Code, reds)
				}
			}
		})
	}

	a := w.admin(t, "GET", "/v1/anomalies", nil)
	w.must(t, a, http.StatusOK, "list anomalies")
	var anomalies struct {
		Anomalies []platform.Anomaly `json:"anomalies"`
	}
	if err := json.Unmarshal(a.raw, &anomalies); err != nil {
		t.Fatalf("anomalies %s: %v", a.raw, err)
	}
	impersonations := 0
	for _, an := range anomalies.Anomalies {
		if an.Kind == platform.AnomalyTillImpersonation && an.StoreID == "S001" && an.TillID == "T01" {
			impersonations++
		}
	}
	if impersonations != len(cases) {
		t.Errorf("ops see %d till_impersonation anomalies of S001/T01, want %d: %s", impersonations, len(cases), a.raw)
	}

	// Its own journal is accepted: the refusals above were about identity, not format.
	own := journalEntry(1, "S001", "T01", "S001-ONLY-3", "ONLY-S001", "0197a000-0000-7000-8000-00000000a007")
	a = w.till(t, self, "POST", "/v1/till/journal", platform.JournalUpload{Entries: []tillkeep.JournalEntry{own}})
	w.must(t, a, http.StatusOK, "upload of its own journal")
	if got := w.ackedSeq(t, self); got != 1 {
		t.Errorf("acked_seq after its own upload is %v, want 1", got)
	}
}

// TestTillActsOnlyAsItselfOnline: the store of an online redemption is the token's, a
// body cannot name another one, and a till cannot reverse another till's redemption.
func TestTillActsOnlyAsItselfOnline(t *testing.T) {
	w := newWorld(t)
	redeem := func(till, code, id string, extra map[string]any) answer {
		body := map[string]any{
			"redemption_id": id, "transaction_id": "tx-" + id, "code": code,
			"bill": map[string]any{"amount": 5000, "currency": "USD"},
		}
		for k, v := range extra {
			body[k] = v
		}
		return w.till(t, till, "POST", "/v1/till/redemptions", body)
	}

	// A body naming another store or till is refused before anything is decided.
	for _, field := range []string{"store_id", "till_id"} {
		a := redeem("S002/T01", "S001-ONLY-1", "0197a000-0000-7000-8000-00000000b001", map[string]any{field: "S001"})
		expectRefused(t, a, http.StatusBadRequest, tillkeep.CodeInvalidRequest, "redemption naming "+field)
	}
	// S001's coupon redeemed by a till of S002 is judged for S002: refused by the store rule.
	a := redeem("S002/T01", "S001-ONLY-1", "0197a000-0000-7000-8000-00000000b002", nil)
	if a.status < 400 || a.status >= 500 {
		t.Fatalf("a till of S002 redeemed S001's coupon: %d %s", a.status, a.raw)
	}
	if reds := w.redemptionsOf(t, "S001-ONLY-1"); len(reds) != 0 {
		t.Errorf("S001-ONLY-1 was redeemed from S002: %v", reds)
	}

	// T02 may not reverse T01's redemption; the redemption stays accepted.
	const id = "0197a000-0000-7000-8000-00000000b003"
	a = redeem("S001/T01", "S001-ONLY-1", id, nil)
	w.must(t, a, http.StatusCreated, "online redemption by S001/T01")
	for _, other := range []string{"S001/T02", "S002/T01"} {
		a = w.till(t, other, "POST", "/v1/till/redemptions/"+id+"/reverse", nil)
		if a.status < 400 || a.status >= 500 {
			t.Errorf("%s reversed S001/T01's redemption: %d %s", other, a.status, a.raw)
		} else {
			envelopeCode(t, a)
		}
	}
	a = w.admin(t, "GET", "/v1/redemptions/"+id, nil)
	w.must(t, a, http.StatusOK, "the redemption")
	var red struct {
		Status string `json:"status"`
	}
	_ = json.Unmarshal(a.raw, &red)
	if red.Status != "accepted" {
		t.Errorf("after reversal attempts by other tills the redemption is %q, want accepted: %s", red.Status, a.raw)
	}
}

// TestEnrollmentCannotBeReplayed: enrolling a till that holds credentials answers 409
// till_already_enrolled and leaves its token working (a leaked enroll token cannot take
// over a till); a wrong enroll token is 401 before anything else is looked at, so it
// reveals nothing about stores; after ops reset the enrollment the old token is dead.
func TestEnrollmentCannotBeReplayed(t *testing.T) {
	w := newWorld(t)
	const self = "S001/T01"
	oldToken := w.tills[self]

	mark := w.platform.logs.mark()
	a := w.enroll(t, "S001", "T01", w.enrollToken)
	expectRefused(t, a, http.StatusConflict, tillkeep.CodeTillAlreadyEnrolled, "enrollment replayed")
	if !anyRecord(w.platform.logs.since(t, mark), isEnrollmentRefusal) {
		t.Errorf("the replayed enrollment was not logged")
	}
	if got := w.ackedSeq(t, self); got != 0 { // the old token still works
		t.Errorf("acked_seq %v", got)
	}

	for _, tc := range []struct{ name, store, till string }{
		{"an enrolled till", "S001", "T01"},
		{"a new till", "S001", "T77"},
		{"an unknown store", "S999", "T01"},
	} {
		mark := w.platform.logs.mark()
		a := w.enroll(t, tc.store, tc.till, w.wrongToken("enroll "+tc.name))
		expectRefused(t, a, http.StatusUnauthorized, tillkeep.CodeUnauthorized, "wrong enroll token for "+tc.name)
		if !anyRecord(w.platform.logs.since(t, mark), isEnrollmentRefusal) {
			t.Errorf("wrong enroll token for %s was not logged", tc.name)
		}
	}

	// The enroll token is shared by a store's tills (it is not single-use): another
	// till enrolls with it. Replay protection is per till.
	a = w.enroll(t, "S002", "T09", w.enrollToken)
	w.must(t, a, http.StatusCreated, "enrollment of another till with the shared token")
	var res platform.EnrollResult
	_ = json.Unmarshal(a.raw, &res)
	w.secrets.addTillToken("till token of S002/T09", res.Token)

	// Ops reset the till: its old token stops working at once; it can enroll again.
	a = w.admin(t, "DELETE", "/v1/tills/S001/T01/enrollment", nil)
	w.must(t, a, http.StatusOK, "reset enrollment")
	mark = w.platform.logs.mark()
	a = w.platform.do(t, request{method: "GET", path: "/v1/till/journal", auth: bearer(oldToken)})
	expectRefused(t, a, http.StatusUnauthorized, tillkeep.CodeUnauthorized, "token of a reset till")
	refusalLogged(t, w.platform, mark, "/v1/till/journal", "token of a reset till")
	a = w.enroll(t, "S001", "T01", w.enrollToken)
	w.must(t, a, http.StatusCreated, "re-enrollment after reset")
	res = platform.EnrollResult{}
	_ = json.Unmarshal(a.raw, &res)
	w.secrets.addTillToken("new till token of S001/T01", res.Token)
	if res.Token == "" || res.Token == oldToken {
		t.Errorf("re-enrollment handed out %q, want a new token", res.Token)
	}
}

// catalogSeen is what a till received from the feed.
type catalogSeen struct {
	storeID string
	offers  map[string]bool
	coupons map[string]bool
}

func (w *world) snapshotFor(t *testing.T, till, query string) (catalogSeen, wire.SnapshotHeader, bool) {
	t.Helper()
	a := w.till(t, till, "GET", wire.PathSnapshot+query, nil)
	if a.status == http.StatusBadRequest { // refusing a parameter it does not take is fine
		envelopeCode(t, a)
		return catalogSeen{}, wire.SnapshotHeader{}, false
	}
	w.must(t, a, http.StatusOK, "snapshot for "+till+query)
	r := wire.NewSnapshotReader(bytes.NewReader(a.raw))
	h, err := r.Header()
	if err != nil {
		t.Fatalf("snapshot header: %v", err)
	}
	offers, err := r.Offers()
	if err != nil {
		t.Fatalf("snapshot offers: %v", err)
	}
	seen := catalogSeen{storeID: h.StoreID, offers: map[string]bool{}, coupons: map[string]bool{}}
	for _, o := range offers {
		seen.offers[o.ID] = true
	}
	for done := false; !done; {
		var coupons []tillkeep.Coupon
		coupons, done, err = r.Coupons(nil, 1000)
		if err != nil {
			t.Fatalf("snapshot coupons: %v", err)
		}
		for _, c := range coupons {
			seen.coupons[c.Code] = true
		}
	}
	return seen, h, true
}

func (w *world) deltaFor(t *testing.T, till, query string) (catalogSeen, bool) {
	t.Helper()
	a := w.till(t, till, "GET", wire.PathCatalog+query, nil)
	if a.status == http.StatusBadRequest {
		envelopeCode(t, a)
		return catalogSeen{}, false
	}
	w.must(t, a, http.StatusOK, "delta for "+till+query)
	var d wire.Delta
	if err := json.Unmarshal(a.raw, &d); err != nil {
		t.Fatalf("delta %s: %v", a.raw, err)
	}
	seen := catalogSeen{offers: map[string]bool{}, coupons: map[string]bool{}}
	for _, o := range d.Offers {
		seen.offers[o.ID] = true
	}
	for _, c := range d.Coupons {
		seen.coupons[c.Code] = true
	}
	return seen, true
}

// holdsNothingOf fails if a till of S002 received anything aimed only at S001.
func holdsNothingOf(t *testing.T, seen catalogSeen, what string) {
	t.Helper()
	for id := range seen.offers {
		if id == "ONLY-S001" {
			t.Errorf("%s: a till of S002 received S001's offer %s", what, id)
		}
	}
	for code := range seen.coupons {
		if strings.HasPrefix(code, "S001-") {
			t.Errorf("%s: a till of S002 received S001's coupon %s", what, code)
		}
	}
}

// TestTillSeesOnlyItsStoresCatalog: the catalog feed takes the store from the till's
// token. A till of S002 never receives the offers and coupons aimed only at S001, in a
// snapshot or a delta, whatever store or till it names in the query; it does receive
// its own store's and the ones aimed at every store.
func TestTillSeesOnlyItsStoresCatalog(t *testing.T) {
	w := newWorld(t)
	a := w.admin(t, "POST", "/v1/offers", map[string]any{
		"id": "EVERYWHERE", "name": "5 USD off anywhere",
		"discount":    map[string]any{"type": "fixed", "amount": 500, "currency": "USD"},
		"valid_from":  "2026-01-01T00:00:00Z",
		"valid_until": "2026-12-31T23:59:59Z",
		"expiry":      map[string]any{"mode": "with_offer"},
		"rules":       map[string]any{"max_redemptions_per_coupon": 1},
		"offline":     map[string]any{"allowed": true},
	})
	w.must(t, a, http.StatusCreated, "create an offer for every store")
	a = w.admin(t, "POST", "/v1/offers/EVERYWHERE/coupons", map[string]any{"codes": []string{"ALL-1"}})
	w.must(t, a, http.StatusCreated, "create its coupon")

	spoofs := []string{"", "?store_id=S001", "?store_id=S001&till_id=T01", "?store=S001&storeId=S001&till=T01",
		"?store_id=S001&store_id=S002"}
	var header wire.SnapshotHeader
	for _, q := range spoofs {
		seen, h, ok := w.snapshotFor(t, "S002/T01", q)
		if !ok {
			continue
		}
		header = h
		if seen.storeID != "S002" {
			t.Errorf("snapshot%s for a till of S002 is of store %q", q, seen.storeID)
		}
		holdsNothingOf(t, seen, "snapshot"+q)
		if !seen.coupons["S002-ONLY-1"] || !seen.coupons["ALL-1"] {
			t.Errorf("snapshot%s for S002 lacks its own coupons: %v", q, seen.coupons)
		}
	}
	if header.StoreID == "" {
		t.Fatalf("no snapshot was served")
	}
	// The same query from a till of S001 does get S001's coupons: the scope is real.
	if seen, _, ok := w.snapshotFor(t, "S001/T01", ""); ok && !seen.coupons["S001-ONLY-1"] {
		t.Errorf("a till of S001 did not receive S001's coupon: %v", seen.coupons)
	}

	// Changes after the snapshot: new coupons for both stores, a revocation in S001.
	for _, st := range []string{"S001", "S002"} {
		a = w.admin(t, "POST", "/v1/offers/ONLY-"+st+"/coupons", map[string]any{"codes": []string{st + "-ONLY-9"}})
		w.must(t, a, http.StatusCreated, "new coupon for "+st)
	}
	a = w.admin(t, "POST", "/v1/coupons/revoke", map[string]any{"codes": []string{"S001-ONLY-2"}})
	w.must(t, a, http.StatusOK, "revoke an S001 coupon")
	base := fmt.Sprintf("?since=%d&epoch=%s", header.Seq, url.QueryEscape(header.Epoch))
	for _, q := range []string{"", "&store_id=S001", "&store_id=S001&till_id=T01", "&store=S001"} {
		seen, ok := w.deltaFor(t, "S002/T01", base+q)
		if !ok {
			continue
		}
		holdsNothingOf(t, seen, "delta"+q)
		if !seen.coupons["S002-ONLY-9"] {
			t.Errorf("delta%s for S002 lacks S002's new coupon: %v", q, seen.coupons)
		}
	}
	// From the start of the feed, if the platform still holds it.
	if a := w.till(t, "S002/T01", "GET", wire.PathCatalog+"?since=0&store_id=S001", nil); a.status == http.StatusOK {
		var d wire.Delta
		if err := json.Unmarshal(a.raw, &d); err != nil {
			t.Fatalf("delta %s: %v", a.raw, err)
		}
		seen := catalogSeen{offers: map[string]bool{}, coupons: map[string]bool{}}
		for _, o := range d.Offers {
			seen.offers[o.ID] = true
		}
		for _, c := range d.Coupons {
			seen.coupons[c.Code] = true
		}
		holdsNothingOf(t, seen, "delta since 0")
	} else if a.status >= 500 || a.status == http.StatusUnauthorized {
		t.Errorf("delta since 0 answered %d: %s", a.status, a.raw)
	}
}
