package sync

import (
	"context"
	"errors"
	"fmt"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/agent"
	"github.com/tillkeep/tillkeep/sync/wire"
)

// onlinePath is the agent's route to the platform: it asks only while the breaker is
// closed, opens the breaker on any unreachable answer, and turns every failure that is
// not the platform's own refusal into agent.ErrPlatformUnreachable, so the agent falls
// back to offline with the same redemption id.
type onlinePath struct {
	s *Syncer
}

var _ agent.Online = onlinePath{}

func (o onlinePath) client() (*Client, error) {
	c := o.s.currentClient()
	if c == nil {
		return nil, fmt.Errorf("%w: till not enrolled yet", agent.ErrPlatformUnreachable)
	}
	if !o.s.breaker.Allow() {
		return nil, fmt.Errorf("%w: platform marked down, probing in the background", agent.ErrPlatformUnreachable)
	}
	return c, nil
}

// settle records what an online call says about reachability and translates its error.
func (o onlinePath) settle(err error) error {
	if err == nil {
		o.s.breaker.Success()
		return nil
	}
	var coded *tillkeep.Error
	if errors.As(err, &coded) {
		// The platform answered: it is reachable, whatever it said.
		o.s.breaker.Success()
		if coded.Code == tillkeep.CodeUnauthorized {
			o.s.log.Error("platform refused the till's credentials; re-enroll the till (tillkeep agent enroll)")
			return fmt.Errorf("%w: till credentials refused", agent.ErrPlatformUnreachable)
		}
		if tillkeep.IsRefusal(coded.Code) {
			return coded
		}
		return fmt.Errorf("%w: platform answered %s", agent.ErrPlatformUnreachable, coded.Code)
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	o.s.breaker.Failure()
	return fmt.Errorf("%w: %v", agent.ErrPlatformUnreachable, err)
}

func (o onlinePath) Redeem(ctx context.Context, r agent.OnlineRedemption) (agent.OnlineResult, error) {
	c, err := o.client()
	if err != nil {
		return agent.OnlineResult{}, err
	}
	resp, err := c.Redeem(ctx, wire.RedeemRequest{
		RedemptionID:  r.RedemptionID,
		TransactionID: r.TransactionID,
		Code:          r.Code,
		Bill:          r.Bill,
		CustomerID:    r.CustomerID,
		WallTime:      r.At.UTC(),
		HLC:           o.s.stamp(r.At),
	})
	if err := o.settle(err); err != nil {
		return agent.OnlineResult{}, err
	}
	o.s.measureOffset(ctx, resp.ServerTime)
	return agent.OnlineResult{RedemptionID: resp.RedemptionID, Discount: resp.Discount}, nil
}

func (o onlinePath) Validate(ctx context.Context, v agent.OnlineValidation) (agent.OnlineResult, error) {
	c, err := o.client()
	if err != nil {
		return agent.OnlineResult{}, err
	}
	resp, err := c.Validate(ctx, wire.ValidateRequest{Code: v.Code, Bill: v.Bill, CustomerID: v.CustomerID})
	if err := o.settle(err); err != nil {
		return agent.OnlineResult{}, err
	}
	if !resp.Valid {
		return agent.OnlineResult{}, &tillkeep.Error{Code: tillkeep.Code(resp.Reason), Rule: resp.Rule,
			Message: "the platform refused the coupon: " + resp.Reason}
	}
	var d tillkeep.Money
	if resp.Discount != nil {
		d = *resp.Discount
	}
	return agent.OnlineResult{Discount: d}, nil
}

func (o onlinePath) Reverse(ctx context.Context, r agent.OnlineReversal) error {
	c, err := o.client()
	if err != nil {
		return err
	}
	_, err = c.Reverse(ctx, r.RedemptionID)
	return o.settle(err)
}

func (o onlinePath) Reachable() bool {
	return o.s.currentClient() != nil && o.s.breaker.Allow()
}
