package e2e

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	gosync "sync"
	"time"

	"github.com/tillkeep/tillkeep"
)

// Cluster is a platform and the tills around it, each in its own directory under Dir.
// Close stops every process and proxy it started, whatever state they are in.
type Cluster struct {
	Bin      string
	Dir      string
	Platform *Platform

	mu    gosync.Mutex
	tills []*Agent
}

// StartCluster starts a platform under dir/platform.
func StartCluster(ctx context.Context, bin, dir string, opts PlatformOptions) (*Cluster, error) {
	p, err := NewPlatform(bin, filepath.Join(dir, "platform"), opts)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Bin: bin, Dir: dir, Platform: p}
	if err := p.Start(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// AddTill prepares a till under dir/<store>-<till> with a proxy to the platform, and
// starts it. The till enrolls by itself; the store must exist on the platform for that
// to succeed (the agent keeps trying otherwise).
func (c *Cluster) AddTill(ctx context.Context, opts AgentOptions) (*Agent, error) {
	a, err := NewAgent(c.Bin, filepath.Join(c.Dir, opts.StoreID+"-"+opts.TillID), c.Platform, opts)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.tills = append(c.tills, a)
	c.mu.Unlock()
	if err := a.Start(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// Tills are the tills added so far.
func (c *Cluster) Tills() []*Agent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Agent(nil), c.tills...)
}

// LogPaths lists every log file of the cluster: the platform's, then each till's and its
// proxy's.
func (c *Cluster) LogPaths() []string {
	paths := []string{c.Platform.LogPath}
	for _, a := range c.Tills() {
		paths = append(paths, a.LogPath, a.ProxyLog)
	}
	return paths
}

// Close kills every daemon of the cluster and closes the proxies. It is safe to call
// more than once and on a cluster half set up.
func (c *Cluster) Close() {
	for _, a := range c.Tills() {
		a.Close()
	}
	if c.Platform != nil {
		_ = c.Platform.Kill()
	}
}

// StopAll stops every running daemon with SIGTERM and reports those that did not exit 0
// within 5 s: the contract's graceful stop, checked at the end of each scenario.
func (c *Cluster) StopAll() error {
	var errs []error
	for _, a := range c.Tills() {
		if a.Running() {
			errs = append(errs, a.Stop())
		}
	}
	if c.Platform.Running() {
		errs = append(errs, c.Platform.Stop())
	}
	return errors.Join(errs...)
}

// USD is an amount of US cents.
func USD(cents int64) tillkeep.Money { return tillkeep.NewMoney(cents, "USD") }

// DemoStore is the store the scenarios and the demo use.
func DemoStore() Store {
	return Store{Name: "Main Street", Zone: "EAST", Concept: "mall", Timezone: "America/New_York", Currency: "USD"}
}

// SingleUseOffer is an offer of 40 USD off a bill of at least 100 USD, one use per
// coupon, valid from yesterday for a month in the given stores, allowed offline: the
// kind of coupon that two offline tills can both accept.
func SingleUseOffer(id string, now time.Time, stores ...string) map[string]any {
	return map[string]any{
		"id":          id,
		"name":        "40 USD off a bill of 100 USD",
		"discount":    map[string]any{"type": "fixed", "amount": 4000, "currency": "USD"},
		"valid_from":  now.UTC().Add(-24 * time.Hour).Truncate(time.Second).Format(time.RFC3339),
		"valid_until": now.UTC().Add(30 * 24 * time.Hour).Truncate(time.Second).Format(time.RFC3339),
		"expiry":      map[string]any{"mode": "with_offer"},
		"rules": map[string]any{
			"min_bill":                   10000,
			"max_redemptions_per_coupon": 1,
			"stores":                     stores,
		},
		"offline": map[string]any{"allowed": true},
	}
}

// Codes returns n coupon codes prefix-00001, prefix-00002, ...
func Codes(prefix string, n int) []string {
	codes := make([]string, n)
	for i := range codes {
		codes[i] = fmt.Sprintf("%s-%05d", prefix, i+1)
	}
	return codes
}

// SetUpOffer creates the store, a single-use offer valid there and its coupons.
func SetUpOffer(ctx context.Context, ops *OpsClient, storeID, offerID string, codes []string) error {
	if err := ops.PutStore(ctx, storeID, DemoStore()); err != nil {
		return fmt.Errorf("create store %s: %w", storeID, err)
	}
	if err := ops.CreateOffer(ctx, SingleUseOffer(offerID, time.Now(), storeID)); err != nil {
		return fmt.Errorf("create offer %s: %w", offerID, err)
	}
	created, refused, err := ops.AddCoupons(ctx, offerID, codes)
	if err != nil {
		return fmt.Errorf("create the coupons of %s: %w", offerID, err)
	}
	if created != len(codes) {
		return fmt.Errorf("create the coupons of %s: %d of %d created; refused: %v", offerID, created, len(codes), refused)
	}
	return nil
}

// DescribeStatus is a one-line summary of a till's status for wait messages.
func DescribeStatus(name string, st AgentStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: mode=%s pending=%d coupons=%d", name, st.Mode, st.PendingUploads, st.Catalog.Coupons)
	if st.Catalog.SyncedAt == nil {
		b.WriteString(" synced_at=null")
	}
	if st.Sync != nil {
		if !st.Sync.Enrolled {
			b.WriteString(" not-enrolled")
		}
		if st.Sync.LastError != "" {
			fmt.Fprintf(&b, " last_error=%q", st.Sync.LastError)
		}
	}
	return b.String()
}

// WaitSynced waits until every till is online and its catalog holds at least coupons
// coupons: enrolled, and the catalog pulled.
func WaitSynced(ctx context.Context, timeout time.Duration, coupons int, tills ...*Agent) error {
	return waitTills(ctx, timeout, fmt.Sprintf("tills online with a catalog of at least %d coupons", coupons), tills,
		func(st AgentStatus) bool {
			return st.Mode == "online" && st.Catalog.SyncedAt != nil && st.Catalog.Coupons >= coupons
		})
}

// WaitConverged waits until every till is online with nothing left to upload.
func WaitConverged(ctx context.Context, timeout time.Duration, tills ...*Agent) error {
	return waitTills(ctx, timeout, "tills online with no pending uploads", tills,
		func(st AgentStatus) bool { return st.Mode == "online" && st.PendingUploads == 0 })
}

// WaitMode waits until every till reports mode ("online" or "offline").
func WaitMode(ctx context.Context, timeout time.Duration, mode string, tills ...*Agent) error {
	return waitTills(ctx, timeout, "tills in mode "+mode, tills,
		func(st AgentStatus) bool { return st.Mode == mode })
}

func waitTills(ctx context.Context, timeout time.Duration, what string, tills []*Agent, ok func(AgentStatus) bool) error {
	return WaitFor(ctx, timeout, what, func(ctx context.Context) (bool, string, error) {
		var seen []string
		all := true
		for _, a := range tills {
			st, err := a.POS().Status(ctx)
			if err != nil {
				return false, strings.Join(seen, "; "), fmt.Errorf("status of till %s: %w", a.Name(), err)
			}
			seen = append(seen, DescribeStatus(a.Name(), st))
			all = all && ok(st)
		}
		return all, strings.Join(seen, "; "), nil
	})
}

// WaitPullAfter waits until till a has completed a catalog pull that began after since:
// two pulls finishing after since, the second of which began after the first had ended.
// It relies on the agent's sync.last_pull_at.
func WaitPullAfter(ctx context.Context, timeout time.Duration, a *Agent, since time.Time) error {
	var first time.Time
	return WaitFor(ctx, timeout, "till "+a.Name()+" to pull its catalog again", func(ctx context.Context) (bool, string, error) {
		st, err := a.POS().Status(ctx)
		if err != nil {
			return false, "", err
		}
		if st.Sync == nil {
			return false, "", errors.New("the till's status has no sync section")
		}
		last := st.Sync.LastPullAt
		switch {
		case first.IsZero() && last.After(since):
			first = last
		case !first.IsZero() && last.After(first):
			return true, "", nil
		}
		return false, fmt.Sprintf("last_pull_at %s, waiting for pulls after %s", last.Format(time.RFC3339Nano), since.Format(time.RFC3339Nano)), nil
	})
}

// SameSet reports whether a and b hold the same strings, ignoring order.
func SameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
