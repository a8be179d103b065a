package issuance

import (
	"bytes"
	"encoding/csv"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep"
)

// ledger plays the platform's storage: the history of one offer's issues.
type ledger struct {
	rules     tillkeep.IssuanceRules
	generic   bool
	customers map[string]*customerIssues
	series    int64
}

type customerIssues struct {
	issued  int
	last    time.Time
	generic bool
}

func newLedger(rules tillkeep.IssuanceRules, generic bool) *ledger {
	return &ledger{rules: rules, generic: generic, customers: map[string]*customerIssues{}}
}

type uploadRow struct{ customerID, code string }

// upload runs a file through the platform's loop (see the package comment): Batch,
// then Check against a history that includes the rows already issued, then the issue.
// It returns the issued row numbers and the report's records (header first).
func (l *ledger) upload(t *testing.T, at time.Time, rows ...uploadRow) ([]int, [][]string) {
	t.Helper()
	var out bytes.Buffer
	report := NewReport(&out)
	batch := NewBatch()
	var issued []int
	for i, r := range rows {
		n := i + 1
		if err := batch.Add(n, r.customerID, r.code); err != nil {
			if werr := report.Add(n, r.customerID, r.code, err); werr != nil {
				t.Fatal(werr)
			}
			continue
		}
		c := l.customers[r.customerID]
		if c == nil {
			c = &customerIssues{}
			l.customers[r.customerID] = c
		}
		h := History{CustomerIssued: c.issued, CustomerLastIssuedAt: c.last, SeriesIssued: l.series,
			CustomerHasGeneric: c.generic, Generic: l.generic}
		if err := Check(l.rules, h, at); err != nil {
			if werr := report.Add(n, r.customerID, r.code, err); werr != nil {
				t.Fatal(werr)
			}
			continue
		}
		c.issued++
		c.last = at
		c.generic = c.generic || l.generic
		l.series++
		issued = append(issued, n)
	}
	if err := report.Flush(); err != nil {
		t.Fatal(err)
	}
	records, err := csv.NewReader(&out).ReadAll()
	if err != nil {
		t.Fatalf("report is not valid CSV: %v\n%s", err, out.String())
	}
	if !slices.Equal(records[0], ReportHeader) || len(records)-1 != report.Count() {
		t.Fatalf("report header %v, %d rows for Count %d", records[0], len(records)-1, report.Count())
	}
	return issued, records[1:]
}

// expect checks which rows were issued and the reason of each refused row.
func expect(t *testing.T, step string, issued []int, refused [][]string, wantIssued []int, wantReason string) {
	t.Helper()
	if !slices.Equal(issued, wantIssued) {
		t.Errorf("%s: issued rows %v, want %v", step, issued, wantIssued)
	}
	for _, rec := range refused {
		if rec[3] != wantReason {
			t.Errorf("%s: row %s refused for %q (%s), want %q", step, rec[0], rec[3], rec[4], wantReason)
		}
		if n, _ := strconv.Atoi(rec[0]); slices.Contains(wantIssued, n) {
			t.Errorf("%s: row %d both issued and refused", step, n)
		}
	}
}

// sameCustomer is the model's test file: four entries for the same customer.
func sameCustomer(id string, codes ...string) []uploadRow {
	rows := make([]uploadRow, 4)
	for i := range rows {
		rows[i].customerID = id
		if i < len(codes) {
			rows[i].code = codes[i]
		}
	}
	return rows
}

// The four duplicate-customer cases of the coupon-management model's issue-to-customers
// upload ("Error scenarios when issuing multiple coupons to a customer").

func TestCaseMaxPerCustomer(t *testing.T) {
	// Unique codes, max 3 per customer, no gap, no series limit.
	l := newLedger(tillkeep.IssuanceRules{MaxPerCustomer: 3}, false)
	file := sameCustomer("U1")
	issued, refused := l.upload(t, now, file...)
	expect(t, "first upload", issued, refused, []int{1, 2, 3}, RuleMaxPerCustomer)
	issued, refused = l.upload(t, now.Add(time.Hour), file...)
	expect(t, "same file again", issued, refused, nil, RuleMaxPerCustomer)
	if len(refused) != 4 {
		t.Errorf("same file again: %d rows refused, want 4", len(refused))
	}
	issued, refused = l.upload(t, now.Add(2*time.Hour), uploadRow{customerID: "U1"})
	expect(t, "one entry", issued, refused, nil, RuleMaxPerCustomer)
	// Another customer is not affected.
	issued, _ = l.upload(t, now.Add(3*time.Hour), uploadRow{customerID: "U2"})
	if !slices.Equal(issued, []int{1}) {
		t.Errorf("another customer: issued %v", issued)
	}
}

func TestCaseMinDaysBetweenIssues(t *testing.T) {
	// Unique codes, max 3 per customer, a gap of 1 day, no series limit.
	l := newLedger(tillkeep.IssuanceRules{MaxPerCustomer: 3, MinDaysBetweenIssues: 1}, false)
	issued, refused := l.upload(t, now, sameCustomer("U1")...)
	expect(t, "first upload", issued, refused, []int{1}, RuleMinDaysBetweenIssues)
	issued, refused = l.upload(t, now.Add(23*time.Hour), uploadRow{customerID: "U1"})
	expect(t, "23 hours later", issued, refused, nil, RuleMinDaysBetweenIssues)
	issued, refused = l.upload(t, now.Add(24*time.Hour), uploadRow{customerID: "U1"})
	expect(t, "a day later", issued, refused, []int{1}, "")
}

func TestCaseSeriesLimit(t *testing.T) {
	// Unique codes, no per-customer limit, no gap, series limit 2.
	l := newLedger(tillkeep.IssuanceRules{SeriesLimit: 2}, false)
	issued, refused := l.upload(t, now, sameCustomer("U1")...)
	expect(t, "first upload", issued, refused, []int{1, 2}, RuleSeriesLimit)
	issued, refused = l.upload(t, now, uploadRow{customerID: "U2"})
	expect(t, "another customer", issued, refused, nil, RuleSeriesLimit)
}

func TestCaseOneGenericPerCustomer(t *testing.T) {
	// A generic (common) code: per-customer count, gap and series limit not applicable.
	l := newLedger(tillkeep.IssuanceRules{}, true)
	file := sameCustomer("U1")
	issued, refused := l.upload(t, now, file...)
	expect(t, "first upload", issued, refused, []int{1}, RuleOneGenericPerCustomer)
	issued, refused = l.upload(t, now.Add(48*time.Hour), file...)
	expect(t, "same file again", issued, refused, nil, RuleOneGenericPerCustomer)
	if len(refused) != 4 {
		t.Errorf("same file again: %d rows refused, want 4", len(refused))
	}
}

// TestCodesListedTwice covers the duplicates that only the file shows, with codes given
// in the file (upload tagged to customers).
func TestCodesListedTwice(t *testing.T) {
	l := newLedger(tillkeep.IssuanceRules{MaxPerCustomer: 5}, false)
	issued, refused := l.upload(t, now,
		uploadRow{"U1", "C1"},
		uploadRow{"U1", "C1"}, // the same row again
		uploadRow{"U2", "C1"}, // the same code to another customer
		uploadRow{"U1", "C2"}, // a customer given two codes in one file: allowed under max 5
		uploadRow{"", ""},
	)
	if !slices.Equal(issued, []int{1, 4}) {
		t.Fatalf("issued rows %v, want [1 4]", issued)
	}
	want := [][]string{
		{"2", "U1", "C1", ReasonDuplicateRow},
		{"3", "U2", "C1", ReasonDuplicateCode},
		{"5", "", "", ReasonEmptyRow},
	}
	if len(refused) != len(want) {
		t.Fatalf("refused %v, want %v", refused, want)
	}
	for i, w := range want {
		if !slices.Equal(refused[i][:4], w) || refused[i][4] == "" {
			t.Errorf("report line %d = %v, want %v and a message", i, refused[i], w)
		}
	}
}
