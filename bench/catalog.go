package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/config"
	"github.com/tillkeep/tillkeep/platform"
	"github.com/tillkeep/tillkeep/store"
	tksync "github.com/tillkeep/tillkeep/sync"
)

// The catalog rows (issue #4): a till's cold bootstrap of its store's 1M-coupon catalog
// through the real HTTP path (snapshot streamed from a platform on a boltstore file,
// loaded into a fresh till ledger), the ledger's bytes on disk per coupon, the till's
// peak resident memory, and the time to apply a delta of 10,000 changes.
//
// The till side runs in a child process (this binary re-executed with a hidden first
// argument) so that its peak RSS (VmHWM) is the agent's alone: the platform, its bolt
// file's mapped pages and the seeding stay in the parent. The platform is seeded through
// its storage directly; seeding is not measured.

// catalogChildArg, as the first argument, turns this binary into the till:
// `bench -catalog-child URL DATA_DIR` enrolls, bootstraps, prints a catalogChildResult
// line, then applies one more pull each time it reads "pull" on stdin.
const catalogChildArg = "-catalog-child"

const (
	catalogStore   = "CAT1"
	catalogOffers  = 4
	catalogCoupons = 1_000_000
	catalogChanges = 10_000
)

func init() {
	if len(os.Args) > 1 && os.Args[1] == catalogChildArg {
		os.Exit(catalogChild(os.Args[2:]))
	}
}

type catalogChildResult struct {
	Phase   string  `json:"phase"`
	Seconds float64 `json:"seconds"`
	Coupons int     `json:"coupons"`
	// FileBytes is the ledger file's size; PeakRSSKB is VmHWM after the phase.
	FileBytes int64  `json:"file_bytes"`
	PeakRSSKB int64  `json:"peak_rss_kb"`
	Error     string `json:"error,omitempty"`
}

func catalogChild(args []string) int {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: bench -catalog-child URL DATA_DIR")
		return 2
	}
	ctx := context.Background()
	cfg := config.DefaultAgent()
	cfg.DataDir, cfg.StoreID, cfg.TillID = args[1], catalogStore, "T01"
	cfg.PosToken = "bench-pos-token-0123456789"
	cfg.Platform.URL, cfg.Platform.EnrollToken = args[0], benchEnrollToken
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	path := filepath.Join(cfg.DataDir, store.FileName)
	db, err := store.Open(path, store.Options{StoreID: cfg.StoreID, TillID: cfg.TillID, Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, "catalog child:", err)
		return 1
	}
	defer db.Close()
	if _, err := tksync.Enroll(ctx, cfg, log); err != nil {
		fmt.Fprintln(os.Stderr, "catalog child:", err)
		return 1
	}
	syncer, err := tksync.New(cfg, db, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "catalog child:", err)
		return 1
	}
	out := json.NewEncoder(os.Stdout)
	pull := func(phase string) bool {
		start := time.Now()
		err := syncer.Pull(ctx)
		res := catalogChildResult{Phase: phase, Seconds: time.Since(start).Seconds()}
		if err != nil {
			res.Error = err.Error()
		}
		if cs, err := db.CatalogState(ctx); err == nil {
			res.Coupons = cs.Coupons
		}
		if fi, err := os.Stat(path); err == nil {
			res.FileBytes = fi.Size()
		}
		if hwm, err := selfPeakRSSKB(); err == nil {
			res.PeakRSSKB = hwm
		}
		if err := out.Encode(res); err != nil {
			return false
		}
		return res.Error == ""
	}
	if !pull("bootstrap") {
		return 1
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() != "pull" {
			continue
		}
		if !pull("delta") {
			return 1
		}
	}
	return 0
}

// catalogCode is a pseudo-random 10-character code: the order of codes has nothing to
// do with their offers or creation, as with generated series.
func catalogCode(r *rand.Rand) string {
	const alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
	var b [10]byte
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b[:])
}

// seedCatalog creates the store, its offers and n coupons through the storage: half
// bearer coupons, half issued to customers with an expiry, spread over the offers.
func seedCatalog(ctx context.Context, p *benchPlatform, n int, now time.Time) ([]string, error) {
	if _, err := p.svc().PutStore(ctx, tillkeep.Store{ID: catalogStore, Name: "Catalog store", Zone: "north",
		Concept: "grocery", Timezone: "Europe/Amsterdam", Currency: "EUR"}); err != nil {
		return nil, fmt.Errorf("create store: %w", err)
	}
	for i := range catalogOffers {
		o := tillkeep.Offer{
			ID: fmt.Sprintf("CAT-OFFER-%d", i), Name: fmt.Sprintf("Catalog offer %d: 5 EUR off 25 EUR", i),
			Discount:  tillkeep.Discount{Type: tillkeep.DiscountFixed, Amount: 500, Currency: "EUR"},
			ValidFrom: now.AddDate(0, -1, 0), ValidUntil: now.AddDate(1, 0, 0),
			Expiry:  tillkeep.Expiry{Mode: tillkeep.ExpiryDaysFromIssue, Days: 30},
			Rules:   tillkeep.Rules{MinBill: 2500, MaxRedemptionsPerCoupon: 1, Stores: []string{catalogStore}},
			Offline: tillkeep.OfflinePolicy{Allowed: true},
		}
		if _, err := p.svc().CreateOffer(ctx, o); err != nil {
			return nil, fmt.Errorf("create offer %s: %w", o.ID, err)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	codes := make([]string, 0, n)
	const batch = 20_000
	for len(codes) < n && ctx.Err() == nil {
		cs := make([]tillkeep.Coupon, 0, batch)
		for i := 0; i < batch && len(codes)+len(cs) < n; i++ {
			k := len(codes) + len(cs)
			c := tillkeep.Coupon{Code: catalogCode(r), OfferID: fmt.Sprintf("CAT-OFFER-%d", k%catalogOffers),
				Status: tillkeep.CouponActive, CreatedAt: now}
			if k%2 == 1 {
				c.CustomerID = fmt.Sprintf("CUST%07d", k/2)
				c.IssuedAt = now.Add(-time.Duration(k) * time.Second)
				c.ExpiresAt = c.IssuedAt.AddDate(0, 0, 30)
			}
			cs = append(cs, c)
		}
		var existing []string
		err := p.store.Update(ctx, func(tx platform.Tx) error {
			var err error
			existing, err = tx.InsertCoupons(cs)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("insert coupons: %w", err)
		}
		skip := map[string]bool{}
		for _, c := range existing {
			skip[c] = true
		}
		for _, c := range cs {
			if !skip[c.Code] {
				codes = append(codes, c.Code)
			}
		}
	}
	return codes, ctx.Err()
}

// catalogChildRun is the till process and its line-oriented conversation.
type catalogChildRun struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  *bufio.Scanner
	stderr *strings.Builder
}

func (c *catalogChildRun) next() (catalogChildResult, error) {
	var res catalogChildResult
	if !c.lines.Scan() {
		_ = c.cmd.Wait()
		return res, fmt.Errorf("the till process ended: %s", strings.TrimSpace(c.stderr.String()))
	}
	if err := json.Unmarshal(c.lines.Bytes(), &res); err != nil {
		return res, fmt.Errorf("read the till process's answer %q: %w", c.lines.Text(), err)
	}
	if res.Error != "" {
		return res, fmt.Errorf("till %s: %s", res.Phase, res.Error)
	}
	return res, nil
}

func measureCatalog(ctx context.Context, e *env) ([]Row, error) {
	n, label := catalogCoupons, "1M"
	if e.quick {
		n, label = 100_000, "100k"
	}
	dir := filepath.Join(e.dir, "catalog")
	p, err := startBenchPlatform(ctx, filepath.Join(dir, "platform"))
	if err != nil {
		return nil, err
	}
	defer p.close()
	defer os.RemoveAll(dir)
	now := time.Now().UTC()
	seedStart := time.Now()
	codes, err := seedCatalog(ctx, p, n, now)
	if err != nil {
		return nil, err
	}
	stepf("catalog: seeded %d coupons in %.1f s; starting the till process", len(codes), time.Since(seedStart).Seconds())

	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the bench binary to run the till process: %w", err)
	}
	tillDir := filepath.Join(dir, "till")
	child := &catalogChildRun{cmd: exec.CommandContext(ctx, self, catalogChildArg, p.daemon.url, tillDir), stderr: &strings.Builder{}}
	child.cmd.Stderr = child.stderr
	if child.stdin, err = child.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := child.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	child.lines = bufio.NewScanner(stdout)
	if err := child.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the till process: %w", err)
	}
	defer func() {
		_ = child.stdin.Close()
		_ = child.cmd.Wait()
	}()
	boot, err := child.next()
	if err != nil {
		return nil, err
	}
	if boot.Coupons != len(codes) {
		return nil, fmt.Errorf("the till holds %d coupons after bootstrap, the platform %d", boot.Coupons, len(codes))
	}
	stepf("catalog: bootstrap of %d coupons in %.2f s, ledger %d bytes, peak RSS %d kB", boot.Coupons, boot.Seconds, boot.FileBytes, boot.PeakRSSKB)

	// 10,000 changes: coupons revoked centrally, each a change-log entry.
	r := rand.New(rand.NewPCG(3, 4))
	picked := map[string]bool{}
	for len(picked) < catalogChanges {
		picked[codes[r.IntN(len(codes))]] = true
	}
	revoke := make([]string, 0, len(picked))
	for c := range picked {
		revoke = append(revoke, c)
	}
	res, err := p.svc().Revoke(ctx, platform.RevokeRequest{Codes: revoke}, nil)
	if err != nil {
		return nil, fmt.Errorf("revoke %d coupons: %w", len(revoke), err)
	}
	if res.Revoked != catalogChanges {
		return nil, fmt.Errorf("revoked %d coupons, want %d", res.Revoked, catalogChanges)
	}
	if _, err := io.WriteString(child.stdin, "pull\n"); err != nil {
		return nil, fmt.Errorf("ask the till to pull: %w", err)
	}
	delta, err := child.next()
	if err != nil {
		return nil, err
	}
	stepf("catalog: delta of %d changes in %.3f s", catalogChanges, delta.Seconds)

	perCoupon := float64(boot.FileBytes) / float64(boot.Coupons)
	peakMB := float64(boot.PeakRSSKB) / 1024
	note := fmt.Sprintf("%d offers, half the coupons issued to customers; platform boltstore over loopback HTTP", catalogOffers)
	return []Row{
		{Group: "catalog", Name: "cold bootstrap of a " + label + "-coupon store catalog", Value: boot.Seconds, Unit: "s",
			Target: "<= 10 s", Pass: pass(boot.Seconds <= 10), Note: note + "; snapshot streamed, checksummed, loaded in chunks"},
		{Group: "catalog", Name: "till ledger bytes on disk per coupon", Value: perCoupon, Unit: "B/coupon",
			Target: "<= 80 B", Pass: pass(perCoupon <= 80), Note: fmt.Sprintf("ledger file %.1f MB after the bootstrap", float64(boot.FileBytes)/(1<<20))},
		{Group: "catalog", Name: "agent peak RSS during the bootstrap", Value: peakMB, Unit: "MB",
			Target: "<= 64 MB", Pass: pass(peakMB <= 64), Note: "VmHWM of the till process (syncer + ledger), the platform excluded"},
		{Group: "catalog", Name: fmt.Sprintf("apply a delta of %d changes", catalogChanges), Value: delta.Seconds, Unit: "s",
			Target: "<= 1 s", Pass: pass(delta.Seconds <= 1), Note: fmt.Sprintf("%d coupons revoked centrally, pulled in pages over HTTP and applied", catalogChanges)},
	}, nil
}
