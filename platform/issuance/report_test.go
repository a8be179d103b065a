package issuance

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/tillkeep/tillkeep"
)

func TestReportFormat(t *testing.T) {
	var out bytes.Buffer
	r := NewReport(&out)
	rows := []struct {
		row              int
		customerID, code string
		err              error
	}{
		{2, "U1", "", &tillkeep.Error{Code: tillkeep.CodeIssuanceLimit, Rule: RuleMaxPerCustomer, Message: "the customer already holds 3 coupons"}},
		{3, "U,2", `C"1`, tillkeep.Errorf(tillkeep.CodeNotFound, "unknown customer, as far as we know")},
		{4, "=HYPERLINK(\"x\")", "-5", tillkeep.Errorf(tillkeep.CodeInvalidRequest, "bad row")},
		{5, "U5", "C5", errors.New("open /var/lib/tillkeep/platform.db: permission denied")},
	}
	for _, row := range rows {
		if err := r.Add(row.row, row.customerID, row.code, row.err); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "row,customer_id,code,reason,message\n" +
		"2,U1,,max_per_customer,the customer already holds 3 coupons\n" +
		"3,\"U,2\",\"C\"\"1\",not_found,\"unknown customer, as far as we know\"\n" +
		"4,\"'=HYPERLINK(\"\"x\"\")\",'-5,invalid_request,bad row\n" +
		"5,U5,C5,internal,internal error\n"
	if out.String() != want {
		t.Fatalf("report:\n%s\nwant:\n%s", out.String(), want)
	}
	if r.Count() != 4 {
		t.Fatalf("Count %d, want 4", r.Count())
	}
	if strings.Contains(out.String(), "/var/lib") {
		t.Fatal("an internal cause leaked into the report")
	}
}

func TestEmptyReportHasAHeader(t *testing.T) {
	var out bytes.Buffer
	r := NewReport(&out)
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	if out.String() != "row,customer_id,code,reason,message\n" || r.Count() != 0 {
		t.Fatalf("empty report %q, count %d", out.String(), r.Count())
	}
}

func TestReportRefusesRowsWithoutError(t *testing.T) {
	var out bytes.Buffer
	r := NewReport(&out)
	var typedNil *tillkeep.Error
	if err := r.Add(1, "U1", "C1", nil); err == nil {
		t.Fatal("a row without an error was accepted")
	}
	if err := r.Add(1, "U1", "C1", typedNil); err == nil {
		t.Fatal("a typed nil error was accepted")
	}
	if r.Count() != 0 {
		t.Fatal("rows without errors were counted")
	}
}

type brokenWriter struct{ err error }

func (w brokenWriter) Write([]byte) (int, error) { return 0, w.err }

func TestReportWriteErrorsStick(t *testing.T) {
	cause := errors.New("disk full")
	r := NewReport(brokenWriter{cause})
	// csv buffers: the failure shows at Flush, and then on every later call.
	if err := r.Add(1, "U1", "C1", tillkeep.Errorf(tillkeep.CodeConflict, "x")); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(); !errors.Is(err, cause) {
		t.Fatalf("Flush = %v, want the writer's error", err)
	}
	if err := r.Add(2, "U1", "C1", tillkeep.Errorf(tillkeep.CodeConflict, "x")); !errors.Is(err, cause) {
		t.Fatalf("Add after a failed flush = %v, want the writer's error", err)
	}
}

func TestReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&tillkeep.Error{Code: tillkeep.CodeIssuanceLimit, Rule: RuleSeriesLimit}, RuleSeriesLimit},
		{tillkeep.Errorf(tillkeep.CodeNotFound, "x"), "not_found"},
		{errors.New("boom"), "internal"},
		{tillkeep.Wrap(tillkeep.CodeConflict, errors.New("cause"), "wrapped"), "conflict"},
	} {
		if got := Reason(tc.err); got != tc.want {
			t.Errorf("Reason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
