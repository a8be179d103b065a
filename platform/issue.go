package platform

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/platform/issuance"
)

// Row error reasons of issuance and uploads, beside the issuance rules' own codes.
const (
	ReasonInvalidCustomer   = "invalid_customer"
	ReasonInvalidRow        = "invalid_row"
	ReasonUnknownCoupon     = "unknown_coupon"
	ReasonWrongOffer        = "wrong_offer"
	ReasonAlreadyIssued     = "already_issued"
	ReasonCouponNotActive   = "coupon_not_active"
	ReasonNoCouponAvailable = "no_coupon_available"
)

// issueChunk bounds the rows one issuance transaction handles.
const issueChunk = 2_000

// IssueRow is one input row of an issuance: a customer and, optionally, the code to
// give them (otherwise the next unissued coupon of the offer).
type IssueRow struct {
	Row        int
	CustomerID string
	Code       string
	// Err is set when the row could not be read (too long, malformed); it is reported
	// and the rest goes on.
	Err error
}

// RowSource yields rows until io.EOF.
type RowSource func() (IssueRow, error)

// RowError is one refused row, as listed in an answer and in the CSV report.
type RowError struct {
	Row        int    `json:"row"`
	CustomerID string `json:"customer_id,omitempty"`
	Code       string `json:"code,omitempty"`
	Reason     string `json:"reason"`
	Message    string `json:"message"`
}

// IssueResult answers an issuance.
type IssueResult struct {
	Issued int64      `json:"issued"`
	Errors []RowError `json:"errors"`
	// ReportID names the CSV report of every refused row (GET /v1/reports/{id}); empty
	// when no row was refused.
	ReportID string `json:"report_id,omitempty"`
}

// UploadResult answers an upload of existing codes.
type UploadResult struct {
	Created  int64      `json:"created"`
	Issued   int64      `json:"issued"`
	Errors   []RowError `json:"errors"`
	ReportID string     `json:"report_id,omitempty"`
}

// customerRows is the JSON form: customer ids in order.
func customerRows(ids []string) RowSource {
	i := 0
	return func() (IssueRow, error) {
		if i >= len(ids) {
			return IssueRow{}, io.EOF
		}
		i++
		return IssueRow{Row: i, CustomerID: ids[i-1]}, nil
	}
}

// csvIssueRows reads `customer_id[,code]` rows.
func csvIssueRows(c *csvRows) RowSource {
	return func() (IssueRow, error) {
		fields, line, err := c.next()
		if err != nil {
			var coded *tillkeep.Error
			if errors.As(err, &coded) {
				return IssueRow{Row: line, Err: invalidRow(coded.Message)}, nil
			}
			return IssueRow{}, err
		}
		row := IssueRow{Row: line, CustomerID: fields[0]}
		if len(fields) > 1 {
			row.Code = fields[1]
		}
		if len(fields) > 2 {
			row.Err = invalidRow(fmt.Sprintf("line %d has %d fields; want customer_id[,code]", line, len(fields)))
		}
		return row, nil
	}
}

// invalidRow is the error of a row that could not be read.
func invalidRow(message string) *tillkeep.Error {
	return &tillkeep.Error{Code: tillkeep.CodeInvalidRequest, Rule: ReasonInvalidRow, Message: message}
}

// dedupRows refuses, before any transaction, the rows that repeat an earlier row's code
// in the same request (issuance.Batch): storage history cannot show those. The batch
// is reset every issuance.MaxBatchRows rows to bound its memory; a code repeated across
// that boundary is then refused by the storage, which already holds it.
func dedupRows(rows RowSource) RowSource {
	batch := issuance.NewBatch()
	n := 0
	return func() (IssueRow, error) {
		row, err := rows()
		if err != nil || row.Err != nil {
			return row, err
		}
		if n == issuance.MaxBatchRows {
			batch.Reset()
			n = 0
		}
		n++
		if e := batch.Add(row.Row, row.CustomerID, row.Code); e != nil {
			row.Err = e
		}
		return row, nil
	}
}

// rowErrors collects refused rows: all into the CSV report, the first maxRowErrors into
// the answer.
type rowErrors struct {
	spool  *reportSpool
	report *issuance.Report
	list   []RowError
	count  int64
}

func (s *Service) newRowErrors() (*rowErrors, error) {
	sp, err := s.newSpool()
	if err != nil {
		return nil, err
	}
	return &rowErrors{spool: sp, report: issuance.NewReport(sp), list: []RowError{}}, nil
}

func (re *rowErrors) add(e RowError) error {
	re.count++
	if len(re.list) < maxRowErrors {
		re.list = append(re.list, e)
	}
	return re.report.Add(e.Row, e.CustomerID, e.Code, &tillkeep.Error{Code: tillkeep.CodeInvalidRequest, Rule: e.Reason, Message: e.Message})
}

// finish stores the report (when a row was refused) and returns its id.
func (s *Service) finishRowErrors(ctx context.Context, re *rowErrors) (string, error) {
	defer re.spool.discard()
	if err := re.report.Flush(); err != nil {
		return "", fmt.Errorf("write error report: %w", err)
	}
	if re.count == 0 {
		return "", nil
	}
	id, err := s.saveReport(ctx, re.spool)
	return id, storageErr(err, "store error report")
}

// rowOutcome is what happened to one row inside a transaction.
type rowOutcome struct {
	created, issued bool
	err             *RowError
}

// Issue gives coupons of an offer to customers, a chunk of rows per transaction. Each
// row is checked against the offer's issuance rules (maximum per customer, minimum gap
// between issues, series limit, one generic code per customer) with the counters read
// and updated in the same transaction, so concurrent issuances cannot exceed a limit.
// A refused row gets a reason in the answer and the CSV report; the rest go through.
func (s *Service) Issue(ctx context.Context, offerID string, rows RowSource, progress Progress) (IssueResult, error) {
	res := IssueResult{Errors: []RowError{}}
	if _, err := s.GetOffer(ctx, offerID); err != nil {
		return res, err
	}
	tally, err := s.runRows(ctx, offerID, rows, false, progress)
	res.Issued, res.Errors, res.ReportID = tally.issued, tally.errors, tally.reportID
	s.m.coupons("issued", res.Issued)
	s.log.Info("coupons issued", "offer", offerID, "issued", res.Issued, "refused", tally.refused, "report", res.ReportID)
	if err != nil {
		return res, storageErr(err, "issue coupons")
	}
	return res, nil
}

// rowTally is what a run of issuance rows did.
type rowTally struct {
	created, issued int64
	// refused counts every refused row; errors lists only the first ones.
	refused  int64
	errors   []RowError
	reportID string
}

// runRows feeds rows to issueBatch a chunk per transaction (creating the coupons too
// when create is set), collects the refused rows in the answer and the CSV report, and
// reports progress by rows handled. The tally is valid even when err is not nil: what
// committed before a failure stays committed.
func (s *Service) runRows(ctx context.Context, offerID string, rows RowSource, create bool, progress Progress) (rowTally, error) {
	var tally rowTally
	rows = dedupRows(rows)
	re, err := s.newRowErrors()
	if err != nil {
		return tally, err
	}
	var runErr error
	for done := false; !done && runErr == nil; {
		var batch []IssueRow
		batch, done, runErr = readBatch(rows, issueChunk)
		if runErr != nil || len(batch) == 0 {
			break
		}
		var outcomes []rowOutcome
		outcomes, runErr = s.issueBatch(ctx, offerID, batch, create)
		for _, o := range outcomes {
			if o.created {
				tally.created++
			}
			if o.issued {
				tally.issued++
			}
			if o.err != nil {
				if err := re.add(*o.err); err != nil && runErr == nil {
					runErr = fmt.Errorf("write error report: %w", err)
				}
			}
		}
		if progress != nil {
			handled := tally.issued
			if create {
				handled = tally.created
			}
			progress(handled + re.count)
		}
	}
	tally.reportID, err = s.finishRowErrors(ctx, re)
	tally.errors, tally.refused = re.list, re.count
	if runErr != nil {
		return tally, runErr
	}
	return tally, err
}

// UploadCoupons creates coupons from a streamed CSV of `code[,customer_id]` rows; a row
// with a customer is issued to that customer in the same transaction, under the same
// issuance rules as Issue. Refused rows are reported; the rest go through.
func (s *Service) UploadCoupons(ctx context.Context, offerID string, body io.Reader, progress Progress) (UploadResult, error) {
	res := UploadResult{Errors: []RowError{}}
	if _, err := s.checkOfferKind(ctx, offerID, tillkeep.CodeKindUnique, "an upload of codes"); err != nil {
		return res, err
	}
	csv := newCSVRows(body, "code")
	var rows RowSource = func() (IssueRow, error) {
		fields, line, err := csv.next()
		if err != nil {
			var coded *tillkeep.Error
			if errors.As(err, &coded) {
				return IssueRow{Row: line, Err: invalidRow(coded.Message)}, nil
			}
			return IssueRow{}, err
		}
		row := IssueRow{Row: line, Code: fields[0]}
		if len(fields) > 1 {
			row.CustomerID = fields[1]
		}
		if len(fields) > 2 {
			row.Err = invalidRow(fmt.Sprintf("line %d has %d fields; want code[,customer_id]", line, len(fields)))
		}
		return row, nil
	}
	tally, err := s.runRows(ctx, offerID, rows, true, progress)
	res.Created, res.Issued, res.Errors, res.ReportID = tally.created, tally.issued, tally.errors, tally.reportID
	s.m.coupons("created", res.Created)
	s.m.coupons("issued", res.Issued)
	s.log.Info("coupons uploaded", "offer", offerID, "created", res.Created, "issued", res.Issued, "refused", tally.refused, "report", res.ReportID)
	if err != nil {
		return res, storageErr(err, "upload coupons")
	}
	return res, nil
}

// readBatch reads up to n rows.
func readBatch(rows RowSource, n int) (batch []IssueRow, done bool, err error) {
	for len(batch) < n {
		row, err := rows()
		if errors.Is(err, io.EOF) {
			return batch, true, nil
		}
		if err != nil {
			return batch, true, fmt.Errorf("read rows: %w", err)
		}
		batch = append(batch, row)
	}
	return batch, false, nil
}

func rowErr(row IssueRow, reason, format string, args ...any) *RowError {
	return &RowError{Row: row.Row, CustomerID: row.CustomerID, Code: row.Code, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// issueBatch handles one chunk of rows in one transaction. With create, each row's code
// is first created (an upload); otherwise rows draw on existing coupons.
func (s *Service) issueBatch(ctx context.Context, offerID string, batch []IssueRow, create bool) ([]rowOutcome, error) {
	var out []rowOutcome
	err := s.st.Update(ctx, func(tx Tx) error {
		out = make([]rowOutcome, len(batch))
		l := s.newLedger(tx)
		o, err := l.offer(offerID)
		if err != nil {
			return err
		}
		if o == nil {
			return tillkeep.Errorf(tillkeep.CodeNotFound, "offer %s is not known", offerID)
		}
		// Syntax first: rows that cannot be read or named take no part.
		valid := make([]bool, len(batch))
		var codes []string
		var customers [][2]string
		poolNeeded := 0
		for i, row := range batch {
			switch {
			case row.Err != nil:
				out[i].err = rowErr(row, issuance.Reason(row.Err), "%s", tillkeep.ErrorMessage(row.Err))
				continue
			case create && row.Code == "", row.Code != "" && checkCode(row.Code) != nil:
				out[i].err = rowErr(row, ReasonInvalidCode, "%s", tillkeep.ErrorMessage(checkCode(row.Code)))
				continue
			case !create && row.CustomerID == "":
				out[i].err = rowErr(row, ReasonInvalidCustomer, "the row names no customer")
				continue
			case row.CustomerID != "" && checkID("customer_id", row.CustomerID) != nil:
				out[i].err = rowErr(row, ReasonInvalidCustomer, "%s", tillkeep.ErrorMessage(checkID("customer_id", row.CustomerID)))
				continue
			}
			valid[i] = true
			if row.Code != "" {
				codes = append(codes, row.Code)
			} else {
				poolNeeded++
			}
			if row.CustomerID != "" {
				customers = append(customers, [2]string{row.CustomerID, offerID})
			}
		}

		// Lock order: offer usage, coupons, customer usage.
		ou, err := l.offerUsageRow(offerID)
		if err != nil {
			return err
		}
		if create {
			var cs []tillkeep.Coupon
			for i, row := range batch {
				if valid[i] {
					cs = append(cs, tillkeep.Coupon{Code: row.Code, OfferID: offerID, Status: tillkeep.CouponActive, CreatedAt: l.now})
				}
			}
			_, existing, err := l.insertCoupons(offerID, cs)
			if err != nil {
				return err
			}
			// A code given k times of which m were skipped was created by its first row
			// when m < k; its other rows, and rows of codes that existed, are duplicates.
			skipped := make(map[string]int, len(existing))
			for _, c := range existing {
				skipped[c]++
			}
			occurrences := make(map[string]int, len(cs))
			for _, c := range cs {
				occurrences[c.Code]++
			}
			seen := map[string]bool{}
			for i, row := range batch {
				if !valid[i] {
					continue
				}
				first := !seen[row.Code]
				seen[row.Code] = true
				if !first || skipped[row.Code] >= occurrences[row.Code] {
					out[i].err = rowErr(row, ReasonDuplicateCode, "the code already exists")
					valid[i] = false
					continue
				}
				out[i].created = true
			}
		}
		pool, err := l.poolFor(o, poolNeeded+len(codes))
		if err != nil {
			return err
		}
		if err := l.lockRows(nil, codes, customers); err != nil {
			return err
		}
		loc := s.offerLocation(l, o)
		for i, row := range batch {
			if !valid[i] || row.CustomerID == "" {
				continue
			}
			issued, rerr, err := l.issueOne(o, ou, row, pool, loc)
			if err != nil {
				return err
			}
			out[i].issued, out[i].err = issued, rerr
		}
		return l.flush()
	})
	return out, err
}

// couponPool hands out an offer's unissued coupons in code order.
type couponPool struct {
	codes []string
	next  int
	// common is the offer's common code, for common offers.
	common *couponRow
}

// poolFor reads (and so locks, in code order) up to n unissued coupons of the offer,
// or its common code.
func (l *ledger) poolFor(o *tillkeep.Offer, n int) (*couponPool, error) {
	p := &couponPool{}
	if o.CodeKind == tillkeep.CodeKindCommon {
		cs, err := l.tx.CouponsByOffer(o.ID, "", 1)
		if err != nil || len(cs) == 0 {
			return p, err
		}
		p.common, err = l.coupon(cs[0].Code)
		return p, err
	}
	if n == 0 {
		return p, nil
	}
	cs, err := l.tx.UnissuedCoupons(o.ID, "", n)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		if _, err := l.coupon(c.Code); err != nil {
			return nil, err
		}
		p.codes = append(p.codes, c.Code)
	}
	return p, nil
}

// take returns the next pool coupon still unissued in the working set.
func (p *couponPool) take(l *ledger) (*couponRow, error) {
	for p.next < len(p.codes) {
		c, err := l.coupon(p.codes[p.next])
		p.next++
		if err != nil {
			return nil, err
		}
		if c != nil && c.c.CustomerID == "" && c.c.Status == tillkeep.CouponActive {
			return c, nil
		}
	}
	return nil, nil
}

// offerLocation is the calendar that issue-relative expiry counts days in: the time
// zone of the offer's first listed store, else UTC.
func (s *Service) offerLocation(l *ledger, o *tillkeep.Offer) *time.Location {
	for _, id := range o.Rules.Stores {
		st, err := l.store(id)
		if err == nil && st != nil {
			return s.storeLocation(st)
		}
	}
	return s.storeLocation(nil)
}

// issueOne issues one coupon to row.CustomerID, after the issuance rules allow it. It
// returns a row error for a refusal.
func (l *ledger) issueOne(o *tillkeep.Offer, ou *offerUsageRow, row IssueRow, pool *couponPool, loc *time.Location) (bool, *RowError, error) {
	generic := o.CodeKind == tillkeep.CodeKindCommon
	cu, err := l.customerUsageRow(row.CustomerID, o.ID)
	if err != nil {
		return false, nil, err
	}
	if e := issuance.Check(o.Issuance, issuance.History{
		CustomerIssued:       cu.u.Issued,
		CustomerLastIssuedAt: cu.u.LastIssuedAt,
		SeriesIssued:         ou.u.Issued,
		CustomerHasGeneric:   cu.u.HasGeneric,
		Generic:              generic,
	}, l.now); e != nil {
		reason := e.Rule
		if reason == "" {
			reason = string(e.Code)
		}
		return false, rowErr(row, reason, "%s", e.Message), nil
	}

	var c *couponRow
	switch {
	case generic:
		if c = pool.common; c == nil {
			return false, rowErr(row, ReasonNoCouponAvailable, "offer %s has no common code yet", o.ID), nil
		}
		if c.c.Status != tillkeep.CouponActive {
			return false, rowErr(row, ReasonCouponNotActive, "the common code is %s", c.c.Status), nil
		}
	case row.Code != "":
		if c, err = l.coupon(row.Code); err != nil {
			return false, nil, err
		}
		switch {
		case c == nil:
			return false, rowErr(row, ReasonUnknownCoupon, "code %s is not known", row.Code), nil
		case c.c.OfferID != o.ID:
			return false, rowErr(row, ReasonWrongOffer, "code %s belongs to offer %s", row.Code, c.c.OfferID), nil
		case c.c.CustomerID != "":
			return false, rowErr(row, ReasonAlreadyIssued, "code %s is already issued to customer %s", row.Code, c.c.CustomerID), nil
		case c.c.Status != tillkeep.CouponActive:
			return false, rowErr(row, ReasonCouponNotActive, "code %s is %s", row.Code, c.c.Status), nil
		}
	default:
		if c, err = pool.take(l); err != nil {
			return false, nil, err
		}
		if c == nil {
			return false, rowErr(row, ReasonNoCouponAvailable, "offer %s has no unissued coupon left", o.ID), nil
		}
	}

	if !generic {
		c.c.CustomerID = row.CustomerID
		c.c.IssuedAt = l.now
		c.c.ExpiresAt = tillkeep.CouponExpiry(*o, l.now, loc)
		c.dirty = true
		if err := l.change(Change{Entity: EntityCoupon, Key: c.c.Code, Event: EventIssued, OfferID: o.ID}); err != nil {
			return false, nil, err
		}
	}
	cu.u.Issued++
	cu.u.LastIssuedAt = l.now
	cu.u.HasGeneric = cu.u.HasGeneric || generic
	cu.dirty = true
	ou.u.Issued++
	ou.dirty = true
	return true, nil, nil
}
