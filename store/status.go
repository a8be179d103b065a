package store

import (
	"context"

	bolt "go.etcd.io/bbolt"

	"github.com/tillkeep/tillkeep"
)

// Status implements tillkeep.TillLedger.
func (db *DB) Status(ctx context.Context) (tillkeep.LedgerStatus, error) {
	if err := ctx.Err(); err != nil {
		return tillkeep.LedgerStatus{}, err
	}
	var st tillkeep.LedgerStatus
	err := db.view("read ledger status", func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		st = tillkeep.LedgerStatus{
			SyncedAt:           getTime(meta, metaSyncedAt),
			LastSeq:            getU64(meta, metaLastSeq),
			AckedSeq:           getU64(meta, metaAckedSeq),
			OfflineRedemptions: int(getU64(meta, metaOffline)),
		}
		if st.LastSeq > st.AckedSeq {
			st.PendingUploads = int(st.LastSeq - st.AckedSeq)
		}
		if g := activeCatalog(tx); g != nil {
			st.Coupons, st.Offers = g.counts()
		}
		return nil
	})
	return st, err
}

// OutcomeByTransaction implements tillkeep.TillLedger.
func (db *DB) OutcomeByTransaction(ctx context.Context, transactionID string) (tillkeep.Outcome, bool, error) {
	if err := ctx.Err(); err != nil {
		return tillkeep.Outcome{}, false, err
	}
	var (
		out tillkeep.Outcome
		ok  bool
	)
	err := db.view("read outcome", func(tx *bolt.Tx) error {
		var err error
		out, ok, err = readOutcome(tx, transactionID)
		return err
	})
	return out, ok, err
}
