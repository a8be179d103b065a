package store

import (
	"bytes"
	"context"

	bolt "go.etcd.io/bbolt"

	"github.com/tillkeep/tillkeep"
)

// bucketIntents (nested in meta, created on first use so v1 files need no migration)
// maps a transaction_id to the request hash and redemption id of an attempt that is
// about to ask the platform: transaction_id → request hash 0x00 redemption id.
var bucketIntents = []byte("intents")

// RememberIntent records, durably, the redemption id an attempt of transactionID is
// about to present to the platform. If the till dies after the platform accepted it but
// before the answer reached the journal, the POS's retry finds the id here and
// presents the same redemption again instead of a second one. Record deletes the
// intent in the transaction that journals the redemption.
func (db *DB) RememberIntent(ctx context.Context, transactionID, requestHash, redemptionID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if transactionID == "" || redemptionID == "" {
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "An intent needs a transaction_id and a redemption id.")
	}
	return db.update("remember redemption intent", func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketMeta).CreateBucketIfNotExists(bucketIntents)
		if err != nil {
			return err
		}
		return b.Put([]byte(transactionID), encodeIntent(requestHash, redemptionID))
	})
}

// Intent returns the remembered attempt of transactionID.
func (db *DB) Intent(ctx context.Context, transactionID string) (requestHash, redemptionID string, ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return "", "", false, err
	}
	err = db.view("read redemption intent", func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMeta).Bucket(bucketIntents)
		if b == nil {
			return nil
		}
		if v := b.Get([]byte(transactionID)); v != nil {
			requestHash, redemptionID, ok = decodeIntent(v)
		}
		return nil
	})
	return requestHash, redemptionID, ok, err
}

// ForgetIntent drops the intent of transactionID (the platform refused the attempt:
// nothing was redeemed, and a retry may be judged afresh under a new id).
func (db *DB) ForgetIntent(ctx context.Context, transactionID string) error {
	if _, _, ok, err := db.Intent(ctx, transactionID); err != nil || !ok {
		return err
	}
	return db.update("forget redemption intent", func(tx *bolt.Tx) error {
		return clearIntent(tx, transactionID)
	})
}

// clearIntent deletes an intent inside a write transaction; a missing one costs no
// page write.
func clearIntent(tx *bolt.Tx, transactionID string) error {
	b := tx.Bucket(bucketMeta).Bucket(bucketIntents)
	if b == nil || b.Get([]byte(transactionID)) == nil {
		return nil
	}
	return b.Delete([]byte(transactionID))
}

func encodeIntent(requestHash, redemptionID string) []byte {
	v := make([]byte, 0, len(requestHash)+1+len(redemptionID))
	v = append(v, requestHash...)
	v = append(v, 0)
	return append(v, redemptionID...)
}

func decodeIntent(v []byte) (requestHash, redemptionID string, ok bool) {
	h, id, found := bytes.Cut(v, []byte{0})
	if !found || len(id) == 0 {
		return "", "", false
	}
	return string(h), string(id), true
}
