package issuance

import (
	"strings"

	"github.com/tillkeep/tillkeep"
)

// Reasons of the rows a Batch refuses (error.rule, and the reason in an error report).
const (
	// ReasonDuplicateRow: the same customer with the same code, listed again.
	ReasonDuplicateRow = "duplicate_row"
	// ReasonDuplicateCode: a code listed again, for another customer or untagged. A code
	// goes to one customer only, and is created once.
	ReasonDuplicateCode = "duplicate_code"
	// ReasonEmptyRow: a row with neither a customer nor a code.
	ReasonEmptyRow = "empty_row"
)

// MaxBatchRows is the largest batch a Batch is meant to hold. A Batch remembers every
// code of its batch, about 100 bytes per row, so 100,000 rows take about 10 MB. The
// platform streams a larger file in chunks of at most MaxBatchRows rows, committing each
// chunk and calling Reset between them: a code repeated across chunks is then refused
// by the storage, which already holds it (duplicate_code too).
const MaxBatchRows = 100_000

// Batch finds the duplicates inside one batch of rows (customer_id, code): what the
// stored history cannot show because it is in the file itself. A customer listed
// several times is not a duplicate here: it is judged by Check, since History includes
// the batch's earlier issues (the model's four duplicate-customer cases).
//
// A Batch is not safe for concurrent use.
type Batch struct {
	codes map[string]codeUse
}

// codeUse is where a code first appeared in the batch.
type codeUse struct {
	row        int
	customerID string
}

// NewBatch returns an empty batch.
func NewBatch() *Batch { return &Batch{codes: make(map[string]codeUse)} }

// Add records a row and refuses it when it repeats an earlier row's code. customerID is
// "" for an untagged code (upload without customers), code is "" when the platform picks
// the code (issue to customers). A refused row is not remembered, so it never causes a
// later refusal.
func (b *Batch) Add(row int, customerID, code string) *tillkeep.Error {
	if customerID == "" && code == "" {
		return &tillkeep.Error{Code: tillkeep.CodeInvalidRequest, Rule: ReasonEmptyRow,
			Message: "the row has neither a customer nor a code"}
	}
	if code == "" {
		return nil
	}
	if first, ok := b.codes[code]; ok {
		switch {
		case first.customerID == customerID && customerID != "":
			return duplicate(ReasonDuplicateRow, "customer %s with code %s was already listed on row %d", customerID, code, first.row)
		case first.customerID == "":
			return duplicate(ReasonDuplicateCode, "code %s was already listed on row %d", code, first.row)
		default:
			return duplicate(ReasonDuplicateCode, "code %s was already given to customer %s on row %d; a code goes to one customer only",
				code, first.customerID, first.row)
		}
	}
	// Clones, so that a remembered code never pins the caller's (possibly large) buffer.
	b.codes[strings.Clone(code)] = codeUse{row: row, customerID: strings.Clone(customerID)}
	return nil
}

func duplicate(reason, format string, args ...any) *tillkeep.Error {
	e := tillkeep.Errorf(tillkeep.CodeConflict, format, args...)
	e.Rule = reason
	return e
}

// Len is how many codes the batch remembers.
func (b *Batch) Len() int { return len(b.codes) }

// Reset forgets every row, to start the next chunk.
func (b *Batch) Reset() { clear(b.codes) }
