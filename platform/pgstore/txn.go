package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/platform"
)

var _ platform.Tx = (*txn)(nil)

// txn implements platform.Tx (and ReadTx) on one PostgreSQL transaction.
//
// In an Update (write is true) every read of a row the platform may change is SELECT …
// FOR UPDATE, so the row stays as read until the commit. A read that finds nothing
// locks nothing; the key is remembered as absent, and when this transaction later
// inserts that key and finds it taken (another transaction inserted it in between),
// the whole function runs again rather than work from the stale "absent": run again,
// it finds the row and locks it. Together that behaves as if Updates ran one at a
// time, which is what the platform was written against.
//
// Writes whose outcome is known in advance (an UPDATE of a row this transaction holds,
// an insert of a key it read as absent, change-log entries) are queued and sent with
// the next statement or with the COMMIT: one round trip instead of several. They check
// themselves in the database, so that a surprise aborts the transaction there.
type txn struct {
	ctx   context.Context
	conn  *pgx.Conn
	write bool

	// begin is the BEGIN statement, sent with the first round trip ("" once sent);
	// commitSent is set once a COMMIT went out, after which a failure has an unknown
	// outcome and must not be retried.
	begin      string
	commitSent bool

	// err is the first database failure; the transaction is unusable after it, and
	// every later call returns it.
	err error
	// retry is set when the transaction must run again (see above).
	retry error

	queued *pgx.Batch

	absent      map[string]struct{}
	coupons     map[string]string // code → offer of coupons held (locked or inserted)
	redemptions map[string]struct{}
	offerUsage  map[string]struct{}
	custUsage   map[[2]string]struct{}
	tills       map[[2]string]heldTill
	conflicts   map[string]heldConflict
	meta        map[string]struct{}

	// ahead holds the definitions (stores, customers, offers) this transaction read,
	// some of them ahead, in the round trip of a related read, because the platform
	// reads them next: the offer after its usage row, the customer after theirs, the
	// store after its till. A nil value is "not found". Inside an Update that keeps a
	// round trip out of the time a hot limit row is held; definitions take no lock,
	// so reading one a statement early changes nothing else.
	ahead map[string][]byte

	// The change log: once the head row is locked, sequences are assigned here and
	// the entries written in one statement before the next read of the log or the
	// commit.
	headHeld bool
	head     uint64
	changes  []platform.Change
}

type heldTill struct {
	ackedSeq  uint64
	tokenHash string
}

type heldConflict struct {
	code, kind, status string
}

const (
	beginWrite = "BEGIN ISOLATION LEVEL READ COMMITTED, READ WRITE"
	beginRead  = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
)

func newTxn(ctx context.Context, conn *pgx.Conn, write bool) *txn {
	begin := beginRead
	if write {
		begin = beginWrite
	}
	return &txn{
		ctx: ctx, conn: conn, write: write, begin: begin,
		absent:      map[string]struct{}{},
		coupons:     map[string]string{},
		redemptions: map[string]struct{}{},
		offerUsage:  map[string]struct{}{},
		custUsage:   map[[2]string]struct{}{},
		tills:       map[[2]string]heldTill{},
		conflicts:   map[string]heldConflict{},
		meta:        map[string]struct{}{},
		ahead:       map[string][]byte{},
	}
}

// Absent-key namespaces.
const (
	absMeta       = "meta"
	absCoupon     = "coupon"
	absRedemption = "redemption"
	absOfferUsage = "offer_usage"
	absCustUsage  = "customer_usage"
	absTill       = "till"
	absConflict   = "conflict"
	absOpenCase   = "open_conflict"
)

func akey(kind string, parts ...string) string {
	return kind + "\x00" + strings.Join(parts, "\x00")
}

func (t *txn) markAbsent(k string) {
	if t.write {
		t.absent[k] = struct{}{}
	}
}

func (t *txn) wasAbsent(k string) bool {
	_, ok := t.absent[k]
	return ok
}

// concurrentInsert records that key, read as absent, was inserted by another
// transaction meanwhile: the function must run again.
func (t *txn) concurrentInsert(what string) {
	if t.retry == nil {
		t.retry = fmt.Errorf("%s was inserted by a concurrent transaction after this one read it as absent: %w", what, errRetry)
	}
}

// lock is the locking clause of reads inside an Update.
func (t *txn) lock() string {
	if t.write {
		return " FOR UPDATE"
	}
	return ""
}

// queue adds a statement to the next round trip; the first round trip of the
// transaction carries its BEGIN.
func (t *txn) queue(sql string, args ...any) *pgx.QueuedQuery {
	if t.queued == nil {
		t.queued = &pgx.Batch{}
		if t.begin != "" {
			t.queued.Queue(t.begin)
			t.begin = ""
		}
	}
	return t.queued.Queue(sql, args...)
}

// usable returns why the transaction can do no more: a database failure, or a
// concurrent insert that makes it run again. Stopping early saves the work of a run
// whose outcome is discarded.
func (t *txn) usable() error {
	if t.err != nil {
		return t.err
	}
	return t.retry
}

// send sends the queued statements in one round trip and runs their callbacks. A
// failure is kept: the transaction is aborted.
func (t *txn) send() error {
	if err := t.usable(); err != nil {
		return err
	}
	if t.queued == nil || t.queued.Len() == 0 {
		return nil
	}
	b := t.queued
	t.queued = nil
	if err := t.conn.SendBatch(t.ctx, b).Close(); err != nil {
		return t.fail(err)
	}
	return t.usable()
}

// began reports whether BEGIN went out: only then is there anything to end.
func (t *txn) began() bool { return t.begin == "" }

// fail keeps err as the transaction's failure and returns it.
func (t *txn) fail(err error) error {
	if t.err == nil {
		t.err = err
	}
	return err
}

// commit sends what is queued and the COMMIT in one round trip. Every queued write
// checks its own outcome in the database (tillkeep_expect_one, unique violations), so
// that a write that did not do what was expected aborts the transaction before the
// COMMIT can take effect.
func (t *txn) commit() error {
	t.queueChanges()
	if t.queued == nil && !t.began() {
		return t.usable() // fn sent nothing: there is no transaction to commit
	}
	t.queue("COMMIT").Exec(func(ct pgconn.CommandTag) error {
		if ct.String() != "COMMIT" {
			return fmt.Errorf("the transaction was rolled back at commit (%s)", ct)
		}
		return nil
	})
	t.commitSent = true
	return t.send()
}

// abort ends the transaction after a failure. A connection it cannot return to a
// clean state is closed (the pool drops it).
func (t *txn) abort() {
	if !t.began() || t.conn.IsClosed() || t.conn.PgConn().TxStatus() == 'I' {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.ctx), 5*time.Second)
	defer cancel()
	if _, err := t.conn.Exec(ctx, "ROLLBACK"); err != nil {
		_ = t.conn.Close(ctx)
	}
}

// readRow queues a one-row read and sends it with what is queued; found reports
// whether there was a row.
func (t *txn) readRow(sql string, args []any, dest ...any) (found bool, err error) {
	t.queue(sql, args...).QueryRow(func(row pgx.Row) error {
		err := row.Scan(dest...)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return nil
		case err != nil:
			return err
		}
		found = true
		return nil
	})
	if err := t.send(); err != nil {
		return false, err
	}
	return found, nil
}

// readRows queues a read and sends it with what is queued; each is called per row
// after Scan into dest.
func (t *txn) readRows(sql string, args []any, each func() error, dest ...any) error {
	t.queue(sql, args...).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			if err := each(); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	return t.send()
}

// execNow sends a statement with what is queued and returns its command tag.
func (t *txn) execNow(sql string, args ...any) (pgconn.CommandTag, error) {
	var tag pgconn.CommandTag
	t.queue(sql, args...).Exec(func(ct pgconn.CommandTag) error {
		tag = ct
		return nil
	})
	err := t.send()
	return tag, err
}

// later queues a write that cannot fail in a way fn must hear about (an upsert): it
// goes with the next round trip.
func (t *txn) later(sql string, args ...any) {
	t.queue(sql, args...)
}

// laterOne queues an UPDATE of a row this transaction holds; the database fails the
// transaction unless it changed exactly that row.
func (t *txn) laterOne(what, update string, args ...any) {
	sql := fmt.Sprintf("WITH changed AS (%s RETURNING 1) SELECT tillkeep_expect_one(count(*), $%d) FROM changed", update, len(args)+1)
	t.queue(sql, append(args, what)...)
}

// laterInsertAbsent queues a plain INSERT of a key this transaction read as absent.
// If another transaction inserted it meanwhile, the unique violation aborts this one
// (so that its COMMIT, sent in the same round trip, cannot take effect) and the
// function runs again.
func (t *txn) laterInsertAbsent(what, insert string, args ...any) {
	q := t.queue(insert, args...)
	q.Fn = func(br pgx.BatchResults) error {
		_, err := br.Exec()
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" {
			t.concurrentInsert(what)
		}
		return err
	}
}

// guarded runs a statement that may break a unique index under a savepoint: a unique
// violation rolls back to it and returns ErrExists, leaving the transaction usable.
func (t *txn) guarded(what string, run func() (pgconn.CommandTag, error)) (pgconn.CommandTag, error) {
	t.queue("SAVEPOINT tillkeep_guard")
	if err := t.send(); err != nil {
		return pgconn.CommandTag{}, err
	}
	ct, err := run()
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		if _, rerr := t.conn.Exec(t.ctx, "ROLLBACK TO SAVEPOINT tillkeep_guard"); rerr != nil {
			return pgconn.CommandTag{}, t.fail(rerr)
		}
		return pgconn.CommandTag{}, fmt.Errorf("%s: %s: %w", what, pgErr.ConstraintName, platform.ErrExists)
	}
	if err != nil {
		return ct, t.fail(err)
	}
	if _, err := t.conn.Exec(t.ctx, "RELEASE SAVEPOINT tillkeep_guard"); err != nil {
		return ct, t.fail(err)
	}
	return ct, nil
}

func encode(what string, v any) (string, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode %s: %w", what, err)
	}
	return string(raw), nil
}

func decode(what string, raw []byte, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode %s: %w", what, err)
	}
	return nil
}

// limitArg is a LIMIT parameter: NULL (no limit) for limit <= 0.
func limitArg(limit int) any {
	if limit <= 0 {
		return nil
	}
	return int64(limit)
}

// --- meta ---

func (t *txn) Meta(k string) ([]byte, error) {
	var v []byte
	found, err := t.readRow("SELECT value FROM meta WHERE key = $1"+t.lock(), []any{k}, &v)
	if err != nil {
		return nil, fmt.Errorf("read meta %q: %w", k, err)
	}
	if !found {
		t.markAbsent(akey(absMeta, k))
		return nil, platform.ErrNotFound
	}
	if t.write {
		t.meta[k] = struct{}{}
	}
	return v, nil
}

func (t *txn) PutMeta(k string, v []byte) error {
	if k == metaEpoch || k == metaSchemaVersion {
		return fmt.Errorf("put meta %q: the key is owned by the storage", k)
	}
	if v == nil {
		v = []byte{}
	}
	if err := t.usable(); err != nil {
		return err
	}
	ak := akey(absMeta, k)
	if t.wasAbsent(ak) {
		delete(t.absent, ak)
		t.laterInsertAbsent("meta "+k, "INSERT INTO meta (key, value) VALUES ($1, $2)", k, v)
	} else {
		t.later("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", k, v)
	}
	t.meta[k] = struct{}{}
	return nil
}

// --- stores, customers, offers: definitions, read without locks ---

// Definition tables, as named in read-ahead keys.
const (
	defStore    = "stores"
	defCustomer = "customers"
	defOffer    = "offers"
)

// readAhead queues, inside an Update, the read of a definition with the next
// statement, unless it is already known. (A View holds no lock, so it has no time to
// save that way.)
func (t *txn) readAhead(table, id string) {
	k := akey(table, id)
	if _, ok := t.ahead[k]; ok || !t.write {
		return
	}
	t.queue("SELECT data FROM "+table+" WHERE id = $1", id).QueryRow(func(row pgx.Row) error {
		var raw []byte
		switch err := row.Scan(&raw); {
		case errors.Is(err, pgx.ErrNoRows):
			t.ahead[k] = nil
		case err != nil:
			return err
		default:
			t.ahead[k] = raw
		}
		return nil
	})
}

// definition returns a definition, read ahead or now.
func definition[T any](t *txn, table, id string) (T, error) {
	var rec T
	what := strings.TrimSuffix(table, "s") + " " + id
	k := akey(table, id)
	raw, ok := t.ahead[k]
	if !ok {
		found, err := t.readRow("SELECT data FROM "+table+" WHERE id = $1", []any{id}, &raw)
		if err != nil {
			return rec, fmt.Errorf("read %s: %w", what, err)
		}
		if !found {
			raw = nil
		}
		t.ahead[k] = raw
	}
	if raw == nil {
		return rec, platform.ErrNotFound
	}
	return rec, decode(what, raw, &rec)
}

func getRecord[T any](t *txn, what, sql string, args ...any) (T, error) {
	var rec T
	var raw []byte
	found, err := t.readRow(sql, args, &raw)
	if err != nil {
		return rec, fmt.Errorf("read %s: %w", what, err)
	}
	if !found {
		return rec, platform.ErrNotFound
	}
	return rec, decode(what, raw, &rec)
}

func listRecords[T any](t *txn, what, sql string, args ...any) ([]T, error) {
	out := []T{}
	var raw []byte
	err := t.readRows(sql, args, func() error {
		var rec T
		if err := decode(what, raw, &rec); err != nil {
			return err
		}
		out = append(out, rec)
		return nil
	}, &raw)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", what, err)
	}
	return out, nil
}

func (t *txn) Store(id string) (tillkeep.Store, error) {
	return definition[tillkeep.Store](t, defStore, id)
}

func (t *txn) Stores(after string, limit int) ([]tillkeep.Store, error) {
	return listRecords[tillkeep.Store](t, "stores", "SELECT data FROM stores WHERE id > $1 ORDER BY id LIMIT $2", after, limitArg(limit))
}

func (t *txn) PutStore(s tillkeep.Store) error {
	data, err := encode("store "+s.ID, s)
	if err != nil {
		return err
	}
	if err := t.usable(); err != nil {
		return err
	}
	delete(t.ahead, akey(defStore, s.ID))
	t.later("INSERT INTO stores (id, data) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data", s.ID, data)
	return nil
}

func (t *txn) Customer(id string) (tillkeep.Customer, error) {
	return definition[tillkeep.Customer](t, defCustomer, id)
}

func (t *txn) PutCustomer(c tillkeep.Customer) error {
	data, err := encode("customer "+c.ID, c)
	if err != nil {
		return err
	}
	if err := t.usable(); err != nil {
		return err
	}
	delete(t.ahead, akey(defCustomer, c.ID))
	t.later("INSERT INTO customers (id, data) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data", c.ID, data)
	return nil
}

func (t *txn) Offer(id string) (tillkeep.Offer, error) {
	return definition[tillkeep.Offer](t, defOffer, id)
}

func (t *txn) Offers(after string, limit int) ([]tillkeep.Offer, error) {
	return listRecords[tillkeep.Offer](t, "offers", "SELECT data FROM offers WHERE id > $1 ORDER BY id LIMIT $2", after, limitArg(limit))
}

func (t *txn) InsertOffer(o tillkeep.Offer) error {
	data, err := encode("offer "+o.ID, o)
	if err != nil {
		return err
	}
	delete(t.ahead, akey(defOffer, o.ID))
	ct, err := t.execNow("INSERT INTO offers (id, data) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING", o.ID, data)
	if err != nil {
		return fmt.Errorf("insert offer %s: %w", o.ID, err)
	}
	if ct.RowsAffected() == 0 {
		return fmt.Errorf("insert offer %s: %w", o.ID, platform.ErrExists)
	}
	return nil
}

func (t *txn) UpdateOffer(o tillkeep.Offer) error {
	data, err := encode("offer "+o.ID, o)
	if err != nil {
		return err
	}
	delete(t.ahead, akey(defOffer, o.ID))
	ct, err := t.execNow("UPDATE offers SET data = $2 WHERE id = $1", o.ID, data)
	if err != nil {
		return fmt.Errorf("update offer %s: %w", o.ID, err)
	}
	if ct.RowsAffected() == 0 {
		return fmt.Errorf("update offer %s: %w", o.ID, platform.ErrNotFound)
	}
	return nil
}

// --- coupons ---

func (t *txn) Coupon(code string) (tillkeep.Coupon, error) {
	var c tillkeep.Coupon
	var raw []byte
	found, err := t.readRow("SELECT data FROM coupons WHERE code = $1"+t.lock(), []any{code}, &raw)
	if err != nil {
		return c, fmt.Errorf("read coupon %s: %w", code, err)
	}
	if !found {
		t.markAbsent(akey(absCoupon, code))
		return c, platform.ErrNotFound
	}
	if err := decode("coupon "+code, raw, &c); err != nil {
		return c, err
	}
	if t.write {
		t.coupons[code] = c.OfferID
	}
	return c, nil
}

// coupons lists coupons (locked inside an Update) and holds them.
func (t *txn) couponList(what, sql string, args ...any) ([]tillkeep.Coupon, error) {
	cs, err := listRecords[tillkeep.Coupon](t, what, sql+t.lock(), args...)
	if err != nil {
		return nil, err
	}
	if t.write {
		for _, c := range cs {
			t.coupons[c.Code] = c.OfferID
		}
	}
	return cs, nil
}

func (t *txn) CouponsByOffer(offerID, after string, limit int) ([]tillkeep.Coupon, error) {
	return t.couponList("coupons of offer "+offerID,
		"SELECT data FROM coupons WHERE offer_id = $1 AND code > $2 ORDER BY code LIMIT $3",
		offerID, after, limitArg(limit))
}

func (t *txn) UnissuedCoupons(offerID, after string, limit int) ([]tillkeep.Coupon, error) {
	// The predicate repeats the partial index's, so that the index serves the query
	// and a row changed under its lock is checked again against it.
	return t.couponList("unissued coupons of offer "+offerID,
		"SELECT data FROM coupons WHERE offer_id = $1 AND status = 'active' AND customer_id = '' AND code > $2 ORDER BY code LIMIT $3",
		offerID, after, limitArg(limit))
}

func (t *txn) CouponsByCustomer(customerID, offerID string) ([]tillkeep.Coupon, error) {
	if customerID == "" {
		return []tillkeep.Coupon{}, nil // no coupon is issued to nobody
	}
	if offerID != "" {
		return t.couponList("coupons of customer "+customerID,
			"SELECT data FROM coupons WHERE customer_id = $1 AND offer_id = $2 ORDER BY code", customerID, offerID)
	}
	return t.couponList("coupons of customer "+customerID,
		"SELECT data FROM coupons WHERE customer_id = $1 ORDER BY offer_id, code", customerID)
}

// InsertCoupons inserts the batch in one statement: the codes travel as arrays, the
// server unnests them, and ON CONFLICT DO NOTHING RETURNING names what was inserted.
func (t *txn) InsertCoupons(cs []tillkeep.Coupon) ([]string, error) {
	order := make([]int, len(cs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(cs[a].Code, cs[b].Code) })
	dup := make([]bool, len(cs))
	codes := make([]string, 0, len(cs))
	offers := make([]string, 0, len(cs))
	statuses := make([]string, 0, len(cs))
	customers := make([]string, 0, len(cs))
	datas := make([]string, 0, len(cs))
	first := make(map[string]int, len(cs)) // code → index in cs of the occurrence sent
	for n, i := range order {
		c := cs[i]
		if n > 0 && cs[order[n-1]].Code == c.Code {
			dup[i] = true
			continue
		}
		data, err := encode("coupon "+c.Code, c)
		if err != nil {
			return nil, err
		}
		first[c.Code] = i
		codes = append(codes, c.Code)
		offers = append(offers, c.OfferID)
		statuses = append(statuses, c.Status)
		customers = append(customers, c.CustomerID)
		datas = append(datas, data)
	}
	inserted := make(map[string]struct{}, len(codes))
	var code string
	if len(codes) > 0 {
		err := t.readRows(`INSERT INTO coupons (code, offer_id, status, customer_id, data)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[])
			ON CONFLICT (code) DO NOTHING RETURNING code`,
			[]any{codes, offers, statuses, customers, datas},
			func() error { inserted[code] = struct{}{}; return nil }, &code)
		if err != nil {
			return nil, fmt.Errorf("insert %d coupons: %w", len(codes), err)
		}
	}
	for c, i := range first {
		if _, ok := inserted[c]; ok {
			delete(t.absent, akey(absCoupon, c))
			t.coupons[c] = cs[i].OfferID
			continue
		}
		dup[i] = true
		if t.wasAbsent(akey(absCoupon, c)) {
			t.concurrentInsert("coupon " + c)
		}
	}
	existing := []string{}
	for i, d := range dup {
		if d {
			existing = append(existing, cs[i].Code)
		}
	}
	return existing, nil
}

func (t *txn) UpdateCoupon(c tillkeep.Coupon) error {
	offer, held := t.coupons[c.Code]
	if !held {
		var cur string
		found, err := t.readRow("SELECT offer_id FROM coupons WHERE code = $1 FOR UPDATE", []any{c.Code}, &cur)
		if err != nil {
			return fmt.Errorf("update coupon %s: %w", c.Code, err)
		}
		if !found {
			return fmt.Errorf("update coupon %s: %w", c.Code, platform.ErrNotFound)
		}
		offer = cur
		t.coupons[c.Code] = cur
	}
	if offer != c.OfferID {
		return fmt.Errorf("update coupon %s: a coupon cannot move from offer %s to %s", c.Code, offer, c.OfferID)
	}
	data, err := encode("coupon "+c.Code, c)
	if err != nil {
		return err
	}
	if err := t.usable(); err != nil {
		return err
	}
	t.laterOne("update coupon "+c.Code,
		"UPDATE coupons SET status = $2, customer_id = $3, data = $4 WHERE code = $1", c.Code, c.Status, c.CustomerID, data)
	return nil
}

// --- redemptions ---

const redemptionCols = "id, code, offer_id, store_id, till_id, transaction_id, mode, status, event_ns, data"

func redemptionArgs(r platform.Redemption) ([]any, error) {
	data, err := encode("redemption "+r.ID, r)
	if err != nil {
		return nil, err
	}
	return []any{r.ID, r.Code, r.OfferID, r.StoreID, r.TillID, r.TransactionID, r.Mode, r.Status, r.EventAt.UnixNano(), data}, nil
}

func (t *txn) holdRedemptions(rs ...platform.Redemption) {
	if t.write {
		for _, r := range rs {
			t.redemptions[r.ID] = struct{}{}
		}
	}
}

func (t *txn) Redemption(id string) (platform.Redemption, error) {
	r, err := getRecord[platform.Redemption](t, "redemption "+id, "SELECT data FROM redemptions WHERE id = $1"+t.lock(), id)
	switch {
	case errors.Is(err, platform.ErrNotFound):
		t.markAbsent(akey(absRedemption, id))
	case err == nil:
		t.holdRedemptions(r)
	}
	return r, err
}

func (t *txn) RedemptionsByCoupon(code string) ([]platform.Redemption, error) {
	rs, err := listRecords[platform.Redemption](t, "redemptions of coupon "+code,
		"SELECT data FROM redemptions WHERE code = $1 ORDER BY id"+t.lock(), code)
	if err == nil {
		t.holdRedemptions(rs...)
	}
	return rs, err
}

// RedemptionByTransaction takes, inside an Update, a transaction-scoped advisory lock
// on the (store, till, transaction) key before it reads: the key is not unique in the
// table, so no constraint catches two requests racing with it, and the lock makes the
// second one wait for the first and then see its row.
func (t *txn) RedemptionByTransaction(storeID, tillID, transactionID string) (platform.Redemption, error) {
	t.readAhead(defStore, storeID)
	if t.write {
		// Length-prefixed parts cannot run into each other (and text cannot hold NUL).
		key := fmt.Sprintf("%d:%s%d:%s%s", len(storeID), storeID, len(tillID), tillID, transactionID)
		t.queue("SELECT pg_advisory_xact_lock($1::int, hashtext($2))", advisoryTransactionKeys, key)
	}
	r, err := getRecord[platform.Redemption](t, "redemption of transaction "+transactionID,
		"SELECT data FROM redemptions WHERE store_id = $1 AND till_id = $2 AND transaction_id = $3 AND transaction_id <> '' ORDER BY recorded LIMIT 1"+t.lock(),
		storeID, tillID, transactionID)
	if err == nil {
		t.holdRedemptions(r)
	}
	return r, err
}

// advisoryTransactionKeys is the class of the advisory locks on POS transaction keys
// (the two-int4 key space, apart from the migration lock's bigint key).
const advisoryTransactionKeys = 0x746b7478 // "tktx"

func (t *txn) Redemptions(f platform.RedemptionFilter, cursor string, limit int) ([]platform.Redemption, string, error) {
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	for _, c := range []struct{ col, v string }{
		{"store_id", f.StoreID}, {"till_id", f.TillID}, {"offer_id", f.OfferID},
		{"code", f.Code}, {"mode", f.Mode}, {"status", f.Status},
	} {
		if c.v != "" {
			where = append(where, c.col+" = "+arg(c.v))
		}
	}
	if !f.From.IsZero() {
		where = append(where, "event_ns >= "+arg(f.From.UnixNano()))
	}
	if !f.To.IsZero() {
		where = append(where, "event_ns < "+arg(f.To.UnixNano()))
	}
	if cursor != "" {
		ns, id, ok := parseCursor(cursor)
		if !ok {
			return nil, "", tillkeep.Errorf(tillkeep.CodeInvalidRequest, "cursor %q is not a cursor this platform issued", cursor)
		}
		where = append(where, fmt.Sprintf("(event_ns, id) > (%s, %s)", arg(ns), arg(id)))
	}
	sql := "SELECT event_ns, data FROM redemptions"
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	sql += " ORDER BY event_ns, id"
	if limit > 0 {
		sql += " LIMIT " + arg(int64(limit)+1)
	}
	out := []platform.Redemption{}
	var lastNS []int64
	var ns int64
	var raw []byte
	err := t.readRows(sql, args, func() error {
		var r platform.Redemption
		if err := decode("redemption", raw, &r); err != nil {
			return err
		}
		out = append(out, r)
		lastNS = append(lastNS, ns)
		return nil
	}, &ns, &raw)
	if err != nil {
		return nil, "", fmt.Errorf("list redemptions: %w", err)
	}
	if limit > 0 && len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		return out, makeCursor(lastNS[limit-1], last.ID), nil
	}
	return out, "", nil
}

func (t *txn) InsertRedemption(r platform.Redemption) error {
	args, err := redemptionArgs(r)
	if err != nil {
		return err
	}
	if err := t.usable(); err != nil {
		return err
	}
	const insert = "INSERT INTO redemptions (" + redemptionCols + ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
	ak := akey(absRedemption, r.ID)
	if t.wasAbsent(ak) {
		// Read as absent: either it inserts, or another transaction got there first
		// and this one runs again. Neither needs an answer now.
		delete(t.absent, ak)
		t.laterInsertAbsent("redemption "+r.ID, insert, args...)
		t.redemptions[r.ID] = struct{}{}
		return nil
	}
	ct, err := t.execNow(insert+" ON CONFLICT (id) DO NOTHING", args...)
	if err != nil {
		return fmt.Errorf("insert redemption %s: %w", r.ID, err)
	}
	if ct.RowsAffected() == 0 {
		return fmt.Errorf("insert redemption %s: %w", r.ID, platform.ErrExists)
	}
	t.redemptions[r.ID] = struct{}{}
	return nil
}

func (t *txn) UpdateRedemption(r platform.Redemption) error {
	args, err := redemptionArgs(r)
	if err != nil {
		return err
	}
	if err := t.usable(); err != nil {
		return err
	}
	const update = "UPDATE redemptions SET code = $2, offer_id = $3, store_id = $4, till_id = $5, transaction_id = $6, mode = $7, status = $8, event_ns = $9, data = $10 WHERE id = $1"
	if _, held := t.redemptions[r.ID]; held {
		t.laterOne("update redemption "+r.ID, update, args...)
		return nil
	}
	ct, err := t.execNow(update, args...)
	if err != nil {
		return fmt.Errorf("update redemption %s: %w", r.ID, err)
	}
	if ct.RowsAffected() == 0 {
		return fmt.Errorf("update redemption %s: %w", r.ID, platform.ErrNotFound)
	}
	t.redemptions[r.ID] = struct{}{}
	return nil
}

// --- usage ---

func (t *txn) OfferUsage(offerID string) (platform.OfferUsage, error) {
	u := platform.OfferUsage{OfferID: offerID}
	t.readAhead(defOffer, offerID)
	var raw []byte
	found, err := t.readRow("SELECT data FROM offer_usage WHERE offer_id = $1"+t.lock(), []any{offerID}, &raw)
	if err != nil {
		return u, fmt.Errorf("read usage of offer %s: %w", offerID, err)
	}
	if !found {
		t.markAbsent(akey(absOfferUsage, offerID))
		return u, nil
	}
	if t.write {
		t.offerUsage[offerID] = struct{}{}
	}
	return u, decode("usage of offer "+offerID, raw, &u)
}

// putHeld writes a limit row: an UPDATE when this transaction holds it, an insert
// that must not find the key when it read it as absent, an upsert otherwise.
func (t *txn) putHeld(what string, held bool, absentKey, update, insert, upsert string, args ...any) {
	switch {
	case held:
		t.laterOne("update "+what, update, args...)
	case t.wasAbsent(absentKey):
		delete(t.absent, absentKey)
		t.laterInsertAbsent(what, insert, args...)
	default:
		t.later(upsert, args...)
	}
}

func (t *txn) PutOfferUsage(u platform.OfferUsage) error {
	data, err := encode("usage of offer "+u.OfferID, u)
	if err != nil {
		return err
	}
	if err := t.usable(); err != nil {
		return err
	}
	_, held := t.offerUsage[u.OfferID]
	t.putHeld("usage of offer "+u.OfferID, held, akey(absOfferUsage, u.OfferID),
		"UPDATE offer_usage SET data = $2 WHERE offer_id = $1",
		"INSERT INTO offer_usage (offer_id, data) VALUES ($1, $2)",
		"INSERT INTO offer_usage (offer_id, data) VALUES ($1, $2) ON CONFLICT (offer_id) DO UPDATE SET data = EXCLUDED.data",
		u.OfferID, data)
	t.offerUsage[u.OfferID] = struct{}{}
	return nil
}

func (t *txn) CustomerUsage(customerID, offerID string) (platform.CustomerUsage, error) {
	u := platform.CustomerUsage{CustomerID: customerID, OfferID: offerID}
	t.readAhead(defCustomer, customerID)
	var raw []byte
	found, err := t.readRow("SELECT data FROM customer_usage WHERE customer_id = $1 AND offer_id = $2"+t.lock(), []any{customerID, offerID}, &raw)
	if err != nil {
		return u, fmt.Errorf("read usage of offer %s by customer %s: %w", offerID, customerID, err)
	}
	if !found {
		t.markAbsent(akey(absCustUsage, customerID, offerID))
		return u, nil
	}
	if t.write {
		t.custUsage[[2]string{customerID, offerID}] = struct{}{}
	}
	return u, decode("usage of offer "+offerID+" by customer "+customerID, raw, &u)
}

func (t *txn) PutCustomerUsage(u platform.CustomerUsage) error {
	what := "usage of offer " + u.OfferID + " by customer " + u.CustomerID
	data, err := encode(what, u)
	if err != nil {
		return err
	}
	if err := t.usable(); err != nil {
		return err
	}
	k := [2]string{u.CustomerID, u.OfferID}
	_, held := t.custUsage[k]
	t.putHeld(what, held, akey(absCustUsage, u.CustomerID, u.OfferID),
		"UPDATE customer_usage SET data = $3 WHERE customer_id = $1 AND offer_id = $2",
		"INSERT INTO customer_usage (customer_id, offer_id, data) VALUES ($1, $2, $3)",
		"INSERT INTO customer_usage (customer_id, offer_id, data) VALUES ($1, $2, $3) ON CONFLICT (customer_id, offer_id) DO UPDATE SET data = EXCLUDED.data",
		u.CustomerID, u.OfferID, data)
	t.custUsage[k] = struct{}{}
	return nil
}

// --- tills ---

// The columns token_hash and acked_seq are the authority; the JSON carries the rest.
const tillCols = "token_hash, acked_seq, data"

func (t *txn) scanTill(tokenHash string, acked int64, raw []byte) (platform.Till, error) {
	var tl platform.Till
	if err := decode("till", raw, &tl); err != nil {
		return tl, err
	}
	tl.TokenHash, tl.AckedSeq = tokenHash, uint64(acked)
	if t.write {
		t.tills[[2]string{tl.StoreID, tl.TillID}] = heldTill{ackedSeq: tl.AckedSeq, tokenHash: tl.TokenHash}
	}
	return tl, nil
}

func (t *txn) getTill(what, sql string, args ...any) (platform.Till, bool, error) {
	var (
		hash  string
		acked int64
		raw   []byte
	)
	found, err := t.readRow(sql+t.lock(), args, &hash, &acked, &raw)
	if err != nil {
		return platform.Till{}, false, fmt.Errorf("read %s: %w", what, err)
	}
	if !found {
		return platform.Till{}, false, nil
	}
	tl, err := t.scanTill(hash, acked, raw)
	return tl, true, err
}

func (t *txn) Till(storeID, tillID string) (platform.Till, error) {
	t.readAhead(defStore, storeID)
	tl, found, err := t.getTill("till "+storeID+"/"+tillID,
		"SELECT "+tillCols+" FROM tills WHERE store_id = $1 AND till_id = $2", storeID, tillID)
	if err != nil {
		return tl, err
	}
	if !found {
		t.markAbsent(akey(absTill, storeID, tillID))
		return tl, platform.ErrNotFound
	}
	return tl, nil
}

func (t *txn) TillByTokenHash(hash string) (platform.Till, error) {
	if hash == "" {
		return platform.Till{}, platform.ErrNotFound
	}
	tl, found, err := t.getTill("till by token", "SELECT "+tillCols+" FROM tills WHERE token_hash = $1", hash)
	if err != nil {
		return tl, err
	}
	if !found {
		return tl, platform.ErrNotFound
	}
	return tl, nil
}

func (t *txn) Tills(storeID string) ([]platform.Till, error) {
	sql := "SELECT " + tillCols + " FROM tills ORDER BY store_id, till_id"
	var args []any
	if storeID != "" {
		sql = "SELECT " + tillCols + " FROM tills WHERE store_id = $1 ORDER BY till_id"
		args = []any{storeID}
	}
	out := []platform.Till{}
	var (
		hash  string
		acked int64
		raw   []byte
	)
	err := t.readRows(sql+t.lock(), args, func() error {
		tl, err := t.scanTill(hash, acked, raw)
		if err != nil {
			return err
		}
		out = append(out, tl)
		return nil
	}, &hash, &acked, &raw)
	if err != nil {
		return nil, fmt.Errorf("list tills: %w", err)
	}
	return out, nil
}

// PutTill writes a till. A till this transaction holds is updated only WHERE
// acked_seq is still the value it read (and the table's trigger refuses any move
// back): the acknowledged sequence cannot be lost or rewound by a concurrent writer.
// A new token may collide with another till's in the unique index: that statement
// runs under a savepoint and answers ErrExists.
func (t *txn) PutTill(tl platform.Till) error {
	what := "till " + tl.StoreID + "/" + tl.TillID
	data, err := encode(what, tl)
	if err != nil {
		return err
	}
	if err := t.usable(); err != nil {
		return err
	}
	k := [2]string{tl.StoreID, tl.TillID}
	old, held := t.tills[k]
	args := []any{tl.StoreID, tl.TillID, tl.TokenHash, int64(tl.AckedSeq), data}
	const (
		update = "UPDATE tills SET token_hash = $3, acked_seq = $4, data = $5 WHERE store_id = $1 AND till_id = $2 AND acked_seq = $6"
		insert = "INSERT INTO tills (store_id, till_id, token_hash, acked_seq, data) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (store_id, till_id) DO NOTHING"
		upsert = "INSERT INTO tills (store_id, till_id, token_hash, acked_seq, data) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (store_id, till_id) DO UPDATE SET token_hash = EXCLUDED.token_hash, acked_seq = EXCLUDED.acked_seq, data = EXCLUDED.data"
	)
	absentKey := akey(absTill, tl.StoreID, tl.TillID)
	newToken := tl.TokenHash != "" && (!held || tl.TokenHash != old.tokenHash)
	switch {
	case held && !newToken:
		// Fails the transaction in the database if acked_seq is no longer what this
		// transaction read under the row lock.
		t.laterOne("put "+what+" where acked_seq = "+fmt.Sprint(old.ackedSeq), update, append(args, int64(old.ackedSeq))...)
	case held:
		ct, err := t.guarded("put "+what+": token hash in use", func() (pgconn.CommandTag, error) {
			return t.conn.Exec(t.ctx, update, append(args, int64(old.ackedSeq))...)
		})
		if err != nil {
			return err
		}
		if ct.RowsAffected() != 1 {
			return t.fail(fmt.Errorf("put %s: its acked_seq is no longer %d, the value read under the row lock", what, old.ackedSeq))
		}
	case t.wasAbsent(absentKey):
		ct, err := t.guarded("put "+what+": token hash in use", func() (pgconn.CommandTag, error) {
			return t.conn.Exec(t.ctx, insert, args...)
		})
		if err != nil {
			return err
		}
		delete(t.absent, absentKey)
		if ct.RowsAffected() == 0 {
			t.concurrentInsert(what)
		}
	default:
		if _, err := t.guarded("put "+what+": token hash in use", func() (pgconn.CommandTag, error) {
			return t.conn.Exec(t.ctx, upsert, args...)
		}); err != nil {
			return err
		}
	}
	t.tills[k] = heldTill{ackedSeq: tl.AckedSeq, tokenHash: tl.TokenHash}
	return nil
}

// --- conflicts ---

func (t *txn) holdConflicts(cs ...platform.Conflict) {
	if t.write {
		for _, c := range cs {
			t.conflicts[c.ID] = heldConflict{code: c.Code, kind: c.Kind, status: c.Status}
		}
	}
}

func (t *txn) Conflict(id string) (platform.Conflict, error) {
	c, err := getRecord[platform.Conflict](t, "conflict "+id, "SELECT data FROM conflicts WHERE id = $1"+t.lock(), id)
	switch {
	case errors.Is(err, platform.ErrNotFound):
		t.markAbsent(akey(absConflict, id))
	case err == nil:
		t.holdConflicts(c)
	}
	return c, err
}

func (t *txn) OpenConflict(code, kind string) (platform.Conflict, error) {
	c, err := getRecord[platform.Conflict](t, "open conflict "+code+"/"+kind,
		"SELECT data FROM conflicts WHERE code = $1 AND kind = $2 AND status = 'open'"+t.lock(), code, kind)
	switch {
	case errors.Is(err, platform.ErrNotFound):
		t.markAbsent(akey(absOpenCase, code, kind))
	case err == nil:
		t.holdConflicts(c)
	}
	return c, err
}

func (t *txn) Conflicts(status, after string, limit int) ([]platform.Conflict, error) {
	var cs []platform.Conflict
	var err error
	if status == "" {
		cs, err = listRecords[platform.Conflict](t, "conflicts",
			"SELECT data FROM conflicts WHERE id > $1 ORDER BY id LIMIT $2"+t.lock(), after, limitArg(limit))
	} else {
		cs, err = listRecords[platform.Conflict](t, "conflicts",
			"SELECT data FROM conflicts WHERE status = $1 AND id > $2 ORDER BY id LIMIT $3"+t.lock(), status, after, limitArg(limit))
	}
	if err == nil {
		t.holdConflicts(cs...)
	}
	return cs, err
}

// InsertConflict relies on the primary key and on the unique index of open cases per
// (code, kind): ON CONFLICT DO NOTHING covers both, so a second open case is refused
// without aborting the transaction.
func (t *txn) InsertConflict(c platform.Conflict) error {
	data, err := encode("conflict "+c.ID, c)
	if err != nil {
		return err
	}
	ct, err := t.execNow("INSERT INTO conflicts (id, code, kind, status, data) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
		c.ID, c.Code, c.Kind, c.Status, data)
	if err != nil {
		return fmt.Errorf("insert conflict %s: %w", c.ID, err)
	}
	if ct.RowsAffected() == 0 {
		if t.wasAbsent(akey(absConflict, c.ID)) ||
			c.Status == platform.ConflictOpen && t.wasAbsent(akey(absOpenCase, c.Code, c.Kind)) {
			t.concurrentInsert("conflict case " + c.ID + " for " + c.Code + "/" + c.Kind)
		}
		return fmt.Errorf("insert conflict %s: an open case for %s/%s or the id exists: %w", c.ID, c.Code, c.Kind, platform.ErrExists)
	}
	delete(t.absent, akey(absConflict, c.ID))
	if c.Status == platform.ConflictOpen {
		delete(t.absent, akey(absOpenCase, c.Code, c.Kind))
	}
	t.holdConflicts(c)
	return nil
}

func (t *txn) UpdateConflict(c platform.Conflict) error {
	data, err := encode("conflict "+c.ID, c)
	if err != nil {
		return err
	}
	if err := t.usable(); err != nil {
		return err
	}
	const update = "UPDATE conflicts SET code = $2, kind = $3, status = $4, data = $5 WHERE id = $1"
	old, held := t.conflicts[c.ID]
	// Only a case that becomes open (or open under another key) can meet the unique
	// index of open cases.
	safe := c.Status != platform.ConflictOpen || old.status == platform.ConflictOpen && old.code == c.Code && old.kind == c.Kind
	if held && safe {
		t.laterOne("update conflict "+c.ID, update, c.ID, c.Code, c.Kind, c.Status, data)
		t.holdConflicts(c)
		return nil
	}
	ct, err := t.guarded("update conflict "+c.ID+": a case is already open for "+c.Code+"/"+c.Kind, func() (pgconn.CommandTag, error) {
		return t.conn.Exec(t.ctx, update, c.ID, c.Code, c.Kind, c.Status, data)
	})
	if err != nil {
		return err
	}
	if ct.RowsAffected() == 0 {
		return fmt.Errorf("update conflict %s: %w", c.ID, platform.ErrNotFound)
	}
	t.holdConflicts(c)
	return nil
}

// --- change log ---

// AppendChange numbers c from the head row, which it locks on the first call: change
// writers then commit one after the other in sequence order, so that readers see the
// log grow without gaps. The entries are written in one statement later.
func (t *txn) AppendChange(c platform.Change) (uint64, error) {
	if !t.headHeld {
		var last int64
		found, err := t.readRow("SELECT last_seq FROM change_head FOR UPDATE", nil, &last)
		if err != nil {
			return 0, fmt.Errorf("append change: lock the change log head: %w", err)
		}
		if !found {
			return 0, t.fail(errors.New("append change: the change_head row is missing; the schema is damaged"))
		}
		t.headHeld, t.head = true, uint64(last)
	}
	if err := t.usable(); err != nil {
		return 0, err
	}
	t.head++
	c.Seq = t.head
	t.changes = append(t.changes, c)
	return c.Seq, nil
}

// queueChanges queues the appended entries and the new head.
func (t *txn) queueChanges() {
	if len(t.changes) == 0 || t.err != nil {
		return
	}
	seqs := make([]int64, len(t.changes))
	datas := make([]string, len(t.changes))
	for i, c := range t.changes {
		data, err := encode(fmt.Sprintf("change %d", c.Seq), c)
		if err != nil {
			t.fail(err)
			return
		}
		seqs[i], datas[i] = int64(c.Seq), data
	}
	t.changes = t.changes[:0]
	t.later("INSERT INTO changes (seq, data) SELECT * FROM unnest($1::bigint[], $2::jsonb[])", seqs, datas)
	t.laterOne("advance the change log head", "UPDATE change_head SET last_seq = $1", int64(t.head))
}

func (t *txn) ChangesSince(seq uint64, limit int) ([]platform.Change, error) {
	t.queueChanges()
	out := []platform.Change{}
	var (
		s   int64
		raw []byte
	)
	err := t.readRows("SELECT seq, data FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2", []any{int64(seq), limitArg(limit)}, func() error {
		var c platform.Change
		if err := decode(fmt.Sprintf("change %d", s), raw, &c); err != nil {
			return err
		}
		c.Seq = uint64(s)
		out = append(out, c)
		return nil
	}, &s, &raw)
	if err != nil {
		return nil, fmt.Errorf("list changes since %d: %w", seq, err)
	}
	return out, nil
}

func (t *txn) LastChangeSeq() (uint64, error) {
	if t.headHeld {
		return t.head, nil
	}
	var last int64
	found, err := t.readRow("SELECT last_seq FROM change_head", nil, &last)
	if err != nil {
		return 0, fmt.Errorf("read the change log head: %w", err)
	}
	if !found {
		return 0, errors.New("read the change log head: the change_head row is missing; the schema is damaged")
	}
	return uint64(last), nil
}

func (t *txn) DeleteChangesThrough(seq uint64, limit int) (int, error) {
	t.queueChanges()
	var n int64
	_, err := t.readRow(`WITH gone AS (
			DELETE FROM changes WHERE seq IN (SELECT seq FROM changes WHERE seq <= $1 ORDER BY seq LIMIT $2)
			RETURNING 1)
		SELECT count(*) FROM gone`, []any{int64(seq), limitArg(limit)}, &n)
	if err != nil {
		return 0, fmt.Errorf("delete changes through %d: %w", seq, err)
	}
	return int(n), nil
}

// --- anomalies and reports ---

func (t *txn) InsertAnomaly(a platform.Anomaly) error {
	data, err := encode("anomaly "+a.ID, a)
	if err != nil {
		return err
	}
	ct, err := t.execNow("INSERT INTO anomalies (id, data) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING", a.ID, data)
	if err != nil {
		return fmt.Errorf("insert anomaly %s: %w", a.ID, err)
	}
	if ct.RowsAffected() == 0 {
		return fmt.Errorf("insert anomaly %s: %w", a.ID, platform.ErrExists)
	}
	return nil
}

func (t *txn) Anomalies(after string, limit int) ([]platform.Anomaly, error) {
	return listRecords[platform.Anomaly](t, "anomalies", "SELECT data FROM anomalies WHERE id > $1 ORDER BY id LIMIT $2", after, limitArg(limit))
}

func (t *txn) PutReportPart(id string, part int, data []byte) error {
	if part < 0 {
		return fmt.Errorf("put report %s part %d: negative part", id, part)
	}
	if data == nil {
		data = []byte{}
	}
	if err := t.usable(); err != nil {
		return err
	}
	t.later("INSERT INTO report_parts (id, part, data) VALUES ($1, $2, $3) ON CONFLICT (id, part) DO UPDATE SET data = EXCLUDED.data",
		id, int32(part), data)
	return nil
}

func (t *txn) ReportPart(id string, part int) ([]byte, error) {
	var v []byte
	found, err := t.readRow("SELECT data FROM report_parts WHERE id = $1 AND part = $2", []any{id, int32(part)}, &v)
	if err != nil {
		return nil, fmt.Errorf("read report %s part %d: %w", id, part, err)
	}
	if !found {
		return nil, platform.ErrNotFound
	}
	return v, nil
}
