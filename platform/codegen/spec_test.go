package codegen

import (
	"strings"
	"testing"

	"github.com/tillkeep/tillkeep"
)

func TestSpecCheck(t *testing.T) {
	for _, tc := range []struct {
		name     string
		spec     Spec
		existing int64
		// want is "" for a valid spec, else words the message must hold.
		want []string
	}{
		{name: "default charset", spec: Spec{Count: 1000, Length: 8}},
		{name: "30M alphanumeric at 10", spec: Spec{Count: 30_000_000, Length: 10}},
		{name: "numeric exactly at the limit", spec: Spec{Count: 100, Length: 8, Charset: CharsetNumeric}},
		{name: "existing exactly at the limit", spec: Spec{Count: 1, Length: 9, Charset: CharsetNumeric}, existing: 999},
		{name: "prefix with dash", spec: Spec{Count: 10, Length: 14, Prefix: "SPR-26"}},

		{name: "too short", spec: Spec{Count: 1, Length: 3}, want: []string{"length", "between 4 and 32"}},
		{name: "too long", spec: Spec{Count: 1, Length: 33}, want: []string{"length", "between 4 and 32"}},
		{name: "random part under 4", spec: Spec{Count: 1, Length: 10, Prefix: "SPRING-"}, want: []string{"length", "3 random", "at least 11"}},
		{name: "lower-case prefix", spec: Spec{Count: 1, Length: 12, Prefix: "spr"}, want: []string{"prefix", "upper-case", `"SPR"`}},
		{name: "prefix with a space", spec: Spec{Count: 1, Length: 12, Prefix: "SP R"}, want: []string{"prefix", "position 3"}},
		{name: "prefix with unicode", spec: Spec{Count: 1, Length: 12, Prefix: "É"}, want: []string{"prefix"}},
		{name: "unknown charset", spec: Spec{Count: 1, Length: 10, Charset: "hex"}, want: []string{"charset", "hex"}},
		{name: "zero count", spec: Spec{Count: 0, Length: 10}, want: []string{"count"}},
		{name: "count over the maximum", spec: Spec{Count: MaxCount + 1, Length: 20}, want: []string{"count"}},
		{name: "negative existing", spec: Spec{Count: 1, Length: 10}, existing: -1, want: []string{"existing"}},

		{name: "numeric space too small", spec: Spec{Count: 1000, Length: 8, Charset: CharsetNumeric},
			want: []string{"length 8 is too short for 1000 codes", "one guess in 100000", "length must be at least 9"}},
		{name: "30M alphanumeric at 9", spec: Spec{Count: 30_000_000, Length: 9},
			want: []string{"too short", "length must be at least 10"}},
		{name: "existing codes count", spec: Spec{Count: 2, Length: 9, Charset: CharsetNumeric}, existing: 999,
			want: []string{"1001 codes (2 new, 999 existing)", "at least 10"}},
		{name: "prefix makes it impossible", spec: Spec{Count: 50_000_000, Length: 32, Charset: CharsetNumeric, Prefix: strings.Repeat("A", 20)},
			want: []string{"over the maximum of 32", "shorten the prefix"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.spec.Check(tc.existing)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Check = nil, want an error")
			}
			var coded *tillkeep.Error
			if e, ok := err.(*tillkeep.Error); !ok || e.Code != tillkeep.CodeInvalidRequest {
				t.Fatalf("Check = %#v, want a *tillkeep.Error with %s", err, tillkeep.CodeInvalidRequest)
			} else {
				coded = e
			}
			for _, w := range tc.want {
				if !strings.Contains(coded.Message, w) {
					t.Errorf("message %q lacks %q", coded.Message, w)
				}
			}
		})
	}
}

// TestSizingAgreesWithTheAdvice checks that the length a refusal recommends is accepted.
func TestSizingAgreesWithTheAdvice(t *testing.T) {
	for _, spec := range []Spec{
		{Count: 1, Length: 4, Charset: CharsetNumeric},
		{Count: 12345, Length: 5},
		{Count: 30_000_000, Length: 6, Prefix: "AB"},
		{Count: MaxCount, Length: 10, Charset: CharsetNumeric},
	} {
		err := spec.Check(0)
		if err == nil {
			t.Fatalf("%+v: accepted, want a sizing refusal", spec)
		}
		msg := err.Error()
		i := strings.LastIndex(msg, "at least ")
		if i < 0 {
			t.Fatalf("%+v: no advice in %q", spec, msg)
		}
		var advised int
		for _, c := range msg[i+len("at least "):] {
			if c < '0' || c > '9' {
				break
			}
			advised = advised*10 + int(c-'0')
		}
		spec.Length = advised
		if err := spec.Check(0); err != nil {
			t.Errorf("advised length %d refused: %v", advised, err)
		}
		spec.Length--
		if err := spec.Check(0); err == nil {
			t.Errorf("length %d (one under the advice) accepted", spec.Length)
		}
	}
}

func TestAlphabets(t *testing.T) {
	alnum, ok := Alphabet(CharsetAlphanumeric)
	if !ok || len(alnum) != 31 || strings.ContainsAny(alnum, "0O1IL") {
		t.Fatalf("alphanumeric alphabet %q", alnum)
	}
	if def, _ := Alphabet(""); def != alnum {
		t.Fatalf("default alphabet %q", def)
	}
	for i := 1; i < len(alnum); i++ {
		if alnum[i] <= alnum[i-1] {
			t.Fatalf("alphabet %q is not sorted or repeats %q", alnum, alnum[i])
		}
	}
	if num, _ := Alphabet(CharsetNumeric); num != "0123456789" {
		t.Fatalf("numeric alphabet %q", num)
	}
	if _, ok := Alphabet("base64"); ok {
		t.Fatal("unknown charset accepted")
	}
}
