package store

import (
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/store/internal/ledgercore"
)

// Record implements tillkeep.TillLedger. It goes through the committer: the idempotency
// lookup, Decide, the append and the counters all happen in one write transaction, and
// Record returns only after that transaction is committed and fsynced. A code missing
// from the cache is refused with CodeUnknownCoupon without calling Decide, unless
// req.AllowUncached says the platform already decided it.
func (db *DB) Record(ctx context.Context, req tillkeep.RecordRequest) (tillkeep.Outcome, bool, error) {
	if err := ledgercore.CheckRecordRequest(req); err != nil {
		return tillkeep.Outcome{}, false, err
	}
	r, res := db.recordRequest(req)
	if err := db.submit(ctx, r); err != nil {
		return tillkeep.Outcome{}, false, err
	}
	return res.out, res.replayed, nil
}

// recordResult is where a record request leaves its answer; it is read only after the
// request is done.
type recordResult struct {
	out      tillkeep.Outcome
	replayed bool
}

func (db *DB) recordRequest(req tillkeep.RecordRequest) (*writeRequest, *recordResult) {
	res := &recordResult{}
	return &writeRequest{prepare: func(tx *bolt.Tx) (func() error, error) {
		*res = recordResult{}
		if stored, ok, err := readOutcome(tx, req.TransactionID); err != nil || ok {
			if err != nil {
				return nil, err
			}
			res.out, err = ledgercore.Replay(stored, req.RequestHash)
			res.replayed = err == nil
			return nil, err
		}
		var (
			coupon tillkeep.Coupon
			offer  tillkeep.Offer
			ok     bool
		)
		if cat := activeCatalog(tx); cat != nil {
			var err error
			if coupon, offer, ok, err = cat.lookupCached(&db.offers, req.Code); err != nil {
				return nil, err
			}
		}
		var state tillkeep.LocalState
		switch {
		case ok:
			state = readLocalState(tx, coupon, offer, req.CustomerID)
		case req.AllowUncached:
			state = readUncachedState(tx, req.Code)
		default:
			return nil, unknownCoupon(req.Code)
		}
		entry, err := ledgercore.Decide(req, state)
		if err != nil {
			return nil, err
		}
		meta := tx.Bucket(bucketMeta)
		seq := getU64(meta, metaLastSeq) + 1
		if entry, err = ledgercore.CompleteRedemption(req, entry, db.id, offer.ID, seq); err != nil {
			return nil, err
		}
		index := tx.Bucket(bucketRedemptions)
		if index.Get([]byte(entry.RedemptionID)) != nil {
			return nil, tillkeep.Errorf(tillkeep.CodeConflict, "The redemption id %s is already in the journal.", entry.RedemptionID)
		}
		candidate := ledgercore.AcceptedOutcome(req, entry)
		entryJSON, err := json.Marshal(entry)
		if err != nil {
			return nil, fmt.Errorf("encode journal entry: %w", err)
		}
		outJSON, err := json.Marshal(candidate)
		if err != nil {
			return nil, fmt.Errorf("encode outcome: %w", err)
		}
		res.out = candidate
		return func() error {
			if err := appendJournal(tx, seq, entryJSON); err != nil {
				return err
			}
			ref := redemptionRef{Seq: seq, TransactionID: req.TransactionID}
			index.FillPercent = 1.0 // UUIDv7 ids grow with time: mostly appends
			if err := index.Put([]byte(entry.RedemptionID), ref.encode()); err != nil {
				return err
			}
			if err := tx.Bucket(bucketTransactions).Put([]byte(req.TransactionID), outJSON); err != nil {
				return err
			}
			if err := clearIntent(tx, req.TransactionID); err != nil {
				return err
			}
			if err := addLocalUse(tx, &entry); err != nil {
				return err
			}
			if entry.Mode == tillkeep.ModeOffline {
				if err := putU64(meta, metaOffline, getU64(meta, metaOffline)+1); err != nil {
					return err
				}
			}
			if err := advanceHLC(meta, entry.HLC); err != nil {
				return err
			}
			return putU64(meta, metaLastSeq, seq)
		}, nil
	}}, res
}

// Reverse implements tillkeep.TillLedger, through the committer like Record. An
// already reversed redemption returns its outcome without calling Decide. The outcome
// is the original transaction's, now with status "reversed".
func (db *DB) Reverse(ctx context.Context, req tillkeep.ReverseRequest) (tillkeep.Outcome, error) {
	if err := ledgercore.CheckReverseRequest(req); err != nil {
		return tillkeep.Outcome{}, err
	}
	var out tillkeep.Outcome
	r := &writeRequest{prepare: func(tx *bolt.Tx) (func() error, error) {
		out = tillkeep.Outcome{}
		index := tx.Bucket(bucketRedemptions)
		v := index.Get([]byte(req.RedemptionID))
		if v == nil {
			return nil, tillkeep.Errorf(tillkeep.CodeNotFound, "No redemption %s was made at this till.", req.RedemptionID)
		}
		ref, err := decodeRedemptionRef(v)
		if err != nil {
			return nil, fmt.Errorf("redemption %s: %w", req.RedemptionID, err)
		}
		stored, _, err := readOutcome(tx, ref.TransactionID)
		if err != nil {
			return nil, err
		}
		if ref.ReversalSeq != 0 {
			out = stored
			return nil, nil
		}
		original, ok, err := readEntry(tx, ref.Seq)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, tillkeep.Errorf(tillkeep.CodeNotReversible, "The redemption %s is too old to reverse at this till: its journal entry was pruned.", req.RedemptionID)
		}
		meta := tx.Bucket(bucketMeta)
		rev, err := ledgercore.DecideReversal(req, original, getHLC(meta))
		if err != nil {
			return nil, err
		}
		seq := getU64(meta, metaLastSeq) + 1
		if rev, err = ledgercore.CompleteReversal(original, rev, db.id, seq); err != nil {
			return nil, err
		}
		candidate := ledgercore.ReversedOutcome(stored, original)
		revJSON, err := json.Marshal(rev)
		if err != nil {
			return nil, fmt.Errorf("encode journal entry: %w", err)
		}
		outJSON, err := json.Marshal(candidate)
		if err != nil {
			return nil, fmt.Errorf("encode outcome: %w", err)
		}
		counted := original.Seq > getU64(meta, metaReflects)
		out = candidate
		return func() error {
			if err := appendJournal(tx, seq, revJSON); err != nil {
				return err
			}
			ref.ReversalSeq = seq
			if err := index.Put([]byte(req.RedemptionID), ref.encode()); err != nil {
				return err
			}
			if err := tx.Bucket(bucketTransactions).Put([]byte(candidate.TransactionID), outJSON); err != nil {
				return err
			}
			if counted {
				if err := undoLocalUse(tx, &original, getU64(meta, metaReflects)); err != nil {
					return err
				}
			}
			if err := advanceHLC(meta, rev.HLC); err != nil {
				return err
			}
			return putU64(meta, metaLastSeq, seq)
		}, nil
	}}
	if err := db.submit(ctx, r); err != nil {
		return tillkeep.Outcome{}, err
	}
	return out, nil
}

// appendJournal adds an entry at the end of the journal. Keys only ever grow, so the
// pages are filled completely instead of bbolt's default half: fewer pages and a
// shallower tree mean fewer pages written, and waited for, at every commit.
func appendJournal(tx *bolt.Tx, seq uint64, entry []byte) error {
	journal := tx.Bucket(bucketJournal)
	journal.FillPercent = 1.0
	return journal.Put(seqKey(seq), entry)
}

// advanceHLC stores h as the latest stamp unless the clock is already past it.
func advanceHLC(meta *bolt.Bucket, h tillkeep.HLC) error {
	if getHLC(meta).Less(h) {
		return putHLC(meta, h)
	}
	return nil
}

func readOutcome(tx *bolt.Tx, transactionID string) (tillkeep.Outcome, bool, error) {
	var out tillkeep.Outcome
	v := tx.Bucket(bucketTransactions).Get([]byte(transactionID))
	if v == nil {
		return out, false, nil
	}
	if err := json.Unmarshal(v, &out); err != nil {
		return out, false, fmt.Errorf("decode outcome of transaction %s: %w", transactionID, err)
	}
	return out, true, nil
}

func readEntry(tx *bolt.Tx, seq uint64) (tillkeep.JournalEntry, bool, error) {
	var e tillkeep.JournalEntry
	v := tx.Bucket(bucketJournal).Get(seqKey(seq))
	if v == nil {
		return e, false, nil
	}
	if err := json.Unmarshal(v, &e); err != nil {
		return e, false, fmt.Errorf("decode journal entry %d: %w", seq, err)
	}
	return e, true, nil
}
