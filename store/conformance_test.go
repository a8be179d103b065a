package store_test

import (
	"testing"

	"github.com/tillkeep/tillkeep/store"
	"github.com/tillkeep/tillkeep/store/storetest"
)

// MustOpen opens a ledger in a temporary directory and checks the file when the test
// ends.
func MustOpen(tb testing.TB) *store.DB {
	tb.Helper()
	return storetest.MustOpenBolt(tb)
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Ledger { return MustOpen(t) })
}
