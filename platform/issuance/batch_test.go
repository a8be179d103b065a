package issuance

import (
	"strings"
	"testing"
	"unsafe"

	"github.com/tillkeep/tillkeep"
)

func TestBatch(t *testing.T) {
	type add struct {
		customerID, code string
		rule             string // "" when accepted
		mentions         []string
	}
	for name, rows := range map[string][]add{
		"untagged upload": {
			{code: "A1"},
			{code: "A2"},
			{code: "A1", rule: ReasonDuplicateCode, mentions: []string{"A1", "row 1"}},
		},
		"tagged upload": {
			{customerID: "U1", code: "A1"},
			{customerID: "U1", code: "A1", rule: ReasonDuplicateRow, mentions: []string{"U1", "A1", "row 1"}},
			{customerID: "U2", code: "A1", rule: ReasonDuplicateCode, mentions: []string{"U1", "row 1", "one customer"}},
			{code: "A1", rule: ReasonDuplicateCode},
			{customerID: "U1", code: "A2"},
		},
		"untagged then tagged": {
			{code: "A1"},
			{customerID: "U1", code: "A1", rule: ReasonDuplicateCode, mentions: []string{"row 1"}},
		},
		"customers without codes are Check's business": {
			{customerID: "U1"},
			{customerID: "U1"},
			{customerID: "U2"},
		},
		"empty row": {
			{rule: ReasonEmptyRow},
		},
	} {
		t.Run(name, func(t *testing.T) {
			b := NewBatch()
			for i, r := range rows {
				err := b.Add(i+1, r.customerID, r.code)
				if r.rule == "" {
					if err != nil {
						t.Fatalf("row %d: %v, want accepted", i+1, err)
					}
					continue
				}
				if err == nil || err.Rule != r.rule {
					t.Fatalf("row %d: %v, want rule %s", i+1, err, r.rule)
				}
				for _, m := range r.mentions {
					if !strings.Contains(err.Message, m) {
						t.Errorf("row %d: message %q lacks %q", i+1, err.Message, m)
					}
				}
			}
		})
	}
}

func TestBatchCodes(t *testing.T) {
	b := NewBatch()
	if err := b.Add(1, "U1", "A1"); err != nil {
		t.Fatal(err)
	}
	if err := b.Add(2, "U2", "A1"); err == nil || err.Code != tillkeep.CodeConflict {
		t.Fatalf("duplicate: %v, want code conflict", err)
	}
	if err := b.Add(3, "", ""); err == nil || err.Code != tillkeep.CodeInvalidRequest {
		t.Fatalf("empty row: %v, want code invalid_request", err)
	}
	// A refused row is not remembered: it causes no later refusal.
	if b.Len() != 1 {
		t.Fatalf("Len %d, want 1", b.Len())
	}
	b.Reset()
	if b.Len() != 0 {
		t.Fatal("Reset kept codes")
	}
	if err := b.Add(4, "U2", "A1"); err != nil {
		t.Fatalf("after Reset: %v", err)
	}
}

// TestBatchDoesNotPinBuffers makes sure remembered codes are copies: a caller that
// parses rows out of one big buffer must be able to reuse it.
func TestBatchDoesNotPinBuffers(t *testing.T) {
	line := strings.Repeat("x", 1<<10) + "U1,A1"
	customer, code := line[len(line)-5:len(line)-3], line[len(line)-2:]
	b := NewBatch()
	if err := b.Add(1, customer, code); err != nil {
		t.Fatal(err)
	}
	for kept, use := range b.codes {
		if unsafe.StringData(kept) == unsafe.StringData(code) || unsafe.StringData(use.customerID) == unsafe.StringData(customer) {
			t.Fatal("the batch holds a slice of the caller's string")
		}
	}
	if err := b.Add(2, "U1", "A1"); err == nil {
		t.Fatal("the copied code was not matched")
	}
}
