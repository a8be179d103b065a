package platform

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/internal/httpapi"
	"github.com/tillkeep/tillkeep/sync/wire"
)

// The till API's messages are sync/wire's, so that the till's client and the
// platform cannot drift apart; the platform's names stay as aliases.

// EnrollRequest is a till's first contact: it presents the shared enroll token with
// its own ids.
type EnrollRequest = wire.EnrollRequest

// EnrollResult hands the till its own credentials. Token is shown once; the platform
// keeps only its hash.
type EnrollResult = wire.EnrollResponse

// Enroll gives a till of a known store its own bearer token. A wrong enroll token is
// unauthorized, an unknown store is unknown_store (404), and a till that already holds
// credentials is till_already_enrolled (409): ops must reset its enrollment first (ResetTill), so that a
// leaked enroll token cannot take over a working till.
func (s *Service) Enroll(ctx context.Context, req EnrollRequest) (EnrollResult, error) {
	if !httpapi.TokenEqual(req.EnrollToken, s.cfg.EnrollToken) {
		s.log.Warn("refused enrollment with a wrong enroll token", "store", req.StoreID, "till", req.TillID)
		return EnrollResult{}, tillkeep.Errorf(tillkeep.CodeUnauthorized, "the enroll token is wrong")
	}
	if err := checkID("store_id", req.StoreID); err != nil {
		return EnrollResult{}, err
	}
	if err := checkID("till_id", req.TillID); err != nil {
		return EnrollResult{}, err
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return EnrollResult{}, storageErr(fmt.Errorf("make till token: %w", err), "enroll till")
	}
	token := "tkt_" + base64.RawURLEncoding.EncodeToString(raw[:])

	var (
		res     EnrollResult
		refusal error
	)
	err := s.st.Update(ctx, func(tx Tx) error {
		res, refusal = EnrollResult{}, nil
		now := s.now()
		if _, err := tx.Store(req.StoreID); errors.Is(err, ErrNotFound) {
			refusal = tillkeep.Errorf(tillkeep.CodeUnknownStore, "unknown store %s: ops must create it (PUT /v1/stores/%s) before its tills enroll", req.StoreID, req.StoreID)
			return nil
		} else if err != nil {
			return err
		}
		t, err := tx.Till(req.StoreID, req.TillID)
		switch {
		case errors.Is(err, ErrNotFound):
			t = Till{StoreID: req.StoreID, TillID: req.TillID}
		case err != nil:
			return err
		case t.TokenHash != "":
			refusal = tillkeep.Errorf(tillkeep.CodeTillAlreadyEnrolled, "till %s of store %s is already enrolled under other credentials; ops can reset its enrollment (DELETE /v1/tills/%s/%s/enrollment)", req.TillID, req.StoreID, req.StoreID, req.TillID)
			return nil
		}
		// A re-enrolled till keeps its acknowledged sequence: its journal continues.
		t.TokenHash = hashToken(token)
		t.EnrolledAt = now
		t.LastSeenAt = now
		if err := tx.PutTill(t); err != nil {
			return err
		}
		res = EnrollResult{StoreID: t.StoreID, TillID: t.TillID, Token: token, Epoch: s.st.Epoch(), AckedSeq: t.AckedSeq, ServerTime: now}
		return nil
	})
	if err != nil {
		return EnrollResult{}, storageErr(err, "enroll till")
	}
	if refusal != nil {
		s.log.Warn("refused enrollment", "store", req.StoreID, "till", req.TillID, "reason", tillkeep.ErrorMessage(refusal))
		return EnrollResult{}, refusal
	}
	s.log.Info("till enrolled", "store", req.StoreID, "till", req.TillID)
	return res, nil
}

// AuthenticateTill returns the till holding token.
func (s *Service) AuthenticateTill(ctx context.Context, token string) (TillRef, error) {
	if token == "" {
		return TillRef{}, tillkeep.Errorf(tillkeep.CodeUnauthorized, "missing bearer token")
	}
	var t Till
	err := s.st.View(ctx, func(tx ReadTx) error {
		var err error
		t, err = tx.TillByTokenHash(hashToken(token))
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return TillRef{}, tillkeep.Errorf(tillkeep.CodeUnauthorized, "the till token is not valid; enroll the till")
	}
	if err != nil {
		return TillRef{}, storageErr(err, "authenticate till")
	}
	return TillRef{StoreID: t.StoreID, TillID: t.TillID}, nil
}

// TillView is a till as ops see it: never its token hash.
type TillView struct {
	StoreID    string    `json:"store_id"`
	TillID     string    `json:"till_id"`
	Enrolled   bool      `json:"enrolled"`
	AckedSeq   uint64    `json:"acked_seq"`
	EnrolledAt time.Time `json:"enrolled_at,omitzero"`
	LastSeenAt time.Time `json:"last_seen_at,omitzero"`
}

func viewOfTill(t Till) TillView {
	return TillView{StoreID: t.StoreID, TillID: t.TillID, Enrolled: t.TokenHash != "", AckedSeq: t.AckedSeq,
		EnrolledAt: t.EnrolledAt, LastSeenAt: t.LastSeenAt}
}

// ListTills lists tills, of one store or all.
func (s *Service) ListTills(ctx context.Context, storeID string) ([]TillView, error) {
	out := []TillView{}
	err := s.st.View(ctx, func(tx ReadTx) error {
		out = out[:0]
		ts, err := tx.Tills(storeID)
		for _, t := range ts {
			out = append(out, viewOfTill(t))
		}
		return err
	})
	return out, storageErr(err, "list tills")
}

// ResetTill invalidates a till's token so that it can enroll again (a till reinstalled
// without its credentials). Its acknowledged sequence and history stay.
func (s *Service) ResetTill(ctx context.Context, storeID, tillID, principal string) (TillView, error) {
	var out TillView
	err := s.st.Update(ctx, func(tx Tx) error {
		t, err := tx.Till(storeID, tillID)
		if err != nil {
			return notFound(err, "till %s/%s is not known", storeID, tillID)
		}
		t.TokenHash = ""
		if err := tx.PutTill(t); err != nil {
			return err
		}
		out = viewOfTill(t)
		return nil
	})
	if err != nil {
		return TillView{}, storageErr(err, "reset till")
	}
	s.log.Warn("till enrollment reset", "store", storeID, "till", tillID, "by", principal)
	return out, nil
}
