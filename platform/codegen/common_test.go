package codegen

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tillkeep/tillkeep"
)

func TestRandomizedCommonChecks(t *testing.T) {
	for _, tc := range []struct {
		fixed           string
		length          int
		count, existing int64
		want            string // "" when valid
	}{
		{fixed: "TEST", length: 9, count: 1000},
		{fixed: "AB", length: 5, count: 14_895}, // 31^3/2
		{fixed: "12", length: 5, count: 500},    // numeric: 10^3/2
		{fixed: "SALE5", length: 10, count: 14_000_000},
		{fixed: "AB", length: 5, count: 14_896, want: "at most 14895"},
		{fixed: "12", length: 5, count: 400, existing: 101, want: "501"},
		{fixed: "AB", length: 4, count: 1, want: "between 5 and 10"},
		{fixed: "AB", length: 11, count: 1, want: "between 5 and 10"},
		{fixed: "", length: 6, count: 1, want: "empty"},
		{fixed: "ABC", length: 5, count: 1, want: "at most half"},
		{fixed: "ab", length: 6, count: 1, want: "upper-case"},
		{fixed: "A-B", length: 6, count: 1, want: "position 2"},
		{fixed: "AB", length: 6, count: 0, want: "count"},
		{fixed: "AB", length: 6, count: 1, existing: -3, want: "existing"},
	} {
		err := CheckRandomizedCommon(tc.fixed, tc.length, tc.count, tc.existing)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: err = %v, want one containing %q", tc, err, tc.want)
		case err != nil && tillkeep.ErrorCode(err) != tillkeep.CodeInvalidRequest:
			t.Errorf("%+v: code %s", tc, tillkeep.ErrorCode(err))
		}
	}
}

func TestRandomizedCommonDraws(t *testing.T) {
	seen := map[string]bool{}
	for range 2000 {
		code, err := RandomizedCommon("TEST", 9, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkShape(t, code, State{Length: 9, Prefix: "TEST", Charset: CharsetAlphanumeric})
		seen[code] = true
	}
	// 2000 draws from 31^5 (28.6M): a repeat is possible but more than a few is not.
	if len(seen) < 1990 {
		t.Fatalf("only %d distinct codes in 2000 draws", len(seen))
	}
	code, err := RandomizedCommon("42", 6, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkShape(t, code, State{Length: 6, Prefix: "42", Charset: CharsetNumeric})
	if _, err := RandomizedCommon("TOOLONG", 8, nil); err == nil {
		t.Fatal("a fixed part over half the code was accepted")
	}
}

// TestRandomizedCommonRejectsBiasedBytes feeds bytes that a plain modulo would map
// unevenly: they must be skipped, not used.
func TestRandomizedCommonRejectsBiasedBytes(t *testing.T) {
	src := bytes.Repeat([]byte{255, 250, 248}, 5) // all at or above 248 = 8*31
	src = append(src, 0, 30, 31, 247, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
	code, err := RandomizedCommon("AB", 5, bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	// 0 -> '2', 30 -> 'Z', 31 -> 31%31 = 0 -> '2'.
	if code != "AB2Z2" {
		t.Fatalf("code %q, want AB2Z2", code)
	}
	if _, err := RandomizedCommon("AB", 5, bytes.NewReader(nil)); tillkeep.ErrorCode(err) != tillkeep.CodeInternal {
		t.Fatalf("empty random source: err = %v, want internal", err)
	}
	stuck := bytes.NewReader(bytes.Repeat([]byte{255}, 1<<12))
	if _, err := RandomizedCommon("AB", 5, stuck); tillkeep.ErrorCode(err) != tillkeep.CodeInternal {
		t.Fatalf("a source of rejected bytes: err = %v, want internal", err)
	}
}

func TestRandomizedCommonSeriesNeverRepeats(t *testing.T) {
	st, err := NewRandomizedCommonState("AB", 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !st.RandomizedCommon || st.Charset != CharsetAlphanumeric {
		t.Fatalf("state %+v", st)
	}
	g := mustGenerator(t, st)
	size := g.Remaining()
	if size != 31*31*31 {
		t.Fatalf("space %d, want 31^3", size)
	}
	seen := newBitset(size)
	for range size {
		code, err := g.Next()
		if err != nil {
			t.Fatal(err)
		}
		checkShape(t, code, st)
		if !seen.add(decode(t, code[2:], alphanumericAlphabet)) {
			t.Fatalf("code %q repeated", code)
		}
	}
	// A unique series may not have a 3-character random part; the flag is what allows it.
	st.RandomizedCommon = false
	if _, err := NewGenerator(st); err == nil {
		t.Fatal("a 3-character random part was accepted for a unique series")
	}
}

func TestFixedPartsOverlap(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"AB", "AB", true},
		{"AB", "ABC", true},
		{"ABC", "AB", true},
		{"AB", "AC", false},
		{"12", "123", true},
		{"BA", "AB", false},
	} {
		if got := FixedPartsOverlap(tc.a, tc.b); got != tc.want {
			t.Errorf("FixedPartsOverlap(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}
