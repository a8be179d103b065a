package issuance

import (
	"fmt"
	"time"

	"github.com/tillkeep/tillkeep"
)

// Rule names of issuance refusals (error.rule, and the reason in an error report).
const (
	RuleMaxPerCustomer        = "max_per_customer"
	RuleMinDaysBetweenIssues  = "min_days_between_issues"
	RuleSeriesLimit           = "series_limit"
	RuleOneGenericPerCustomer = "one_generic_per_customer"
)

// History is what the limits count, read by the caller just before the issue. It must
// include every issue already made, the earlier rows of the same batch included.
type History struct {
	// CustomerIssued is how many coupons of the offer the customer holds (issued, in any
	// status: a redeemed or revoked coupon was still issued).
	CustomerIssued int
	// CustomerLastIssuedAt is the customer's latest issue of the offer (zero: never).
	CustomerLastIssuedAt time.Time
	// SeriesIssued is how many coupons of the offer were issued in total.
	SeriesIssued int64
	// CustomerHasGeneric says the customer already received the offer's generic code.
	CustomerHasGeneric bool
	// Generic says this issue is of a generic code: the offer's one common code, which
	// everyone receives.
	Generic bool
}

// Check judges one issue at now. It returns nil when the issue may go ahead, or an
// issuance_limit error whose Rule names the limit:
//
//   - one_generic_per_customer: a generic code is issued at most once to a customer. The
//     per-customer count and gap do not apply to generic codes (the model marks them
//     "not applicable"): one is the limit.
//   - max_per_customer: the customer already holds MaxPerCustomer coupons of the offer.
//   - min_days_between_issues: the customer's last issue is less than
//     MinDaysBetweenIssues days (of 24 hours) ago.
//   - series_limit: SeriesLimit coupons of the offer were issued.
//
// The customer's own limits are judged before the series', so a refusal names the most
// specific reason. In the model's four duplicate-customer cases, a file listing one
// customer four times gives: with max 3, rows 1-3 issued and row 4 refused
// (max_per_customer), and every row of a re-upload refused; with max 3 and a gap of one
// day, row 1 issued and rows 2-4 refused (min_days_between_issues); with a series limit
// of 2, rows 1-2 issued and rows 3-4 refused (series_limit); with a generic code, row 1
// issued and rows 2-4 refused (one_generic_per_customer), and every row of a re-upload.
func Check(rules tillkeep.IssuanceRules, h History, now time.Time) *tillkeep.Error {
	if h.Generic {
		if h.CustomerHasGeneric {
			return limit(RuleOneGenericPerCustomer, "the customer already received this offer's generic code; it is issued once per customer")
		}
	} else {
		if rules.MaxPerCustomer > 0 && h.CustomerIssued >= rules.MaxPerCustomer {
			return limit(RuleMaxPerCustomer, "the customer already holds %d coupons of this offer; the limit is %d per customer",
				h.CustomerIssued, rules.MaxPerCustomer)
		}
		if rules.MinDaysBetweenIssues > 0 && !h.CustomerLastIssuedAt.IsZero() {
			gap := time.Duration(rules.MinDaysBetweenIssues) * 24 * time.Hour
			if next := h.CustomerLastIssuedAt.Add(gap); now.Before(next) {
				return limit(RuleMinDaysBetweenIssues, "the customer was issued a coupon of this offer at %s; the next may be issued from %s (%d %s apart)",
					h.CustomerLastIssuedAt.UTC().Format(time.RFC3339), next.UTC().Format(time.RFC3339),
					rules.MinDaysBetweenIssues, plural(rules.MinDaysBetweenIssues, "day", "days"))
			}
		}
	}
	if rules.SeriesLimit > 0 && h.SeriesIssued >= rules.SeriesLimit {
		return limit(RuleSeriesLimit, "%d coupons of this offer were issued; the limit for the series is %d", h.SeriesIssued, rules.SeriesLimit)
	}
	return nil
}

func limit(rule, format string, args ...any) *tillkeep.Error {
	return &tillkeep.Error{Code: tillkeep.CodeIssuanceLimit, Rule: rule, Message: fmt.Sprintf(format, args...)}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// ValidateRules refuses issuance rules that cannot mean anything: negative limits.
// Zero means "no limit" everywhere.
func ValidateRules(rules tillkeep.IssuanceRules) *tillkeep.Error {
	switch {
	case rules.MaxPerCustomer < 0:
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "issuance.max_per_customer must not be negative (0 means no limit), not %d", rules.MaxPerCustomer)
	case rules.MinDaysBetweenIssues < 0:
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "issuance.min_days_between_issues must not be negative (0 means no gap), not %d", rules.MinDaysBetweenIssues)
	case rules.SeriesLimit < 0:
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "issuance.series_limit must not be negative (0 means no limit), not %d", rules.SeriesLimit)
	}
	return nil
}
