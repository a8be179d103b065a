package memstore_test

import (
	"testing"

	"github.com/tillkeep/tillkeep/store"
	"github.com/tillkeep/tillkeep/store/memstore"
	"github.com/tillkeep/tillkeep/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Ledger {
		s := memstore.New(storetest.StoreID, storetest.TillID)
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}
