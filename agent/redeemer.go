package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/config"
)

// Ledger is what the Redeemer needs of the till's durable state. store.Ledger (bbolt)
// and store/memstore implement it.
type Ledger interface {
	tillkeep.TillLedger
	tillkeep.TillCatalog
}

// Option configures a Redeemer or a Server.
type Option func(*options)

type options struct {
	online        Online
	clock         func() time.Time
	platformClock func() time.Time
	syncStatus    func() any
}

// WithOnline attaches the online path from the start. It can also be attached (or
// replaced, or removed with nil) later with Redeemer.SetOnline, for example once the
// till has enrolled.
func WithOnline(o Online) Option { return func(opts *options) { opts.online = o } }

// WithClock replaces the wall clock (tests, and tills whose clock sync sets an
// offset). The Redeemer reads it once per attempt, before the ledger decides.
func WithClock(now func() time.Time) Option { return func(opts *options) { opts.clock = now } }

// WithPlatformClock gives the Redeemer the till's best estimate of the platform's
// clock (the till clock corrected by the offset measured at the last sync). Rules
// (expiry, hours, days) are judged and hybrid-logical-clock stamps made with it, so a
// till whose clock is days off neither refuses valid coupons nor corrupts ordering;
// the journal still records the till's own wall time beside it.
func WithPlatformClock(now func() time.Time) Option {
	return func(opts *options) { opts.platformClock = now }
}

// WithSyncStatus adds the sync state to /v1/status under "sync" (a JSON-encodable
// value read at each request).
func WithSyncStatus(fn func() any) Option { return func(opts *options) { opts.syncStatus = fn } }

// maxViewReloads is how often a redemption re-reads the store record because the
// catalog changed under it before deciding with what it has: a catalog being replaced
// in a tight loop must not starve the POS.
const maxViewReloads = 3

// errCatalogChanged is returned by a Decide callback that saw a catalog sync time other
// than the one its store record was read at; nothing is written and the attempt is
// decided again with a fresh store record.
var errCatalogChanged = errors.New("catalog changed while deciding")

// Redeemer is the till's redemption engine. It is independent of HTTP: the POS API,
// benchmarks and tests call it directly. It is safe for concurrent use.
type Redeemer struct {
	storeID, tillID string
	onlineTimeout   time.Duration
	policy          offlinePolicy
	ledger          Ledger
	log             *slog.Logger
	now             func() time.Time
	platformNow     func() time.Time
	online          atomic.Pointer[onlineSlot]
	metrics         *metrics

	transactions keyedMutex // one attempt per transaction_id at a time
	reversals    keyedMutex // one reversal per redemption id at a time
	attempts     *attemptMemory

	view      atomic.Pointer[storeView]
	viewMu    sync.Mutex // serialises reloads of view
	locations map[string]*time.Location
}

// onlineSlot boxes the interface so it can sit in an atomic.Pointer.
type onlineSlot struct{ Online }

// NewRedeemer returns a Redeemer deciding for the till cfg describes, recording in
// ledger. It keeps no metrics registry of its own; a Server registers its metrics.
func NewRedeemer(cfg config.Agent, ledger Ledger, log *slog.Logger, opts ...Option) *Redeemer {
	return newRedeemer(cfg, ledger, log, newMetrics(nil), opts)
}

func newRedeemer(cfg config.Agent, ledger Ledger, log *slog.Logger, m *metrics, opts []Option) *Redeemer {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.clock == nil {
		o.clock = time.Now
	}
	if o.platformClock == nil {
		o.platformClock = o.clock
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	timeout := cfg.Platform.Timeout.Duration
	if timeout <= 0 {
		timeout = config.DefaultPlatformTimeout
	}
	r := &Redeemer{
		storeID:       cfg.StoreID,
		tillID:        cfg.TillID,
		onlineTimeout: timeout,
		policy:        policyFrom(cfg.Offline),
		ledger:        ledger,
		log:           log,
		now:           o.clock,
		platformNow:   o.platformClock,
		metrics:       m,
		attempts:      newAttemptMemory(),
		locations:     make(map[string]*time.Location),
	}
	r.SetOnline(o.online)
	return r
}

// SetOnline attaches the online path (nil detaches it: the till decides offline).
// Attempts already under way finish on the path they started with.
func (r *Redeemer) SetOnline(o Online) {
	if o == nil {
		r.online.Store(nil)
		return
	}
	r.online.Store(&onlineSlot{o})
}

func (r *Redeemer) onlinePath() Online {
	if s := r.online.Load(); s != nil {
		return s.Online
	}
	return nil
}

// Mode reports how the till is deciding right now: "online" while an online path is
// attached and reachable, else "offline".
func (r *Redeemer) Mode() string {
	if o := r.onlinePath(); o != nil && o.Reachable() {
		return tillkeep.ModeOnline
	}
	return tillkeep.ModeOffline
}

// CatalogChanged drops the cached store record and time zone. Sync may call it after
// applying catalog changes; the Redeemer also notices a change by itself, through the
// catalog sync time the ledger hands to every decision.
func (r *Redeemer) CatalogChanged() { r.view.Store(nil) }

// RedeemResult is an accepted redemption.
type RedeemResult struct {
	RedemptionID string
	// Mode says where it was decided: tillkeep.ModeOnline or tillkeep.ModeOffline.
	Mode     string
	Discount tillkeep.Money
	// Replayed is true when the transaction_id had been answered before and this is
	// that first answer again.
	Replayed bool
	// Status is tillkeep.RedemptionAccepted, or RedemptionReversed for a replay of a
	// redemption reversed since.
	Status string
}

// Redeem redeems a coupon for a POS transaction, or refuses with a coded error: a
// refusal (tillkeep.IsRefusal), CodeIdempotencyReuse when the transaction_id was used
// for another request, CodeInvalidRequest, or CodeStorageFull / CodeUnavailable /
// CodeInternal when the till could not record. An accepted redemption is durable in
// the journal before Redeem returns.
func (r *Redeemer) Redeem(ctx context.Context, req RedeemRequest) (RedeemResult, error) {
	if err := req.validate(); err != nil {
		return RedeemResult{}, err
	}
	hash := RequestHash(req)
	unlock, err := r.transactions.lock(ctx, req.TransactionID)
	if err != nil {
		return RedeemResult{}, tillkeep.Wrap(tillkeep.CodeUnavailable, err,
			"gave up waiting for an earlier attempt of transaction %s", req.TransactionID)
	}
	defer unlock()

	// The fast path: a retry of an answered transaction needs no decision at all.
	stored, found, err := r.ledger.OutcomeByTransaction(ctx, req.TransactionID)
	if err != nil {
		return RedeemResult{}, r.failed(storageFailure("look up the transaction", err))
	}
	if found {
		return r.replay(stored, hash)
	}

	// The redemption id is made once per attempt, before any online call, and kept
	// through the offline fallback: a platform that did get the online call sees the
	// journal upload of the same redemption, not a second one.
	redemptionID, ok := r.attempts.recall(req.TransactionID, hash)
	intents, durable := r.ledger.(intentLedger)
	if !ok && durable {
		// An attempt that asked the platform before the till restarted.
		if h, id, found, err := intents.Intent(ctx, req.TransactionID); err == nil && found && h == hash {
			redemptionID, ok = id, true
		}
	}
	if !ok {
		id, err := uuid.NewV7()
		if err != nil {
			return RedeemResult{}, r.failed(tillkeep.Wrap(tillkeep.CodeInternal, err, "make a redemption id"))
		}
		redemptionID = id.String()
	}

	var accepted *OnlineResult
	if online := r.onlinePath(); online != nil {
		// The platform may accept this and the till die before journaling the answer:
		// the id goes to disk first, so the POS's retry presents the same redemption.
		// While the platform is marked down the online path does not contact it, and
		// the offline path pays no extra write.
		if durable && !ok && online.Reachable() {
			if err := intents.RememberIntent(ctx, req.TransactionID, hash, redemptionID); err != nil {
				return RedeemResult{}, r.failed(storageFailure("remember the redemption attempt", err))
			}
		}
		res, err := r.redeemOnline(ctx, online, req, redemptionID)
		switch classifyOnline(err) {
		case onlineAccepted:
			accepted = &res
			if res.RedemptionID != "" && res.RedemptionID != redemptionID {
				// The platform already held this POS transaction under the id of an
				// earlier attempt whose answer the till lost (a crash between the two):
				// journal it under the platform's id so the upload deduplicates.
				r.log.Warn("platform recognised the transaction under an earlier redemption id",
					"transaction_id", req.TransactionID, "sent", redemptionID, "platform", res.RedemptionID)
				redemptionID = res.RedemptionID
			}
		case onlineRefused:
			r.attempts.forget(req.TransactionID)
			if durable {
				if err := intents.ForgetIntent(ctx, req.TransactionID); err != nil {
					r.log.Warn("forget a refused redemption attempt", "transaction_id", req.TransactionID, "err", err)
				}
			}
			r.refused(tillkeep.ModeOnline, req, err)
			return RedeemResult{}, err
		case onlineNoDecision:
			// The call may have landed: until this transaction is recorded, a retry
			// must present the same redemption id.
			r.attempts.remember(req.TransactionID, hash, redemptionID)
			r.metrics.onlineFallbacks.Inc()
			r.log.Info("platform gave no decision; deciding offline",
				"transaction_id", req.TransactionID, "redemption_id", redemptionID, "err", err)
		}
	}

	out, replayed, err := r.record(ctx, req, hash, redemptionID, r.moment(), accepted)
	if err != nil {
		if errors.Is(err, &tillkeep.Error{Code: tillkeep.CodeIdempotencyReuse}) {
			return RedeemResult{}, err
		}
		if tillkeep.IsRefusal(tillkeep.ErrorCode(err)) && accepted == nil {
			r.refused(tillkeep.ModeOffline, req, err)
			return RedeemResult{}, err
		}
		if accepted != nil {
			// The platform holds this redemption but the till could not journal it: a
			// retry must send the same id so the platform answers it again.
			r.attempts.remember(req.TransactionID, hash, redemptionID)
			r.log.Error("platform accepted a redemption the till could not record",
				"transaction_id", req.TransactionID, "redemption_id", redemptionID, "err", err)
			if tillkeep.IsRefusal(tillkeep.ErrorCode(err)) {
				// The ledger refused what the platform accepted (a coupon not yet in the
				// till's cache): not a refusal the POS should show the customer.
				return RedeemResult{}, r.failed(tillkeep.Wrap(tillkeep.CodeUnavailable, err,
					"the platform accepted the redemption but the till cannot record it yet; retry the same request"))
			}
		}
		return RedeemResult{}, r.failed(storageFailure("record the redemption", err))
	}
	r.attempts.forget(req.TransactionID)
	if replayed {
		return r.replay(out, hash)
	}
	r.metrics.redemptions.WithLabelValues(out.Mode, outcomeAccepted).Inc()
	return RedeemResult{
		RedemptionID: out.RedemptionID,
		Mode:         out.Mode,
		Discount:     out.Discount,
		Status:       out.Status,
	}, nil
}

func (r *Redeemer) redeemOnline(ctx context.Context, online Online, req RedeemRequest, redemptionID string) (OnlineResult, error) {
	ctx, cancel := context.WithTimeout(ctx, r.onlineTimeout)
	defer cancel()
	return online.Redeem(ctx, OnlineRedemption{
		RedemptionID:  redemptionID,
		TransactionID: req.TransactionID,
		Code:          req.Code,
		CustomerID:    req.CustomerID,
		Bill:          req.Bill,
		StoreID:       r.storeID,
		TillID:        r.tillID,
		At:            r.now().UTC(),
	})
}

// record appends the redemption through the ledger, deciding offline inside its write
// transaction unless the platform already accepted it.
// intentLedger is implemented by ledgers that keep an attempt's redemption id on disk
// until the transaction is journaled (store.DB, memstore).
type intentLedger interface {
	RememberIntent(ctx context.Context, transactionID, requestHash, redemptionID string) error
	Intent(ctx context.Context, transactionID string) (requestHash, redemptionID string, ok bool, err error)
	ForgetIntent(ctx context.Context, transactionID string) error
}

// moment is when an event happens, by the till's own clock (kept in the journal) and
// by its estimate of the platform's clock (used to judge rules and stamp the HLC).
type moment struct{ wall, judged time.Time }

func (r *Redeemer) moment() moment { return moment{wall: r.now(), judged: r.platformNow()} }

func (r *Redeemer) record(ctx context.Context, req RedeemRequest, hash, redemptionID string, at moment, accepted *OnlineResult) (tillkeep.Outcome, bool, error) {
	view, err := r.currentView(ctx)
	if err != nil {
		return tillkeep.Outcome{}, false, err
	}
	attempt := offlineAttempt{code: req.Code, customerID: req.CustomerID, bill: req.Bill, tillID: r.tillID, now: at.judged}
	for reloads := 0; ; reloads++ {
		strict := reloads < maxViewReloads
		decidingView := view
		out, replayed, err := r.ledger.Record(ctx, tillkeep.RecordRequest{
			TransactionID: req.TransactionID,
			RequestHash:   hash,
			Code:          req.Code,
			CustomerID:    req.CustomerID,
			// What the platform accepted is journaled even for a coupon this till has
			// not cached yet: the customer has the discount either way.
			AllowUncached: accepted != nil,
			Decide: func(st tillkeep.LocalState) (tillkeep.JournalEntry, error) {
				entry := tillkeep.JournalEntry{
					EntryID:       redemptionID,
					Kind:          tillkeep.EntryRedemption,
					RedemptionID:  redemptionID,
					TransactionID: req.TransactionID,
					Code:          req.Code,
					OfferID:       st.Offer.ID,
					CustomerID:    req.CustomerID,
					Bill:          req.Bill,
					WallTime:      at.wall.UTC(),
					HLC:           tillkeep.NextHLC(st.LastHLC, at.judged.UnixMilli()),
				}
				if accepted != nil {
					entry.Mode = tillkeep.ModeOnline
					entry.Discount = accepted.Discount
					if entry.OfferID == "" {
						entry.OfferID = accepted.OfferID
					}
					return entry, nil
				}
				if strict && !st.CatalogSyncedAt.Equal(decidingView.syncedAt) {
					return tillkeep.JournalEntry{}, errCatalogChanged
				}
				discount, refusal := judgeOffline(r.policy, decidingView, st, attempt)
				if refusal != nil {
					return tillkeep.JournalEntry{}, refusal
				}
				entry.Mode = tillkeep.ModeOffline
				entry.Discount = discount
				return entry, nil
			},
		})
		switch {
		case errors.Is(err, errCatalogChanged):
			if view, err = r.reloadView(ctx); err != nil {
				return tillkeep.Outcome{}, false, err
			}
			continue
		case accepted == nil && tillkeep.ErrorCode(err) == tillkeep.CodeUnknownCoupon:
			// The ledger refuses a code it does not hold without asking us; a till
			// that cannot decide offline at all should say why instead.
			return out, replayed, r.refineUnknown(ctx, at.judged, err)
		}
		return out, replayed, err
	}
}

// refineUnknown turns "unknown coupon" into the till-wide offline refusal that comes
// first (offline disabled, no or a stale catalog, outage budget spent): a till that
// never received its catalog must say so, not claim the coupon does not exist.
func (r *Redeemer) refineUnknown(ctx context.Context, now time.Time, unknown error) error {
	status, err := r.ledger.Status(ctx)
	if err != nil {
		return unknown
	}
	if refusal := r.policy.gate(status.SyncedAt, status.OfflineRedemptions, now); refusal != nil {
		return refusal
	}
	return unknown
}

func (r *Redeemer) replay(stored tillkeep.Outcome, hash string) (RedeemResult, error) {
	if stored.RequestHash != hash {
		r.metrics.redemptions.WithLabelValues(stored.Mode, outcomeConflict).Inc()
		return RedeemResult{}, tillkeep.Errorf(tillkeep.CodeIdempotencyReuse,
			"transaction_id %s was already used with a different code, bill or customer", stored.TransactionID)
	}
	r.metrics.redemptions.WithLabelValues(stored.Mode, outcomeReplayed).Inc()
	return RedeemResult{
		RedemptionID: stored.RedemptionID,
		Mode:         stored.Mode,
		Discount:     stored.Discount,
		Replayed:     true,
		Status:       stored.Status,
	}, nil
}

func (r *Redeemer) refused(mode string, req RedeemRequest, err error) {
	code := tillkeep.ErrorCode(err)
	r.metrics.redemptions.WithLabelValues(mode, outcomeRefused).Inc()
	r.metrics.refusals.WithLabelValues(string(code)).Inc()
	r.log.Info("redemption refused", "mode", mode, "code", code, "rule", tillkeep.ErrorRule(err),
		"transaction_id", req.TransactionID, "coupon", req.Code, "reason", tillkeep.ErrorMessage(err))
}

func (r *Redeemer) failed(err error) error {
	r.metrics.redemptions.WithLabelValues("none", outcomeFailed).Inc()
	return err
}

// ValidateResult is the answer to a validation.
type ValidateResult struct {
	Valid    bool
	Discount tillkeep.Money
	// Refusal says why the coupon would be refused (nil when valid).
	Refusal *tillkeep.Error
	// Mode says who judged: the platform (online) or the till (offline).
	Mode string
}

// Validate says whether Redeem would accept the coupon for this bill now, and with
// what discount, without recording anything. The error is for requests that cannot be
// judged at all (malformed, storage failure); a refusal is a result.
func (r *Redeemer) Validate(ctx context.Context, req ValidateRequest) (ValidateResult, error) {
	if err := req.validate(); err != nil {
		return ValidateResult{}, err
	}
	if online := r.onlinePath(); online != nil {
		res, err := r.validateOnline(ctx, online, req)
		switch classifyOnline(err) {
		case onlineAccepted:
			return r.validated(ValidateResult{Valid: true, Discount: res.Discount, Mode: tillkeep.ModeOnline}), nil
		case onlineRefused:
			var refusal *tillkeep.Error
			errors.As(err, &refusal)
			return r.validated(ValidateResult{Refusal: refusal, Mode: tillkeep.ModeOnline}), nil
		case onlineNoDecision:
			r.metrics.onlineFallbacks.Inc()
			r.log.Debug("platform gave no decision on a validation; judging offline", "err", err)
		}
	}

	now := r.platformNow()
	view, err := r.currentView(ctx)
	if err != nil {
		return ValidateResult{}, err
	}
	st, err := r.ledger.Lookup(ctx, req.Code, req.CustomerID)
	if err != nil {
		if tillkeep.ErrorCode(err) != tillkeep.CodeUnknownCoupon {
			return ValidateResult{}, storageFailure("look up the coupon", err)
		}
		var refusal *tillkeep.Error
		errors.As(r.refineUnknown(ctx, now, err), &refusal)
		return r.validated(ValidateResult{Refusal: refusal, Mode: tillkeep.ModeOffline}), nil
	}
	if !st.CatalogSyncedAt.Equal(view.syncedAt) {
		if view, err = r.reloadView(ctx); err != nil {
			return ValidateResult{}, err
		}
	}
	discount, refusal := judgeOffline(r.policy, view, st, offlineAttempt{
		code: req.Code, customerID: req.CustomerID, bill: req.Bill, tillID: r.tillID, now: now,
	})
	if refusal != nil {
		return r.validated(ValidateResult{Refusal: refusal, Mode: tillkeep.ModeOffline}), nil
	}
	return r.validated(ValidateResult{Valid: true, Discount: discount, Mode: tillkeep.ModeOffline}), nil
}

func (r *Redeemer) validateOnline(ctx context.Context, online Online, req ValidateRequest) (OnlineResult, error) {
	ctx, cancel := context.WithTimeout(ctx, r.onlineTimeout)
	defer cancel()
	return online.Validate(ctx, OnlineValidation{
		Code:       req.Code,
		CustomerID: req.CustomerID,
		Bill:       req.Bill,
		StoreID:    r.storeID,
		TillID:     r.tillID,
		At:         r.now().UTC(),
	})
}

func (r *Redeemer) validated(res ValidateResult) ValidateResult {
	reason := ""
	if res.Refusal != nil {
		reason = string(res.Refusal.Code)
	}
	r.metrics.validations.WithLabelValues(res.Mode, fmt.Sprint(res.Valid)).Inc()
	if reason != "" {
		r.log.Debug("validation refused", "mode", res.Mode, "code", reason, "rule", res.Refusal.Rule)
	}
	return res
}

// ReverseResult is the answer to a reversal.
type ReverseResult struct {
	RedemptionID string
	Status       string // always tillkeep.RedemptionReversed
}

// Reverse reverses a redemption made at this till, recording the reversal as its own
// journal entry. Reversing an already reversed redemption answers the same again. A
// redemption this till did not make is CodeNotFound.
func (r *Redeemer) Reverse(ctx context.Context, redemptionID string) (ReverseResult, error) {
	if err := checkText("redemption id", redemptionID, 1, maxRedemptionIDLength); err != nil {
		return ReverseResult{}, err
	}
	unlock, err := r.reversals.lock(ctx, redemptionID)
	if err != nil {
		return ReverseResult{}, tillkeep.Wrap(tillkeep.CodeUnavailable, err,
			"gave up waiting for an earlier reversal of %s", redemptionID)
	}
	defer unlock()

	id, err := uuid.NewV7()
	if err != nil {
		return ReverseResult{}, tillkeep.Wrap(tillkeep.CodeInternal, err, "make a journal entry id")
	}
	entryID, at := id.String(), r.moment()
	var appended atomic.Bool // set by Decide, which runs only when a reversal is appended
	out, err := r.ledger.Reverse(ctx, tillkeep.ReverseRequest{
		RedemptionID: redemptionID,
		Decide: func(original tillkeep.JournalEntry, last tillkeep.HLC) (tillkeep.JournalEntry, error) {
			appended.Store(true)
			return tillkeep.JournalEntry{
				EntryID:       entryID,
				Kind:          tillkeep.EntryReversal,
				RedemptionID:  original.RedemptionID,
				StoreID:       original.StoreID,
				TillID:        original.TillID,
				TransactionID: original.TransactionID,
				Code:          original.Code,
				OfferID:       original.OfferID,
				CustomerID:    original.CustomerID,
				Bill:          original.Bill,
				Discount:      original.Discount,
				Mode:          original.Mode,
				WallTime:      at.wall.UTC(),
				HLC:           tillkeep.NextHLC(last, at.judged.UnixMilli()),
			}, nil
		},
	})
	if err != nil {
		code := tillkeep.ErrorCode(err)
		r.metrics.reversals.WithLabelValues(string(code)).Inc()
		if code == tillkeep.CodeNotFound || code == tillkeep.CodeNotReversible {
			r.log.Info("reversal refused", "redemption_id", redemptionID, "code", code)
			return ReverseResult{}, err
		}
		return ReverseResult{}, storageFailure("record the reversal", err)
	}
	if appended.Load() {
		r.metrics.reversals.WithLabelValues("reversed").Inc()
		r.log.Info("redemption reversed", "redemption_id", redemptionID, "transaction_id", out.TransactionID)
		if online := r.onlinePath(); online != nil {
			r.notifyReversal(ctx, online, OnlineReversal{RedemptionID: redemptionID, EntryID: entryID, At: at.wall.UTC()})
		}
	} else {
		r.metrics.reversals.WithLabelValues("replayed").Inc()
	}
	return ReverseResult{RedemptionID: redemptionID, Status: tillkeep.RedemptionReversed}, nil
}

// notifyReversal tells the platform at once; the journal upload is the guarantee, so
// failures are only logged.
func (r *Redeemer) notifyReversal(ctx context.Context, online Online, rev OnlineReversal) {
	ctx, cancel := context.WithTimeout(ctx, r.onlineTimeout)
	defer cancel()
	if err := online.Reverse(ctx, rev); err != nil {
		r.log.Warn("could not tell the platform about a reversal now; the journal upload will",
			"redemption_id", rev.RedemptionID, "err", err)
	}
}

// Status is the till's state for /v1/status.
type Status struct {
	StoreID, TillID    string
	Mode               string
	PendingUploads     int
	Coupons            int
	SyncedAt           time.Time // zero: never synced
	OfflineRedemptions int
}

// Status summarises the till.
func (r *Redeemer) Status(ctx context.Context) (Status, error) {
	st, err := r.ledger.Status(ctx)
	if err != nil {
		return Status{}, storageFailure("read the ledger status", err)
	}
	return Status{
		StoreID:            r.storeID,
		TillID:             r.tillID,
		Mode:               r.Mode(),
		PendingUploads:     st.PendingUploads,
		Coupons:            st.Coupons,
		SyncedAt:           st.SyncedAt,
		OfflineRedemptions: st.OfflineRedemptions,
	}, nil
}

// currentView returns the cached store record, reading it on first use.
func (r *Redeemer) currentView(ctx context.Context) (storeView, error) {
	if v := r.view.Load(); v != nil {
		return *v, nil
	}
	return r.reloadView(ctx)
}

// reloadView re-reads the store record and resolves its time zone. The sync time is
// read first: if the catalog changes between the two reads, the next decision sees a
// newer sync time than the view's and reloads again.
func (r *Redeemer) reloadView(ctx context.Context) (storeView, error) {
	r.viewMu.Lock()
	defer r.viewMu.Unlock()
	status, err := r.ledger.Status(ctx)
	if err != nil {
		return storeView{}, storageFailure("read the catalog status", err)
	}
	v := storeView{syncedAt: status.SyncedAt, location: time.UTC}
	if !status.SyncedAt.IsZero() || status.Coupons > 0 {
		store, err := r.ledger.Store(ctx)
		switch {
		case err == nil:
			v.store = store
			v.location = r.location(store)
		case tillkeep.ErrorCode(err) != tillkeep.CodeNotFound:
			return storeView{}, storageFailure("read the store record", err)
		}
	}
	r.view.Store(&v)
	return v, nil
}

// location resolves a store's time zone once per name. Called with viewMu held.
func (r *Redeemer) location(store tillkeep.Store) *time.Location {
	if store.Timezone == "" {
		return time.UTC
	}
	if loc, ok := r.locations[store.Timezone]; ok {
		return loc
	}
	loc, err := time.LoadLocation(store.Timezone)
	if err != nil {
		// The platform validates time zones, so only a damaged cache gets here. Refusing
		// every redemption over it would stop the till; UTC keeps it selling and the
		// platform re-judges every offline redemption on upload.
		r.log.Error("cannot load the store's time zone; judging store-local rules in UTC",
			"store_id", store.ID, "timezone", store.Timezone, "err", err)
		loc = time.UTC
	}
	r.locations[store.Timezone] = loc
	return loc
}
