// Package issuance judges the issue of coupons to customers, as the coupon-management
// model does: the limits of an offer's series (max_per_customer,
// min_days_between_issues, series_limit, one_generic_per_customer), the duplicates
// inside one uploaded batch, and the downloadable CSV report of the rows refused.
//
// It is pure: the caller reads the customer's and the series' history from storage
// and writes the issue, in one transaction, so that a limit is checked and consumed in
// one atomic step. For each row of a batch the platform does:
//
//	if err := batch.Add(row, customerID, code); err != nil { report.Add(row, customerID, code, err); continue }
//	h := history read in the write transaction, including the rows of this batch already issued
//	if err := issuance.Check(offer.Issuance, h, now); err != nil { report.Add(...); continue }
//	issue the coupon
//
// Because History includes the batch's own earlier issues, a customer listed several
// times in one file is judged like a customer issued to several times: these are the
// model's four duplicate-customer cases (see Check). Batch catches what History cannot
// show: the same code listed twice.
//
// It does no I/O except writing a report to the io.Writer it is given, and it never
// decides what is stored.
package issuance
