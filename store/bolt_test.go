package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/store"
	"github.com/tillkeep/tillkeep/store/storetest"
)

func openAt(t *testing.T, path string, opts store.Options) *store.DB {
	t.Helper()
	db, err := store.Open(path, opts)
	if err != nil {
		t.Fatalf("Open %s: %v", path, err)
	}
	return db
}

func tillOptions() store.Options {
	return store.Options{StoreID: storetest.StoreID, TillID: storetest.TillID}
}

func record(t *testing.T, l store.Ledger, txID, code, mode string) tillkeep.Outcome {
	t.Helper()
	out, _, err := l.Record(context.Background(), storetest.RecordRequest(txID, code, "", mode))
	if err != nil {
		t.Fatalf("Record %s: %v", txID, err)
	}
	return out
}

// fill puts a catalog and some history into a ledger.
func fill(t *testing.T, db *store.DB) {
	t.Helper()
	ctx := context.Background()
	if err := db.ReplaceCatalog(ctx, storetest.Snapshot()); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		record(t, db, fmt.Sprintf("tx-%d", i), "M1", tillkeep.ModeOffline)
	}
	out := record(t, db, "tx-s1", "S1", tillkeep.ModeOnline)
	if _, err := db.Reverse(ctx, tillkeep.ReverseRequest{RedemptionID: out.RedemptionID, Decide: storetest.Reverse(tillkeep.ModeOffline)}); err != nil {
		t.Fatal(err)
	}
	if err := db.Acknowledge(ctx, 5); err != nil {
		t.Fatal(err)
	}
	record(t, db, "tx-after-ack", "M1", tillkeep.ModeOffline)
	if err := db.SetCursor(ctx, "feed", "seq-17"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.MergeHLC(ctx, tillkeep.HLC{WallMS: storetest.Base.Add(time.Hour).UnixMilli(), Logical: 2}, 0); err != nil {
		t.Fatal(err)
	}
}

// snapshotOf reads everything observable through the Ledger interface.
type ledgerView struct {
	Status  tillkeep.LedgerStatus
	Catalog store.CatalogState
	Journal []tillkeep.JournalEntry
	Cursor  string
	M1      tillkeep.LocalState
	Store   tillkeep.Store
	Outcome tillkeep.Outcome
}

func viewOf(t *testing.T, l store.Ledger) ledgerView {
	t.Helper()
	ctx := context.Background()
	var v ledgerView
	var err error
	if v.Status, err = l.Status(ctx); err != nil {
		t.Fatal(err)
	}
	if v.Catalog, err = l.CatalogState(ctx); err != nil {
		t.Fatal(err)
	}
	if v.Journal, err = l.Journal(ctx, 0, 0); err != nil {
		t.Fatal(err)
	}
	if v.Cursor, err = l.Cursor(ctx, "feed"); err != nil {
		t.Fatal(err)
	}
	if v.M1, err = l.Lookup(ctx, "M1", ""); err != nil {
		t.Fatal(err)
	}
	if v.Store, err = l.Store(ctx); err != nil {
		t.Fatal(err)
	}
	if v.Outcome, _, err = l.OutcomeByTransaction(ctx, "tx-s1"); err != nil {
		t.Fatal(err)
	}
	return v
}

func sameView(t *testing.T, got, want ledgerView) {
	t.Helper()
	// JSON-free comparison that tolerates time representations: format with %v after
	// normalising to UTC.
	g, w := fmt.Sprintf("%+v", normalise(got)), fmt.Sprintf("%+v", normalise(want))
	if g != w {
		t.Fatalf("ledger differs:\n got %s\nwant %s", g, w)
	}
}

func normalise(v ledgerView) ledgerView {
	v.Status.SyncedAt = v.Status.SyncedAt.UTC()
	v.Catalog.SyncedAt = v.Catalog.SyncedAt.UTC()
	v.M1.CatalogSyncedAt = v.M1.CatalogSyncedAt.UTC()
	v.Outcome.At = v.Outcome.At.UTC()
	j := make([]tillkeep.JournalEntry, len(v.Journal))
	for i, e := range v.Journal {
		e.WallTime = e.WallTime.UTC()
		j[i] = e
	}
	v.Journal = j
	return v
}

func TestReopenKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), store.FileName)
	db := openAt(t, path, tillOptions())
	fill(t, db)
	before := viewOf(t, db)
	if before.Status.LastSeq != 23 || before.Status.AckedSeq != 5 || before.Cursor != "seq-17" {
		t.Fatalf("unexpected state before reopening: %+v", before.Status)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openAt(t, path, tillOptions())
	defer db.Close()
	sameView(t, viewOf(t, db), before)
	// The sequence and the idempotency index carry on.
	if out := record(t, db, "tx-next", "M1", tillkeep.ModeOffline); out.Seq != 24 {
		t.Fatalf("seq after reopening %d, want 24", out.Seq)
	}
	out, replayed, err := db.Record(context.Background(), storetest.RecordRequest("tx-3", "M1", "", tillkeep.ModeOffline))
	if err != nil || !replayed || out.Seq != 4 {
		t.Fatalf("replay after reopening: %+v %v %v", out, replayed, err)
	}
	if err := db.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestLockTimeout(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, store.FileName)
	db := openAt(t, path, tillOptions())
	defer db.Close()
	second, err := store.Open(path, store.Options{Timeout: 100 * time.Millisecond})
	if err == nil {
		second.Close()
		t.Fatal("a second Open of the same file succeeded")
	}
	if !errors.Is(err, store.ErrLocked) {
		t.Fatalf("error %v does not wrap ErrLocked", err)
	}
	if want := "another tillkeep agent is using " + dir; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
	// The first ledger is unaffected.
	if _, err := db.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestFileModes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no Unix permission bits")
	}
	root := t.TempDir()
	dir := filepath.Join(root, "var", "lib", "tillkeep")
	path := filepath.Join(dir, store.FileName)
	db := openAt(t, path, tillOptions())
	db.Close()
	for p, want := range map[string]fs.FileMode{path: 0o600, dir: 0o700, filepath.Dir(dir): 0o700} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got&^want != 0 {
			t.Fatalf("%s has mode %v, want at most %v", p, got, want)
		}
	}
	// A file copied in with a wide mode is tightened.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	db = openAt(t, path, tillOptions())
	db.Close()
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("reopened file has mode %v, want 0600", fi.Mode().Perm())
	}
}

// setSchema rewrites the schema version key of a closed ledger file.
func setSchema(t *testing.T, path string, version uint64) {
	t.Helper()
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	err = bdb.Update(func(tx *bolt.Tx) error {
		v := make([]byte, 8)
		for i := range 8 {
			v[7-i] = byte(version >> (8 * i))
		}
		return tx.Bucket([]byte("meta")).Put([]byte("schema_version"), v)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), store.FileName)
	db := openAt(t, path, tillOptions())
	fill(t, db)
	db.Close()
	setSchema(t, path, store.SchemaVersion+1)
	_, err := store.Open(path, tillOptions())
	if !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("Open of a newer file: %v", err)
	}
	// Refusing must not have touched the file: an older binary can still not open it,
	// and the right one can.
	setSchema(t, path, store.SchemaVersion)
	db = openAt(t, path, tillOptions())
	defer db.Close()
	if st, _ := db.Status(context.Background()); st.LastSeq != 23 {
		t.Fatalf("last seq %d after the refused open, want 23", st.LastSeq)
	}
}

func TestWrongTillRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), store.FileName)
	db := openAt(t, path, tillOptions())
	db.Close()
	for _, opts := range []store.Options{
		{StoreID: storetest.StoreID, TillID: "T02"},
		{StoreID: "S999", TillID: storetest.TillID},
	} {
		if _, err := store.Open(path, opts); !errors.Is(err, store.ErrWrongTill) {
			t.Fatalf("Open as %s/%s: %v", opts.StoreID, opts.TillID, err)
		}
	}
	// Care commands open without an identity; the stored one still fills entries.
	db = openAt(t, path, store.Options{})
	defer db.Close()
	if err := db.ReplaceCatalog(context.Background(), storetest.Snapshot()); err != nil {
		t.Fatal(err)
	}
	record(t, db, "tx-1", "M1", tillkeep.ModeOffline)
	es, _ := db.Journal(context.Background(), 0, 0)
	if es[0].StoreID != storetest.StoreID || es[0].TillID != storetest.TillID {
		t.Fatalf("entry identity %s/%s", es[0].StoreID, es[0].TillID)
	}
}

func TestNotALedgerRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("widgets")); return err }); err != nil {
		t.Fatal(err)
	}
	bdb.Close()
	if _, err := store.Open(path, store.Options{}); !errors.Is(err, store.ErrNotLedger) {
		t.Fatalf("Open of a foreign bbolt file: %v", err)
	}
	junk := filepath.Join(t.TempDir(), "junk.db")
	if err := os.WriteFile(junk, bytes.Repeat([]byte("not a database "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Open(junk, store.Options{}); err == nil {
		t.Fatal("Open of a junk file succeeded")
	}
}

func TestBackupWhileRunning(t *testing.T) {
	db := MustOpen(t)
	fill(t, db)
	ctx := context.Background()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for lane := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, _, err := db.Record(ctx, storetest.RecordRequest(fmt.Sprintf("bg-%d-%d", lane, i), "M1", "", tillkeep.ModeOffline)); err != nil {
					t.Errorf("Record during backup: %v", err)
					return
				}
			}
		})
	}
	dir := t.TempDir()
	var buf bytes.Buffer
	n, err := db.Backup(&buf)
	if err != nil || n != int64(buf.Len()) || n == 0 {
		t.Fatalf("Backup = %d, %v (buffer %d)", n, err, buf.Len())
	}
	file := filepath.Join(dir, "backup.db")
	m, err := db.BackupFile(file)
	close(stop)
	wg.Wait()
	if err != nil || m == 0 {
		t.Fatalf("BackupFile = %d, %v", m, err)
	}
	if _, err := db.BackupFile(file); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("BackupFile over an existing file: %v", err)
	}
	fromBuf := filepath.Join(dir, "from-buffer.db")
	if err := os.WriteFile(fromBuf, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{file, fromBuf} {
		if runtime.GOOS != "windows" {
			if fi, _ := os.Stat(p); p == file && fi.Mode().Perm() != 0o600 {
				t.Fatalf("backup has mode %v", fi.Mode().Perm())
			}
		}
		b := openAt(t, p, tillOptions())
		if err := b.Check(); err != nil {
			t.Fatalf("backup %s: %v", p, err)
		}
		st, _ := b.Status(ctx)
		if st.LastSeq < 23 || st.Coupons != 6 {
			t.Fatalf("backup %s holds %+v", p, st)
		}
		b.Close()
	}
}

func TestCompact(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, store.FileName)
	db := openAt(t, path, tillOptions())
	fill(t, db)
	ctx := context.Background()
	// Churn the catalog so that the file has free pages to give back.
	big := storetest.Snapshot()
	for i := range 5000 {
		big.Coupons = append(big.Coupons, tillkeep.Coupon{Code: fmt.Sprintf("Z%06d", i), OfferID: storetest.OfferMulti, Status: tillkeep.CouponActive})
	}
	for seq := uint64(2); seq < 5; seq++ {
		big.Seq = seq
		if err := db.ReplaceCatalog(ctx, big); err != nil {
			t.Fatal(err)
		}
	}
	small := storetest.Snapshot()
	small.Seq = 5
	if err := db.ReplaceCatalog(ctx, small); err != nil {
		t.Fatal(err)
	}
	before := viewOf(t, db)

	dst := filepath.Join(dir, "compact.db")
	if err := db.Compact(dst); err != nil {
		t.Fatal(err)
	}
	if err := db.Compact(dst); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Compact over an existing file: %v", err)
	}
	c := openAt(t, dst, tillOptions())
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
	sameView(t, viewOf(t, c), before)
	c.Close()

	// In place: refused while the ledger is open, done once it is closed.
	if _, _, err := store.CompactFile(path, store.Options{Timeout: 50 * time.Millisecond}); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("CompactFile while open: %v", err)
	}
	db.Close()
	beforeSize, afterSize, err := store.CompactFile(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if afterSize >= beforeSize {
		t.Fatalf("compaction did not shrink the file: %d → %d bytes", beforeSize, afterSize)
	}
	t.Logf("compacted %d → %d bytes", beforeSize, afterSize)
	db = openAt(t, path, tillOptions())
	defer db.Close()
	sameView(t, viewOf(t, db), before)
	if err := db.Check(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".compacting"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("compaction left its temporary file: %v", err)
	}
}

// A large snapshot is written in chunks; redemptions keep working in between, and a
// cancelled load leaves the old catalog.
func TestLargeSnapshotAndCancel(t *testing.T) {
	db := MustOpen(t)
	ctx := context.Background()
	if err := db.ReplaceCatalog(ctx, storetest.Snapshot()); err != nil {
		t.Fatal(err)
	}
	big := storetest.Snapshot()
	big.Seq = 2
	for i := range 20_000 {
		// Not in key order, to exercise sorting.
		big.Coupons = append(big.Coupons, tillkeep.Coupon{Code: fmt.Sprintf("B%05d", (i*7919)%20_000), OfferID: storetest.OfferSingle, Status: tillkeep.CouponActive})
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- db.ReplaceCatalog(cctx, big) }()
	// Redemptions commit while the snapshot loads.
	for i := range 5 {
		record(t, db, fmt.Sprintf("during-%d", i), "M1", tillkeep.ModeOffline)
	}
	cancel()
	err := <-done
	cs, _ := db.CatalogState(ctx)
	switch {
	case err == nil:
		if cs.Seq != 2 || cs.Coupons != 20_006 {
			t.Fatalf("finished load: %+v", cs)
		}
	case errors.Is(err, context.Canceled):
		if cs.Seq != 1 || cs.Coupons != 6 {
			t.Fatalf("a cancelled load changed the catalog: %+v", cs)
		}
	default:
		t.Fatal(err)
	}
	if err := db.ReplaceCatalog(ctx, big); err != nil {
		t.Fatal(err)
	}
	if cs, _ := db.CatalogState(ctx); cs.Coupons != 20_006 {
		t.Fatalf("catalog after the full load: %+v", cs)
	}
	st, err := db.Lookup(ctx, "B12345", "")
	if err != nil || st.Offer.ID != storetest.OfferSingle {
		t.Fatalf("Lookup in the big catalog: %+v %v", st, err)
	}
	// The entries made during the load are still local use.
	if m1, _ := db.Lookup(ctx, "M1", ""); m1.LocalCouponRedemptions != 5 {
		t.Fatalf("M1 local use %d, want 5", m1.LocalCouponRedemptions)
	}
}
