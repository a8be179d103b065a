package store

import (
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/store/internal/ledgercore"
)

// Pending implements tillkeep.TillJournal: up to limit entries after the given seq, in
// order. limit <= 0 means a default page; pages are capped at 10,000 entries.
func (db *DB) Pending(ctx context.Context, after uint64, limit int) ([]tillkeep.JournalEntry, error) {
	return db.Journal(ctx, after, limit)
}

// Journal returns entries after the given seq whether acknowledged or not.
func (db *DB) Journal(ctx context.Context, after uint64, limit int) ([]tillkeep.JournalEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	limit = ledgercore.PageSize(limit)
	entries := make([]tillkeep.JournalEntry, 0, min(limit, 64))
	err := db.view("read journal", func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketJournal).Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(entries) < limit; k, v = c.Next() {
			var e tillkeep.JournalEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("decode journal entry %d: %w", decodeSeq(k), err)
			}
			entries = append(entries, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return entries, nil
}

// Acknowledge implements tillkeep.TillJournal. The acknowledged point never moves
// backwards here (see SetAckedSeq); the offline counter is reset because the platform
// was reached. A seq beyond the journal's end is refused with CodeConflict: the
// platform claims entries this till never wrote (a till restored from an old backup).
func (db *DB) Acknowledge(ctx context.Context, seq uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return db.update("acknowledge journal", func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if last := getU64(meta, metaLastSeq); seq > last {
			return beyondJournal(seq, last)
		}
		if seq > getU64(meta, metaAckedSeq) {
			if err := putU64(meta, metaAckedSeq, seq); err != nil {
				return err
			}
		}
		return putU64(meta, metaOffline, 0)
	})
}

func beyondJournal(seq, last uint64) error {
	return tillkeep.Errorf(tillkeep.CodeConflict, "Sequence %d is beyond this till's journal, which ends at %d.", seq, last)
}

// AckedSeq implements tillkeep.TillJournal.
func (db *DB) AckedSeq(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var seq uint64
	err := db.view("read acknowledged sequence", func(tx *bolt.Tx) error {
		seq = getU64(tx.Bucket(bucketMeta), metaAckedSeq)
		return nil
	})
	return seq, err
}

// SetAckedSeq sets the acknowledged point, also backwards, so that the entries after
// it are uploaded again. It refuses a seq below the pruned entries (they cannot be sent
// again) or beyond the journal's end. It does not touch the offline counter.
func (db *DB) SetAckedSeq(ctx context.Context, seq uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return db.update("set acknowledged sequence", func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if last := getU64(meta, metaLastSeq); seq > last {
			return beyondJournal(seq, last)
		}
		if pruned := getU64(meta, metaPruned); seq < pruned {
			return tillkeep.Errorf(tillkeep.CodeConflict, "Entries up to %d were pruned from this till's journal; they cannot be sent again.", pruned)
		}
		return putU64(meta, metaAckedSeq, seq)
	})
}

// PruneJournal deletes entries with Seq <= upTo, never beyond the acknowledged point
// nor beyond what the cached catalog reflects (entries after that still count as local
// use, and local use is recounted from the journal). The redemption and idempotency indexes keep their records, so POS retries and
// reversals of pruned redemptions still get their answers.
func (db *DB) PruneJournal(ctx context.Context, upTo uint64) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n := 0
	err := db.update("prune journal", func(tx *bolt.Tx) error {
		n = 0
		meta := tx.Bucket(bucketMeta)
		if acked := getU64(meta, metaAckedSeq); upTo > acked {
			return tillkeep.Errorf(tillkeep.CodeConflict, "Cannot prune the journal up to %d: the platform has acknowledged only up to %d.", upTo, acked)
		}
		if reflects := getU64(meta, metaReflects); upTo > reflects {
			return tillkeep.Errorf(tillkeep.CodeConflict, "Cannot prune the journal up to %d: the catalog reflects this till's entries only up to %d.", upTo, reflects)
		}
		if upTo <= getU64(meta, metaPruned) {
			return nil
		}
		journal := tx.Bucket(bucketJournal)
		c := journal.Cursor()
		for k, _ := c.First(); k != nil && decodeSeq(k) <= upTo; k, _ = c.First() {
			if err := journal.Delete(k); err != nil {
				return err
			}
			n++
		}
		return putU64(meta, metaPruned, upTo)
	})
	return n, err
}
