package codegen

import (
	"fmt"
	"math/big"
	"strings"

	"github.com/tillkeep/tillkeep"
)

// Charset names.
const (
	CharsetNumeric      = "numeric"
	CharsetAlphanumeric = "alphanumeric"
	// DefaultCharset is used when a spec leaves the charset empty.
	DefaultCharset = CharsetAlphanumeric
)

// The alphabets, in digit order: a code's characters are the base-len(alphabet) digits
// of its permuted counter.
const (
	numericAlphabet = "0123456789"
	// alphanumericAlphabet leaves out 0 O 1 I L, the characters people misread.
	alphanumericAlphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
)

// Limits of a code.
const (
	MinLength = 4
	MaxLength = 32
	// MinRandomLength is the shortest random part of a unique code.
	MinRandomLength = 4
	// MaxCount is the most codes one generate request may ask for. It bounds one
	// request's work (about 20 s of generation and the storage to match), not the series.
	MaxCount = 100_000_000
	// MaxGuessRate is the highest share of valid codes in the space of random parts: the
	// chance that one random guess is a valid code.
	MaxGuessRate = 1e-6
	// maxGuessDenominator is 1/MaxGuessRate, for exact integer comparison.
	maxGuessDenominator = 1_000_000
)

// Spec says how many codes to make and what they look like.
type Spec struct {
	Count int64 `json:"count"`
	// Length is the whole code's length, prefix included.
	Length int `json:"length"`
	// Charset of the random part: "numeric" or "alphanumeric" ("" means alphanumeric).
	Charset string `json:"charset,omitempty"`
	// Prefix is written before the random part, as is: upper-case letters, digits, '-'.
	Prefix string `json:"prefix,omitempty"`
}

// Alphabet returns the characters of a charset, in digit order, or false when the
// charset is unknown.
func Alphabet(charset string) (string, bool) {
	switch charset {
	case CharsetNumeric:
		return numericAlphabet, true
	case CharsetAlphanumeric, "":
		return alphanumericAlphabet, true
	}
	return "", false
}

// layout is the shape of a series' codes, without the count.
type layout struct {
	charset string // normalised: never ""
	prefix  string
	length  int
}

func (l layout) randomLength() int { return l.length - len(l.prefix) }

// checkLayout validates the shape of codes; minRandom is the shortest allowed random
// part (unique series and randomized common codes differ).
func checkLayout(charset, prefix string, length, minRandom int) (layout, error) {
	if charset == "" {
		charset = DefaultCharset
	}
	if _, ok := Alphabet(charset); !ok {
		return layout{}, tillkeep.Errorf(tillkeep.CodeInvalidRequest,
			"charset must be %q or %q, not %q", CharsetNumeric, CharsetAlphanumeric, charset)
	}
	if err := checkPrefix(prefix); err != nil {
		return layout{}, err
	}
	if length < MinLength || length > MaxLength {
		return layout{}, tillkeep.Errorf(tillkeep.CodeInvalidRequest,
			"length must be between %d and %d characters (prefix included), not %d", MinLength, MaxLength, length)
	}
	if random := length - len(prefix); random < minRandom {
		return layout{}, tillkeep.Errorf(tillkeep.CodeInvalidRequest,
			"length %d leaves %d random characters after the %d-character prefix %q; at least %d are needed, so length must be at least %d",
			length, max(random, 0), len(prefix), prefix, minRandom, len(prefix)+minRandom)
	}
	return layout{charset: charset, prefix: prefix, length: length}, nil
}

// checkPrefix allows upper-case ASCII letters, digits and '-': what a cashier can type
// and a POS will not transform.
func checkPrefix(prefix string) error {
	for i := 0; i < len(prefix); i++ {
		c := prefix[i]
		if (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' {
			continue
		}
		if c >= 'a' && c <= 'z' {
			return tillkeep.Errorf(tillkeep.CodeInvalidRequest,
				"prefix %q must be upper-case (write %q)", prefix, strings.ToUpper(prefix))
		}
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest,
			"prefix %q may hold only upper-case letters A-Z, digits and '-', not %q at position %d", prefix, rune(c), i+1)
	}
	return nil
}

// Check validates the spec for a series that already holds existing codes: the
// length, charset and prefix, the count, and the code-space rule (after this request,
// at most one random part in a million may be a valid code). Errors are
// *tillkeep.Error with CodeInvalidRequest and a message naming the field.
func (s Spec) Check(existing int64) error {
	l, err := checkLayout(s.Charset, s.Prefix, s.Length, MinRandomLength)
	if err != nil {
		return err
	}
	if s.Count < 1 || s.Count > MaxCount {
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "count must be between 1 and %d, not %d", MaxCount, s.Count)
	}
	if existing < 0 {
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "existing code count must not be negative, not %d", existing)
	}
	return checkSpace(l, s.Count, existing)
}

// checkSpace applies the code-space rule: (existing+count) * 1e6 <= alphabet^random.
func checkSpace(l layout, count, existing int64) error {
	alphabet, _ := Alphabet(l.charset)
	total := new(big.Int).Add(big.NewInt(existing), big.NewInt(count))
	needed := new(big.Int).Mul(total, big.NewInt(maxGuessDenominator))
	random := l.randomLength()
	if spaceOf(len(alphabet), random).Cmp(needed) >= 0 {
		return nil
	}
	minRandom := random
	for spaceOf(len(alphabet), minRandom).Cmp(needed) < 0 {
		minRandom++
	}
	what := fmt.Sprintf("%d codes", total)
	if existing > 0 {
		what = fmt.Sprintf("%d codes (%d new, %d existing)", total, count, existing)
	}
	advice := fmt.Sprintf("length must be at least %d", len(l.prefix)+minRandom)
	if len(l.prefix)+minRandom > MaxLength {
		advice = fmt.Sprintf("that needs length %d, over the maximum of %d: shorten the prefix, use the alphanumeric charset or ask for fewer codes",
			len(l.prefix)+minRandom, MaxLength)
	}
	return tillkeep.Errorf(tillkeep.CodeInvalidRequest,
		"length %d is too short for %s: with %d random %s characters one guess in %s would hit a valid code (the limit is one in %d); %s",
		l.length, what, random, l.charset, guessOdds(len(alphabet), random, total), maxGuessDenominator, advice)
}

// spaceOf is alphabetSize^random as an exact integer.
func spaceOf(alphabetSize, random int) *big.Int {
	return new(big.Int).Exp(big.NewInt(int64(alphabetSize)), big.NewInt(int64(random)), nil)
}

// guessOdds says "one in N" for the chance that a guess hits one of total codes.
func guessOdds(alphabetSize, random int, total *big.Int) string {
	odds := new(big.Int).Quo(spaceOf(alphabetSize, random), total)
	if odds.Sign() == 0 {
		odds.SetInt64(1)
	}
	return odds.String()
}
