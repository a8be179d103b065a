package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/sync/wire"
)

// Push uploads every journal entry the platform has not acknowledged, in batches, and
// moves the till's acknowledged point to the platform's. The platform's point is the
// truth in both directions: when it is behind the till's (a platform restored from an
// older backup, or replaced), the till lowers its point and sends the entries again;
// entries are made once, so a re-send is recognised, never doubled.
func (s *Syncer) Push(ctx context.Context) error {
	c := s.currentClient()
	if c == nil {
		return errors.New("push journal: till not enrolled")
	}
	// Ask where the platform stands first: with nothing pending this is how a
	// platform that lost entries is noticed.
	st, err := c.Position(ctx)
	if err != nil {
		return s.unreachable("read the platform's acknowledged point", err)
	}
	s.breaker.Success()
	s.observeServerTime(ctx, st.ServerTime)
	if err := s.adoptPlatformPoint(ctx, st.Epoch, st.AckedSeq); err != nil {
		return err
	}
	for ctx.Err() == nil {
		acked, err := s.ledger.AckedSeq(ctx)
		if err != nil {
			return fmt.Errorf("push journal: %w", err)
		}
		entries, err := s.ledger.Pending(ctx, acked, pushBatch)
		if err != nil {
			return fmt.Errorf("push journal: %w", err)
		}
		if len(entries) == 0 {
			s.markPushed()
			return nil
		}
		resp, err := c.Push(ctx, wire.PushRequest{Epoch: s.epoch(), Entries: entries})
		if err != nil {
			return s.unreachable(fmt.Sprintf("push %d journal entries from seq %d", len(entries), entries[0].Seq), err)
		}
		s.breaker.Success()
		s.observeServerTime(ctx, resp.ServerTime)
		s.noteConflicts(ctx, resp.Results)
		if err := s.adoptPlatformPoint(ctx, resp.Epoch, resp.AckedSeq); err != nil {
			return err
		}
		if resp.AckedSeq < entries[0].Seq-1+uint64(len(entries)) && resp.ResumeFrom == 0 && resp.AckedSeq >= acked {
			// The platform took less than it was sent without naming a gap: send the rest
			// in the next round rather than spin.
			s.log.Warn("platform acknowledged part of an upload", "sent_to", entries[len(entries)-1].Seq, "acked", resp.AckedSeq)
			return nil
		}
		s.log.Debug("journal pushed", "entries", len(entries), "acked_seq", resp.AckedSeq)
	}
	return ctx.Err()
}

// adoptPlatformPoint moves the till's acknowledged point to the platform's.
func (s *Syncer) adoptPlatformPoint(ctx context.Context, epoch string, platformAcked uint64) error {
	if err := s.adoptEpoch(epoch); err != nil {
		return err
	}
	local, err := s.ledger.AckedSeq(ctx)
	if err != nil {
		return fmt.Errorf("read acknowledged point: %w", err)
	}
	switch {
	case platformAcked > local:
		if err := s.ledger.Acknowledge(ctx, platformAcked); err != nil {
			return fmt.Errorf("record acknowledgement up to %d: %w", platformAcked, err)
		}
	case platformAcked < local:
		s.log.Warn("platform holds fewer of this till's entries than it acknowledged before; sending them again",
			"platform_acked", platformAcked, "till_acked", local)
		if err := s.ledger.SetAckedSeq(ctx, platformAcked); err != nil {
			return fmt.Errorf("rewind acknowledged point to %d: %w", platformAcked, err)
		}
	}
	return nil
}

// adoptEpoch records the platform's epoch; a change means another database answers.
func (s *Syncer) adoptEpoch(epoch string) error {
	s.mu.Lock()
	old := s.creds.Epoch
	s.mu.Unlock()
	if epoch == "" || epoch == old {
		return nil
	}
	if old != "" {
		s.log.Warn("platform epoch changed: the platform's database was replaced; its acknowledged point is taken as the truth",
			"old_epoch", old, "new_epoch", epoch)
	}
	s.mu.Lock()
	s.creds.Epoch = epoch
	creds := s.creds
	s.mu.Unlock()
	return SaveCredentials(s.cfg.DataDir, creds)
}

func (s *Syncer) epoch() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.creds.Epoch
}

// noteConflicts keeps the outcomes of this till's redemptions that are part of a
// conflict case, for /v1/status: from push results, and from the catalog feed when
// reconciliation changed a redemption after its upload was answered. A redemption is
// counted once; a later outcome for it replaces the earlier one.
func (s *Syncer) noteConflicts(ctx context.Context, results []wire.EntryResult) {
	s.mu.Lock()
	cs := &s.status.Conflicts
	var changed []wire.EntryResult
	for _, r := range results {
		// A re-sent entry (after a lost answer or a platform restore) was reported when
		// it was first applied.
		if r.Duplicate {
			continue
		}
		inCase := r.ConflictKind != "" || r.Status == tillkeep.RedemptionConflict
		i := slices.IndexFunc(cs.Recent, func(e wire.EntryResult) bool { return e.RedemptionID == r.RedemptionID })
		switch {
		case i >= 0:
			if cs.Recent[i].Status == r.Status && cs.Recent[i].ConflictID == r.ConflictID {
				continue
			}
			if r.Seq == 0 {
				r.Seq = cs.Recent[i].Seq
			}
			cs.Recent[i] = r
		case inCase:
			cs.Total++
			cs.Recent = append(cs.Recent, r)
		default:
			continue
		}
		changed = append(changed, r)
	}
	if n := len(cs.Recent); n > maxRecentConflicts {
		cs.Recent = append([]wire.EntryResult{}, cs.Recent[n-maxRecentConflicts:]...)
	}
	b, _ := json.Marshal(cs)
	s.mu.Unlock()
	if len(changed) == 0 {
		return
	}
	for _, r := range changed {
		s.log.Warn("platform flagged a redemption of this till", "redemption_id", r.RedemptionID,
			"status", r.Status, "kind", r.ConflictKind, "conflict_id", r.ConflictID)
	}
	if err := s.ledger.SetCursor(ctx, cursorConflicts, string(b)); err != nil {
		s.log.Warn("keep conflict outcomes", "err", err)
	}
}

// noteOutcomes takes the redemption outcomes a catalog delta brought.
func (s *Syncer) noteOutcomes(ctx context.Context, outcomes []wire.RedemptionOutcome) {
	if len(outcomes) == 0 {
		return
	}
	results := make([]wire.EntryResult, 0, len(outcomes))
	for _, o := range outcomes {
		if o.TillID != "" && o.TillID != s.cfg.TillID {
			continue
		}
		results = append(results, wire.EntryResult{RedemptionID: o.RedemptionID, Status: o.Status,
			ConflictKind: o.ConflictKind, ConflictID: o.ConflictID})
	}
	s.noteConflicts(ctx, results)
}

func (s *Syncer) markPushed() {
	s.mu.Lock()
	s.status.LastPushAt = s.now().UTC()
	s.mu.Unlock()
}

// unreachable opens the breaker for transport failures and wraps err with what was
// being done. A refusal from the platform leaves the breaker closed.
func (s *Syncer) unreachable(what string, err error) error {
	if errors.Is(err, ErrUnreachable) {
		s.breaker.Failure()
	} else {
		s.breaker.Success()
	}
	return fmt.Errorf("%s: %w", what, err)
}
