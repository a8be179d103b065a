package issuance

import (
	"strings"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep"
)

var now = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func TestCheck(t *testing.T) {
	day := 24 * time.Hour
	for _, tc := range []struct {
		name  string
		rules tillkeep.IssuanceRules
		h     History
		want  string // the rule, "" when allowed
	}{
		{name: "no rules", h: History{CustomerIssued: 99, CustomerLastIssuedAt: now, SeriesIssued: 1e9}},

		{name: "under max per customer", rules: tillkeep.IssuanceRules{MaxPerCustomer: 3}, h: History{CustomerIssued: 2}},
		{name: "at max per customer", rules: tillkeep.IssuanceRules{MaxPerCustomer: 3}, h: History{CustomerIssued: 3}, want: RuleMaxPerCustomer},
		{name: "over max per customer", rules: tillkeep.IssuanceRules{MaxPerCustomer: 1}, h: History{CustomerIssued: 4}, want: RuleMaxPerCustomer},

		{name: "first issue with a gap", rules: tillkeep.IssuanceRules{MinDaysBetweenIssues: 7}},
		{name: "inside the gap", rules: tillkeep.IssuanceRules{MinDaysBetweenIssues: 1},
			h: History{CustomerIssued: 1, CustomerLastIssuedAt: now.Add(-day + time.Second)}, want: RuleMinDaysBetweenIssues},
		{name: "same moment", rules: tillkeep.IssuanceRules{MinDaysBetweenIssues: 1},
			h: History{CustomerIssued: 1, CustomerLastIssuedAt: now}, want: RuleMinDaysBetweenIssues},
		{name: "exactly the gap", rules: tillkeep.IssuanceRules{MinDaysBetweenIssues: 2},
			h: History{CustomerIssued: 1, CustomerLastIssuedAt: now.Add(-2 * day)}},
		{name: "after the gap", rules: tillkeep.IssuanceRules{MinDaysBetweenIssues: 2},
			h: History{CustomerIssued: 1, CustomerLastIssuedAt: now.Add(-3 * day)}},

		{name: "under the series limit", rules: tillkeep.IssuanceRules{SeriesLimit: 2}, h: History{SeriesIssued: 1}},
		{name: "at the series limit", rules: tillkeep.IssuanceRules{SeriesLimit: 2}, h: History{SeriesIssued: 2}, want: RuleSeriesLimit},

		{name: "first generic", h: History{Generic: true}},
		{name: "second generic", h: History{Generic: true, CustomerHasGeneric: true, CustomerIssued: 1}, want: RuleOneGenericPerCustomer},
		{name: "generic ignores the per-customer count and gap",
			rules: tillkeep.IssuanceRules{MaxPerCustomer: 1, MinDaysBetweenIssues: 30},
			h:     History{Generic: true, CustomerIssued: 1, CustomerLastIssuedAt: now}},
		{name: "generic within the series limit", rules: tillkeep.IssuanceRules{SeriesLimit: 5}, h: History{Generic: true, SeriesIssued: 5}, want: RuleSeriesLimit},
		{name: "a unique code after a generic one", rules: tillkeep.IssuanceRules{MaxPerCustomer: 2},
			h: History{CustomerHasGeneric: true, CustomerIssued: 1}},

		{name: "customer limit named before the series'", rules: tillkeep.IssuanceRules{MaxPerCustomer: 1, SeriesLimit: 1},
			h: History{CustomerIssued: 1, SeriesIssued: 1}, want: RuleMaxPerCustomer},
		{name: "count named before the gap", rules: tillkeep.IssuanceRules{MaxPerCustomer: 1, MinDaysBetweenIssues: 1},
			h: History{CustomerIssued: 1, CustomerLastIssuedAt: now}, want: RuleMaxPerCustomer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.rules, tc.h, now)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check = nil, want %s", tc.want)
			}
			if err.Code != tillkeep.CodeIssuanceLimit || err.Rule != tc.want || err.Message == "" {
				t.Fatalf("Check = %+v, want code %s rule %s and a message", err, tillkeep.CodeIssuanceLimit, tc.want)
			}
		})
	}
}

func TestCheckMessagesSayWhen(t *testing.T) {
	last := time.Date(2026, 3, 10, 9, 30, 0, 0, time.UTC)
	err := Check(tillkeep.IssuanceRules{MinDaysBetweenIssues: 1}, History{CustomerIssued: 1, CustomerLastIssuedAt: last}, now)
	if err == nil || !strings.Contains(err.Message, "2026-03-11T09:30:00Z") || !strings.Contains(err.Message, "1 day apart") {
		t.Fatalf("message %v should name the next allowed issue", err)
	}
	err = Check(tillkeep.IssuanceRules{MaxPerCustomer: 3}, History{CustomerIssued: 3}, now)
	if err == nil || !strings.Contains(err.Message, "limit is 3") {
		t.Fatalf("message %v should name the limit", err)
	}
}

func TestValidateRules(t *testing.T) {
	if err := ValidateRules(tillkeep.IssuanceRules{MaxPerCustomer: 3, MinDaysBetweenIssues: 1, SeriesLimit: 10}); err != nil {
		t.Fatal(err)
	}
	for field, rules := range map[string]tillkeep.IssuanceRules{
		"max_per_customer":        {MaxPerCustomer: -1},
		"min_days_between_issues": {MinDaysBetweenIssues: -2},
		"series_limit":            {SeriesLimit: -3},
	} {
		err := ValidateRules(rules)
		if err == nil || err.Code != tillkeep.CodeInvalidRequest || !strings.Contains(err.Message, field) {
			t.Errorf("%s: ValidateRules = %v, want invalid_request naming the field", field, err)
		}
	}
}
