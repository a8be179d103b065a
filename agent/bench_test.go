package agent

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkRedeemOffline measures durable offline redemptions through the Redeemer on
// the bbolt ledger (every one fsynced), one lane and, with -cpu or SetParallelism,
// concurrent lanes sharing commits. It only reports; `make bench` holds the targets.
func BenchmarkRedeemOffline(b *testing.B) {
	for _, lanes := range []int{1, 16} {
		b.Run(fmt.Sprintf("lanes=%d", lanes), func(b *testing.B) {
			ledger := ledgerKinds[1].open(b)
			snap := testSnapshot(time.Now().Add(-time.Minute), b.N+lanes)
			if err := ledger.ReplaceCatalog(context.Background(), snap); err != nil {
				b.Fatal(err)
			}
			cfg := testConfig()
			cfg.Offline.MaxRedemptions = 1 << 30
			r := NewRedeemer(cfg, ledger, nil)
			var next atomic.Int64
			b.SetParallelism(lanes)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := next.Add(1)
					_, err := r.Redeem(context.Background(), RedeemRequest{
						Code: fmt.Sprintf("C%04d", i), TransactionID: fmt.Sprintf("tx-%d", i), Bill: usd(12000),
					})
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "redemptions/s")
		})
	}
}
