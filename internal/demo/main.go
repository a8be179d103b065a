// Command demo is what `make demo` runs: a platform and two tills of one store on this
// machine, an offer and its coupons, redemptions online, an outage with redemptions at
// both tills (one coupon used at both), the link restored, and what the platform made of
// it — printed step by step for someone who has never seen tillkeep.
//
// It checks every step as it goes and exits 1 when one did not behave as expected, so
// `make demo` is itself a test of the whole system. It leaves nothing running: the
// daemons are stopped on every way out, Ctrl-C included, and its directory is removed
// unless --keep is given.
//
//	go run ./internal/demo --bin bin/tillkeep [--keep]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/tillkeep/tillkeep/internal/e2e"
	"github.com/tillkeep/tillkeep/internal/faultproxy"
)

func main() {
	os.Exit(run())
}

// Exit statuses.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 130
)

func run() int {
	bin := flag.String("bin", "bin/tillkeep", "the tillkeep binary to run (make build makes bin/tillkeep)")
	keep := flag.Bool("keep", false, "keep the demo's directory (configs, data, logs) instead of removing it")
	timeout := flag.Duration("timeout", 3*time.Minute, "give up when the whole demo takes longer")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "demo: unexpected arguments %q\n", flag.Args())
		return exitUsage
	}
	binPath, err := filepath.Abs(*bin)
	if err == nil {
		_, err = os.Stat(binPath)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: no tillkeep binary at %s (run make build, or make demo): %v\n", *bin, err)
		return exitUsage
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	dir, err := os.MkdirTemp("", "tillkeep-demo-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		return exitFailed
	}
	d := &demo{bin: binPath, dir: dir, out: os.Stdout, start: time.Now()}
	defer func() {
		// Whatever happened, nothing may keep running, and the directory goes unless
		// asked to stay.
		if d.cluster != nil {
			d.cluster.Close()
		}
		if *keep {
			fmt.Fprintf(d.out, "\nThe demo's files are kept in %s (configs, data directories, logs).\n", dir)
		} else if err := os.RemoveAll(dir); err != nil {
			fmt.Fprintf(os.Stderr, "demo: remove %s: %v\n", dir, err)
		}
	}()

	err = d.run(ctx)
	switch {
	case err == nil:
		fmt.Fprintf(d.out, "\nDemo finished in %s: every step behaved as expected.\n", time.Since(d.start).Round(100*time.Millisecond))
		return exitOK
	case ctx.Err() != nil && errors.Is(context.Cause(ctx), context.Canceled):
		fmt.Fprintf(os.Stderr, "\ndemo: interrupted; stopping the platform and the tills\n")
		return exitInterrupted
	default:
		fmt.Fprintf(os.Stderr, "\nDEMO FAILED at step %d (%s): %v\n", d.step, d.stepTitle, err)
		d.printLogs(os.Stderr)
		return exitFailed
	}
}

// demo is one run of the story.
type demo struct {
	bin   string
	dir   string
	out   io.Writer
	start time.Time

	step      int
	stepTitle string

	cluster *e2e.Cluster
	t1, t2  *e2e.Agent
	// given is what the POS was told: till → code → redemption id.
	given map[string]map[string]string
}

const (
	storeID = "S001"
	offerID = "DEMO40"
)

// The demo's coupons: what each is for.
var (
	codes        = e2e.Codes("DEMO", 6)
	codeOnline1  = codes[0] // redeemed online at T01
	codeOnline2  = codes[1] // redeemed online at T02
	codeOffline1 = codes[2] // redeemed offline at T01 only
	codeOffline2 = codes[3] // redeemed offline at T02 only
	codeDouble   = codes[4] // the customer's coupon, used at both tills during the outage
	codeUnused   = codes[5] // never used: still valid everywhere at the end
)

func (d *demo) run(ctx context.Context) error {
	d.printf("tillkeep demo: a platform and two tills of store %s, all on this machine.\n", storeID)
	d.printf("Files (configs, data, logs) are under $DEMO = %s\n", d.dir)

	steps := []struct {
		title string
		do    func(context.Context) error
	}{
		{"start the platform", d.startPlatform},
		{"create a store, an offer and coupons", d.createOffer},
		{"start two tills", d.startTills},
		{"redeem online", d.redeemOnline},
		{"the internet goes down", d.cutLinks},
		{"redeem offline at both tills", d.redeemOffline},
		{"the link comes back", d.restoreLinks},
		{"what the platform reconciled", d.showReconciled},
		{"the conflict the platform flagged", d.showConflict},
		{"both tills learn it", d.tillsLearn},
		{"stop everything", d.stopAll},
	}
	for i, s := range steps {
		d.step, d.stepTitle = i+1, s.title
		d.printf("\n== Step %d: %s ==\n", d.step, s.title)
		if err := s.do(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (d *demo) printf(format string, args ...any) { fmt.Fprintf(d.out, format, args...) }

// explain prints a short explanation, indented.
func (d *demo) explain(lines ...string) {
	for _, l := range lines {
		if l == "" {
			d.printf("\n")
			continue
		}
		d.printf("   %s\n", l)
	}
}

// shown replaces the demo directory by $DEMO in what is printed.
func (d *demo) shown(s string) string { return strings.ReplaceAll(s, d.dir, "$DEMO") }

// cli prints a tillkeep command as a newcomer would type it, runs it, and returns what
// it printed; an exit status other than 0 is an error.
func (d *demo) cli(ctx context.Context, args ...string) (string, error) {
	quoted := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " \"'$") && !strings.HasPrefix(a, d.dir) {
			a = fmt.Sprintf("%q", a)
		}
		quoted[i] = d.shown(a)
	}
	d.printf("   $ tillkeep %s\n", strings.Join(quoted, " "))
	res, err := e2e.RunCLI(ctx, d.bin, args...)
	if err != nil {
		return "", err
	}
	if res.ExitCode != 0 {
		return res.Stdout, fmt.Errorf("tillkeep %s exited %d: %s%s", strings.Join(args, " "), res.ExitCode,
			strings.TrimSpace(res.Stderr), strings.TrimSpace(res.Stdout))
	}
	return res.Stdout, nil
}

// ---- the steps ---------------------------------------------------------------------

func (d *demo) startPlatform(ctx context.Context) error {
	c, err := e2e.StartCluster(ctx, d.bin, d.dir, e2e.PlatformOptions{})
	if err != nil {
		return err
	}
	d.cluster = c
	p := c.Platform
	d.printf("   $ tillkeep platform serve --config %s\n", d.shown(p.ConfigPath))
	d.explain(
		"The platform is the central server: offers, coupons, online redemption, and the",
		"reconciliation of what tills did while they were offline. Its data is one bbolt file",
		"in data_dir; ops talk to it with the admin token, tills with their own tokens.",
		fmt.Sprintf("It serves on %s (GET /healthz answered 200).", p.URL()),
	)
	return nil
}

func (d *demo) createOffer(ctx context.Context) error {
	p := d.cluster.Platform
	store := e2e.DemoStore()
	if _, err := d.cli(ctx, "ops", "--config", p.ConfigPath, "stores", "put", storeID,
		"--name", store.Name, "--zone", store.Zone, "--concept", store.Concept,
		"--timezone", store.Timezone, "--currency", store.Currency); err != nil {
		return err
	}
	offerPath := filepath.Join(d.dir, "offer.json")
	offer, err := json.MarshalIndent(e2e.SingleUseOffer(offerID, time.Now(), storeID), "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(offerPath, offer, 0o600); err != nil {
		return fmt.Errorf("write the offer file: %w", err)
	}
	if _, err := d.cli(ctx, "ops", "--config", p.ConfigPath, "offers", "create", "--file", offerPath); err != nil {
		return err
	}
	out, err := d.cli(ctx, append([]string{"ops", "--config", p.ConfigPath, "coupons", "add", offerID}, codes...)...)
	if err != nil {
		return err
	}
	var created struct {
		Created int `json:"created"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.Created != len(codes) {
		return fmt.Errorf("coupons add answered %q, want %d created", strings.TrimSpace(out), len(codes))
	}
	d.explain(
		fmt.Sprintf("Offer %s: 40.00 USD off a bill of at least 100.00 USD, valid in store %s,", offerID, storeID),
		"each coupon usable ONCE, and allowed offline (the offer's \"offline\": {\"allowed\": true}).",
		fmt.Sprintf("%d coupons: %s.", len(codes), strings.Join(codes, ", ")),
	)
	return nil
}

func (d *demo) startTills(ctx context.Context) error {
	var err error
	if d.t1, err = d.cluster.AddTill(ctx, e2e.AgentOptions{StoreID: storeID, TillID: "T01"}); err != nil {
		return err
	}
	if d.t2, err = d.cluster.AddTill(ctx, e2e.AgentOptions{StoreID: storeID, TillID: "T02"}); err != nil {
		return err
	}
	for _, a := range d.tills() {
		d.printf("   $ tillkeep agent run --config %s\n", d.shown(a.ConfigPath))
	}
	d.explain(
		"An agent runs on every till; the POS asks it, on 127.0.0.1, whether a coupon may be",
		"redeemed. Between each till and the platform sits a small proxy that plays the",
		"network, so that the demo can cut it. On first start each till enrolls with the",
		"store's enrollment token, gets its own credentials, and pulls the store's catalog.",
	)
	if err := e2e.WaitSynced(ctx, 90*time.Second, len(codes), d.tills()...); err != nil {
		return err
	}
	for _, a := range d.tills() {
		st, err := a.POS().Status(ctx)
		if err != nil {
			return err
		}
		d.printf("   %s: mode %s, %d coupons in its catalog, %d redemptions waiting for upload\n",
			a.TillID, st.Mode, st.Catalog.Coupons, st.PendingUploads)
	}
	return nil
}

func (d *demo) tills() []*e2e.Agent { return []*e2e.Agent{d.t1, d.t2} }

// posRedeem redeems through `tillkeep pos redeem` and checks the mode of the answer.
func (d *demo) posRedeem(ctx context.Context, a *e2e.Agent, code, tx, wantMode string, why ...string) (e2e.Redeemed, error) {
	out, err := d.cli(ctx, "pos", "--config", a.ConfigPath, "redeem", "--code", code, "--transaction", tx,
		"--bill", "12000", "--currency", "USD")
	if err != nil {
		return e2e.Redeemed{}, err
	}
	var r e2e.Redeemed
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return r, fmt.Errorf("pos redeem printed %q: %w", out, err)
	}
	d.printf("     -> %s accepted %s: mode %s, discount %s, redemption %s\n", a.TillID, code, r.Mode, money(r.Discount.Amount, r.Discount.Currency), r.RedemptionID)
	for _, line := range why {
		d.explain("  " + line)
	}
	if r.Mode != wantMode {
		return r, fmt.Errorf("%s redeemed %s in mode %q, want %q", a.TillID, code, r.Mode, wantMode)
	}
	if r.Discount.Amount != 4000 {
		return r, fmt.Errorf("%s redeemed %s with a discount of %d, want 4000", a.TillID, code, r.Discount.Amount)
	}
	return r, nil
}

func money(amount int64, currency string) string {
	return fmt.Sprintf("%d.%02d %s", amount/100, amount%100, currency)
}

// remember keeps the redemption id the POS was given, to compare with the platform's.
func (d *demo) remember(a *e2e.Agent, code string, r e2e.Redeemed) {
	if d.given == nil {
		d.given = map[string]map[string]string{}
	}
	if d.given[a.TillID] == nil {
		d.given[a.TillID] = map[string]string{}
	}
	d.given[a.TillID][code] = r.RedemptionID
}

func (d *demo) redeemOnline(ctx context.Context) error {
	d.explain("With the platform reachable, a till asks it first: the platform decides, within",
		"platform.timeout (800ms), and counts the use at once for every till.")
	for _, x := range []struct {
		a    *e2e.Agent
		code string
	}{{d.t1, codeOnline1}, {d.t2, codeOnline2}} {
		r, err := d.posRedeem(ctx, x.a, x.code, x.a.TillID+"-0001", "online")
		if err != nil {
			return err
		}
		d.remember(x.a, x.code, r)
	}
	d.explain("Online redemptions go to the till's journal too, and are uploaded with the next",
		"sync (sync.schedule; 1 s in this demo): the platform recognises them by their id.")
	if err := e2e.WaitConverged(ctx, 60*time.Second, d.tills()...); err != nil {
		return err
	}
	d.explain("Both tills have uploaded their journals: nothing is pending.")
	return nil
}

func (d *demo) cutLinks(ctx context.Context) error {
	for _, a := range d.tills() {
		if err := a.Link(faultproxy.Reset{}); err != nil {
			return err
		}
	}
	d.explain("The proxies now reset every connection to the platform: the store is cut off.",
		"The tills keep selling. Offline, each decides from its own catalog, within the",
		"offline limits of agent.toml (largest discount, number of redemptions, catalog age),",
		"and writes every redemption to its journal, fsynced, before it answers the POS.")
	return nil
}

func (d *demo) redeemOffline(ctx context.Context) error {
	steps := []struct {
		a        *e2e.Agent
		code, tx string
		why      []string
	}{
		{d.t1, codeOffline1, "T01-0002", []string{"The online attempt failed, so T01 decided on its own; it now knows it is offline."}},
		{d.t2, codeOffline2, "T02-0002", nil},
		{d.t1, codeDouble, "T01-0003", []string{"A customer uses coupon " + codeDouble + " at T01..."}},
		{d.t2, codeDouble, "T02-0003", []string{
			"...and the same coupon again at T02. Neither till can know about the other:",
			"nobody can prevent this double use during an outage; the offline limits cap it."}},
	}
	for _, s := range steps {
		r, err := d.posRedeem(ctx, s.a, s.code, s.tx, "offline", s.why...)
		if err != nil {
			return err
		}
		d.remember(s.a, s.code, r)
	}
	for _, a := range d.tills() {
		st, err := a.POS().Status(ctx)
		if err != nil {
			return err
		}
		d.printf("   %s: mode %s, %d redemptions journaled and waiting for upload\n", a.TillID, st.Mode, st.PendingUploads)
		if st.Mode != "offline" || st.PendingUploads != 2 {
			return fmt.Errorf("%s reports mode %s with %d pending uploads, want offline with 2", a.TillID, st.Mode, st.PendingUploads)
		}
	}
	return nil
}

func (d *demo) restoreLinks(ctx context.Context) error {
	d.explain("The proxies pass traffic again, T01's first, then T02's: tills rarely come back",
		"at the same moment. Each till notices within a second or two, pushes its journal",
		"(idempotent: a retry is never counted twice), and pulls the catalog changes.")
	for _, a := range d.tills() {
		if err := a.Link(faultproxy.Pass{}); err != nil {
			return err
		}
		start := time.Now()
		if err := e2e.WaitConverged(ctx, 90*time.Second, a); err != nil {
			return err
		}
		d.printf("   %s: online again, journal uploaded, %s after its link came back.\n", a.TillID, time.Since(start).Round(100*time.Millisecond))
	}
	return nil
}

func (d *demo) showReconciled(ctx context.Context) error {
	ops := d.cluster.Platform.Ops()
	d.explain("The platform's ledger, till by till (GET /v1/redemptions?store_id=S001&till_id=...):")
	for _, a := range d.tills() {
		list, err := ops.Redemptions(ctx, e2e.RedemptionFilter{StoreID: storeID, TillID: a.TillID})
		if err != nil {
			return err
		}
		slices.SortFunc(list, func(x, y e2e.Redemption) int { return strings.Compare(x.Code, y.Code) })
		d.printf("   %s: %d redemptions\n", a.TillID, len(list))
		seen := map[string]int{}
		for _, r := range list {
			seen[r.ID]++
			note := ""
			if r.ConflictKind != "" {
				note = "  (part of a " + r.ConflictKind + " case)"
			}
			d.printf("     %-10s %-7s %-8s %s  %s%s\n", r.Code, r.Mode, r.Status, money(r.Discount.Amount, r.Discount.Currency), r.ID, note)
		}
		for code, id := range d.given[a.TillID] {
			if seen[id] != 1 {
				return fmt.Errorf("the platform lists redemption %s (%s at %s) %d times, want exactly once", id, code, a.TillID, seen[id])
			}
		}
		if len(list) != len(d.given[a.TillID]) {
			return fmt.Errorf("the platform lists %d redemptions of %s, the POS was given %d", len(list), a.TillID, len(d.given[a.TillID]))
		}
	}
	d.explain("Every redemption the POS was told about is there exactly once, online and offline.")
	coupon, err := ops.Coupon(ctx, codeDouble)
	if err != nil {
		return err
	}
	d.printf("   Coupon %s: status %s, used %d times\n", codeDouble, coupon.Status, len(coupon.Redemptions))
	if coupon.Status != "revoked" || len(coupon.Redemptions) != 2 {
		return fmt.Errorf("coupon %s has status %s and %d redemptions, want revoked with 2", codeDouble, coupon.Status, len(coupon.Redemptions))
	}
	return nil
}

func (d *demo) showConflict(ctx context.Context) error {
	out, err := d.cli(ctx, "ops", "--config", d.cluster.Platform.ConfigPath, "conflicts", "list", "--status", "open")
	if err != nil {
		return err
	}
	var listed struct {
		Conflicts []e2e.Conflict `json:"conflicts"`
	}
	if err := json.Unmarshal([]byte(out), &listed); err != nil {
		return fmt.Errorf("conflicts list printed %q: %w", out, err)
	}
	if len(listed.Conflicts) != 1 {
		return fmt.Errorf("%d open conflict cases, want exactly 1: %+v", len(listed.Conflicts), listed.Conflicts)
	}
	cf := listed.Conflicts[0]
	d.printf("   case %s\n", cf.ID)
	d.printf("     kind:        %s\n", cf.Kind)
	d.printf("     coupon:      %s\n", cf.Code)
	d.printf("     redemptions: %s\n", strings.Join(d.withTills(cf.RedemptionIDs), ", "))
	d.printf("     tills:       %s\n", strings.Join(cf.TillIDs, ", "))
	d.printf("     winner:      %s (keeps status accepted)\n", strings.Join(d.withTills(cf.WinnerIDs), ", "))
	d.explain(
		"One case per coupon and kind, listing every redemption involved, from every till.",
		"The winner is decided by a fixed order (the earliest hybrid-logical-clock stamp),",
		"never by which upload arrived first; the others have status \"conflict\".",
		"With reconcile.auto_revoke (the default) the coupon was revoked in the same",
		"transaction, so no third till accepts it. Ops close the case with",
		"  tillkeep ops conflicts resolve ID --action accept_loss|reverse|reinstate --note ...",
	)
	want := []string{d.given["T01"][codeDouble], d.given["T02"][codeDouble]}
	switch {
	case cf.Kind != "double_redemption" || cf.Code != codeDouble:
		return fmt.Errorf("the case is %s on %s, want double_redemption on %s", cf.Kind, cf.Code, codeDouble)
	case !e2e.SameSet(cf.RedemptionIDs, want):
		return fmt.Errorf("the case lists redemptions %v, want %v", cf.RedemptionIDs, want)
	case !e2e.SameSet(cf.TillIDs, []string{"T01", "T02"}):
		return fmt.Errorf("the case lists tills %v, want T01 and T02", cf.TillIDs)
	}
	return nil
}

// withTills labels redemption ids with the till the POS got them from.
func (d *demo) withTills(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id
		for till, byCode := range d.given {
			for _, given := range byCode {
				if given == id {
					out[i] = id + " (" + till + ")"
				}
			}
		}
	}
	return out
}

func (d *demo) tillsLearn(ctx context.Context) error {
	d.explain("The platform's answer to each upload says, entry by entry, what became of it;",
		"a till keeps the conflicts in its status. The revocation reaches every till of the",
		"store with its next catalog pull.")
	ops := d.cluster.Platform.Ops()
	for _, a := range d.tills() {
		st, err := a.POS().Status(ctx)
		if err != nil {
			return err
		}
		id := d.given[a.TillID][codeDouble]
		onPlatform, err := ops.Redemptions(ctx, e2e.RedemptionFilter{StoreID: storeID, TillID: a.TillID, Code: codeDouble})
		if err != nil {
			return err
		}
		if len(onPlatform) != 1 || onPlatform[0].ID != id {
			return fmt.Errorf("the platform lists %+v for %s at %s, want redemption %s once", onPlatform, codeDouble, a.TillID, id)
		}
		verdict := onPlatform[0].Status
		reported := ""
		if st.Sync != nil {
			for _, r := range st.Sync.Conflicts.Recent {
				if r.RedemptionID == id {
					reported = fmt.Sprintf("%s (%s)", r.Status, r.ConflictKind)
				}
			}
		}
		switch {
		case reported != "":
			d.printf("   %s's status: its redemption of %s is %s\n", a.TillID, codeDouble, reported)
		case verdict == "accepted":
			d.printf("   %s's status: no conflict reported; its redemption of %s stays accepted\n", a.TillID, codeDouble)
		default:
			return fmt.Errorf("%s's redemption %s is %s on the platform, but the till's status does not report it", a.TillID, id, verdict)
		}
	}
	since := time.Now()
	for _, a := range d.tills() {
		if err := e2e.WaitPullAfter(ctx, 60*time.Second, a, since); err != nil {
			return err
		}
	}
	d.explain("Cut off once more, each till now refuses the coupon by itself:")
	for _, a := range d.tills() {
		if err := a.Link(faultproxy.Reset{}); err != nil {
			return err
		}
	}
	for _, a := range d.tills() {
		for _, code := range []string{codeDouble, codeUnused} {
			v, err := a.POS().Validate(ctx, code, e2e.USD(12000))
			if err != nil {
				return err
			}
			verdict := "valid"
			if !v.Valid {
				verdict = "refused: " + v.Reason
			}
			d.printf("   %s validates %s (%s): %s\n", a.TillID, code, v.Mode, verdict)
			wantValid := code == codeUnused
			if v.Valid != wantValid || v.Mode != "offline" || (!wantValid && v.Reason != "revoked") {
				return fmt.Errorf("%s validated %s offline as %+v, want valid=%t%s", a.TillID, code, v, wantValid,
					map[bool]string{false: " reason revoked", true: ""}[wantValid])
			}
		}
	}
	for _, a := range d.tills() {
		if err := a.Link(faultproxy.Pass{}); err != nil {
			return err
		}
	}
	return nil
}

func (d *demo) stopAll(context.Context) error {
	d.explain("SIGTERM to each daemon: each stops gracefully and exits 0 within 5 s.")
	if err := d.cluster.StopAll(); err != nil {
		return err
	}
	d.printf("   platform and tills stopped.\n")
	d.explain("",
		"To run one platform and one agent by hand, see \"Run it by hand\" in README.md;",
		"the story of a day after an outage is in docs/ops.md and docs/conflicts.md.")
	return nil
}

// printLogs prints the end of every daemon's log after a failure.
func (d *demo) printLogs(w io.Writer) {
	if d.cluster == nil {
		return
	}
	for _, path := range d.cluster.LogPaths() {
		fmt.Fprintf(w, "\n----- %s -----\n%s", d.shown(path), e2e.LogTail(path, 6000))
	}
}
