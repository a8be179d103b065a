package issuance

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/tillkeep/tillkeep"
)

// ReportHeader is the first line of every error report.
var ReportHeader = []string{"row", "customer_id", "code", "reason", "message"}

// Report writes the downloadable error report of a batch: one CSV line per refused row,
// streamed to its writer, so a report of a million refusals costs no memory.
//
// Fields that a spreadsheet would run as a formula (starting with = + - @, a tab or a
// carriage return) are written with a leading apostrophe, because ops open these files
// in spreadsheets and customer ids come from uploaded files.
type Report struct {
	csv         *csv.Writer
	wroteHeader bool
	count       int
	err         error
}

// NewReport returns a report writing to w. The header is written with the first row,
// or by Flush for a report without rows.
func NewReport(w io.Writer) *Report { return &Report{csv: csv.NewWriter(w)} }

// Add writes one refused row. The reason is a stable snake_case code (see Reason), the
// message the error's human sentence. A write error is returned, and again by every
// later call.
func (r *Report) Add(row int, customerID, code string, err error) error {
	if err == nil || isNilCoded(err) {
		return fmt.Errorf("report row %d: no error to report", row)
	}
	if r.err != nil {
		return r.err
	}
	if err := r.header(); err != nil {
		return err
	}
	record := []string{strconv.Itoa(row), neutralize(customerID), neutralize(code), Reason(err), neutralize(tillkeep.ErrorMessage(err))}
	if werr := r.csv.Write(record); werr != nil {
		r.err = fmt.Errorf("write error report: %w", werr)
		return r.err
	}
	r.count++
	return nil
}

func (r *Report) header() error {
	if r.wroteHeader {
		return nil
	}
	r.wroteHeader = true
	if err := r.csv.Write(ReportHeader); err != nil {
		r.err = fmt.Errorf("write error report: %w", err)
		return r.err
	}
	return nil
}

// Count is how many rows were reported.
func (r *Report) Count() int { return r.count }

// Flush writes what is buffered, and the header if no row was added.
func (r *Report) Flush() error {
	if r.err != nil {
		return r.err
	}
	if err := r.header(); err != nil {
		return err
	}
	r.csv.Flush()
	if err := r.csv.Error(); err != nil {
		r.err = fmt.Errorf("write error report: %w", err)
		return r.err
	}
	return nil
}

// Reason is the stable snake_case reason of err in a report: the rule that refused
// (issuance limits, batch duplicates), else the error's code; "internal" for an error
// without a code.
func Reason(err error) string {
	var e *tillkeep.Error
	if errors.As(err, &e) {
		if e.Rule != "" {
			return e.Rule
		}
		return string(e.Code)
	}
	return string(tillkeep.CodeInternal)
}

// isNilCoded catches a nil *tillkeep.Error passed as a non-nil error interface (the
// classic typed-nil slip), which would otherwise crash the message lookup.
func isNilCoded(err error) bool {
	e, ok := err.(*tillkeep.Error)
	return ok && e == nil
}

// neutralize keeps a spreadsheet from running a field as a formula.
func neutralize(field string) string {
	if field == "" {
		return field
	}
	switch field[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + field
	}
	return field
}
