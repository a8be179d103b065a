package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"

	bolt "go.etcd.io/bbolt"

	"github.com/tillkeep/tillkeep"
)

// maxCheckErrors bounds the report of a badly damaged file.
const maxCheckErrors = 50

// Check verifies the file: bbolt's page-level consistency check over every page, then
// the ledger's own invariants (the journal is contiguous up to last_seq, every
// redemption is indexed, the catalog counts match). It holds the writer lock while it
// runs, because bbolt's check reads the freelist that commits change, so redemptions
// wait for it; run it from a care command, not on a timer.
func (db *DB) Check() error {
	if db.isClosed() {
		return ErrClosed
	}
	tx, err := db.bolt.Begin(true)
	if err != nil {
		return storageError("begin check", err)
	}
	defer func() { _ = tx.Rollback() }()
	var errs []error
	for err := range tx.Check() {
		if len(errs) < maxCheckErrors {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		// The logical checks would read damaged pages.
		return fmt.Errorf("check ledger %s: %w", db.path, errors.Join(errs...))
	}
	if err := checkLogical(tx); err != nil {
		return fmt.Errorf("check ledger %s: %w", db.path, err)
	}
	return nil
}

func checkLogical(tx *bolt.Tx) error {
	var errs []error
	fail := func(format string, args ...any) {
		if len(errs) < maxCheckErrors {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	for _, name := range topBuckets {
		if tx.Bucket(name) == nil {
			return fmt.Errorf("bucket %s is missing", name)
		}
	}
	meta := tx.Bucket(bucketMeta)
	if v := getU64(meta, metaSchema); v != SchemaVersion {
		fail("schema version is %d, want %d", v, SchemaVersion)
	}
	last, pruned, acked := getU64(meta, metaLastSeq), getU64(meta, metaPruned), getU64(meta, metaAckedSeq)
	if acked > last {
		fail("acknowledged seq %d is beyond the last seq %d", acked, last)
	}
	index := tx.Bucket(bucketRedemptions)
	want := pruned + 1
	err := tx.Bucket(bucketJournal).ForEach(func(k, v []byte) error {
		seq := decodeSeq(k)
		if seq != want {
			fail("journal entry %d found where %d was expected", seq, want)
		}
		want = seq + 1
		var e tillkeep.JournalEntry
		if err := json.Unmarshal(v, &e); err != nil {
			fail("journal entry %d does not decode: %v", seq, err)
			return nil
		}
		if e.Seq != seq {
			fail("journal entry under key %d says seq %d", seq, e.Seq)
		}
		ref, err := decodeRedemptionRef(index.Get([]byte(e.RedemptionID)))
		switch {
		case err != nil:
			fail("journal entry %d: redemption %s is not indexed", seq, e.RedemptionID)
		case e.Kind == tillkeep.EntryRedemption && ref.Seq != seq:
			fail("journal entry %d: the index places redemption %s at %d", seq, e.RedemptionID, ref.Seq)
		case e.Kind == tillkeep.EntryReversal && ref.ReversalSeq != seq:
			fail("journal entry %d: the index places the reversal of %s at %d", seq, e.RedemptionID, ref.ReversalSeq)
		}
		if tx.Bucket(bucketTransactions).Get([]byte(e.TransactionID)) == nil && e.Kind == tillkeep.EntryRedemption {
			fail("journal entry %d: transaction %s has no stored outcome", seq, e.TransactionID)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if want-1 != last {
		fail("the journal ends at %d but last seq is %d", want-1, last)
	}
	if g := activeCatalog(tx); g != nil {
		coupons, offers := g.counts()
		if n := g.coupons.Stats().KeyN; n != coupons {
			fail("the catalog holds %d coupons but counts %d", n, coupons)
		}
		if n := g.offers.Stats().KeyN; n != offers {
			fail("the catalog holds %d offers but counts %d", n, offers)
		}
		err := g.coupons.ForEach(func(k, v []byte) error {
			_, num, err := decodeCoupon(k, v)
			if err != nil {
				fail("%v", err)
			} else if g.offerNums.Get(numKey(num)) == nil {
				fail("coupon %q refers to a missing offer", k)
			}
			return nil
		})
		if err != nil {
			return err
		}
	} else if len(meta.Get(metaCatGen)) == 8 {
		fail("the active catalog generation is missing")
	}
	return errors.Join(errs...)
}

// Backup writes a consistent copy of the ledger to w while it keeps serving, and
// returns the bytes written. It runs in one read transaction: commits continue, but the
// file cannot remap while it runs, so copy to a local file rather than a slow network.
func (db *DB) Backup(w io.Writer) (int64, error) {
	var n int64
	err := db.view("back up ledger", func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// BackupFile writes a consistent copy to a new file at path (mode 0600, fsynced). It
// refuses to overwrite an existing file.
func (db *DB) BackupFile(path string) (int64, error) {
	if db.isClosed() {
		return 0, ErrClosed
	}
	if _, err := os.Lstat(path); err == nil {
		return 0, fmt.Errorf("back up ledger to %s: %w", path, fs.ErrExist)
	}
	tmp := path + ".partial"
	_ = os.Remove(tmp)
	n, err := writeCopy(db.bolt, tmp)
	if err != nil {
		return 0, fmt.Errorf("back up ledger to %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return 0, fmt.Errorf("back up ledger to %s: %w", path, err)
	}
	return n, syncDir(path)
}

// compactTxMax bounds one transaction of a compaction.
const compactTxMax = 32 << 20

// Compact writes a compacted copy of the ledger to a new file at dstPath (mode 0600):
// the same data without the free pages a bbolt file never gives back. It runs while the
// ledger serves; writes committed after it starts may be missing from the copy, so use
// CompactFile to replace the ledger itself.
func (db *DB) Compact(dstPath string) error {
	if db.isClosed() {
		return ErrClosed
	}
	if _, err := os.Lstat(dstPath); err == nil {
		return fmt.Errorf("compact ledger into %s: %w", dstPath, fs.ErrExist)
	}
	dst, err := bolt.Open(dstPath, 0o600, &bolt.Options{Timeout: DefaultTimeout, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return fmt.Errorf("compact ledger: create %s: %w", dstPath, err)
	}
	err = bolt.Compact(dst, db.bolt, compactTxMax)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(dstPath)
		return fmt.Errorf("compact ledger into %s: %w", dstPath, storageError("compact", err))
	}
	return syncDir(dstPath)
}

// CompactFile compacts the ledger at path in place, for a care command run while the
// agent is stopped (it takes the file lock like Open, so it fails with ErrLocked while
// an agent runs). The compacted copy is checked before it replaces the original. It
// returns the file sizes before and after.
func CompactFile(path string, opts Options) (before, after int64, err error) {
	db, err := Open(path, opts)
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if db != nil {
			_ = db.Close()
		}
	}()
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, fmt.Errorf("compact ledger: %w", err)
	}
	tmp := path + ".compacting"
	_ = os.Remove(tmp)
	if err := db.Compact(tmp); err != nil {
		return 0, 0, err
	}
	check, err := Open(tmp, Options{Timeout: opts.Timeout, Logger: opts.Logger})
	if err == nil {
		err = check.Check()
		if cerr := check.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		_ = os.Remove(tmp)
		return 0, 0, fmt.Errorf("compact ledger: the compacted copy is unsound, the original is kept: %w", err)
	}
	if runtime.GOOS == "windows" {
		// Windows cannot rename over an open file; close first.
		if err := db.Close(); err != nil {
			return 0, 0, err
		}
		db = nil
	}
	// Elsewhere the rename happens while this process still holds the lock on the old
	// file, so no agent can write to it in between.
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return 0, 0, fmt.Errorf("compact ledger: replace %s: %w", path, err)
	}
	if err := syncDir(path); err != nil {
		return 0, 0, err
	}
	nfi, err := os.Stat(path)
	if err != nil {
		return 0, 0, fmt.Errorf("compact ledger: %w", err)
	}
	return fi.Size(), nfi.Size(), nil
}
