package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/store"
	"github.com/tillkeep/tillkeep/store/storetest"
)

// Benchmarks of durable offline redemptions (each Record returns after its commit is
// fsynced). They print; they assert nothing about speed. Set TILLKEEP_BENCH_DIR to
// measure a particular disk (the default temporary directory may be tmpfs, where
// fsync is free and the numbers mean little).

func benchDir(b *testing.B) string {
	if dir := os.Getenv("TILLKEEP_BENCH_DIR"); dir != "" {
		d, err := os.MkdirTemp(dir, "tillkeep-bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = os.RemoveAll(d) })
		return d
	}
	return b.TempDir()
}

func benchLedger(b *testing.B) *store.DB {
	b.Helper()
	db, err := store.Open(filepath.Join(benchDir(b), store.FileName), tillOptions())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	snap := storetest.Snapshot()
	snap.Offers[1].Rules.MaxRedemptionsPerCoupon = 1 << 30 // M1 never runs out
	if err := db.ReplaceCatalog(context.Background(), snap); err != nil {
		b.Fatal(err)
	}
	return db
}

// reportLatency adds throughput and latency percentiles to the benchmark's output.
func reportLatency(b *testing.B, lat []time.Duration, elapsed time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds())
	}
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "redemptions/s")
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

func benchmarkLanes(b *testing.B, lanes int) {
	db := benchLedger(b)
	ctx := context.Background()
	var (
		next atomic.Int64
		mu   sync.Mutex
		lat  = make([]time.Duration, 0, b.N)
		wg   sync.WaitGroup
	)
	run := fmt.Sprintf("%d-%d", lanes, time.Now().UnixNano())
	b.ResetTimer()
	start := time.Now()
	for lane := range lanes {
		wg.Go(func() {
			mine := make([]time.Duration, 0, b.N/lanes+1)
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					break
				}
				t0 := time.Now()
				_, _, err := db.Record(ctx, storetest.RecordRequest(fmt.Sprintf("%s-%d-%d", run, lane, i), "M1", "", tillkeep.ModeOffline))
				if err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	reportLatency(b, lat, elapsed)
}

// BenchmarkRecord1Lane is one POS lane redeeming back to back.
func BenchmarkRecord1Lane(b *testing.B) { benchmarkLanes(b, 1) }

// BenchmarkRecord16Lanes is sixteen lanes redeeming at once, sharing commits.
func BenchmarkRecord16Lanes(b *testing.B) { benchmarkLanes(b, 16) }

// BenchmarkFdatasyncAppend is the disk's raw rate of durable appends, to read the two
// benchmarks above against.
func BenchmarkFdatasyncAppend(b *testing.B) {
	f, err := os.OpenFile(filepath.Join(benchDir(b), "append"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	rec := make([]byte, 256)
	b.ResetTimer()
	start := time.Now()
	lat := make([]time.Duration, 0, b.N)
	for range b.N {
		t0 := time.Now()
		if _, err := f.Write(rec); err != nil {
			b.Fatal(err)
		}
		if err := datasync(f); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	elapsed := time.Since(start)
	b.StopTimer()
	reportLatency(b, lat, elapsed)
}
