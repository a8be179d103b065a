package codegen

import (
	"crypto/rand"
	"io"
	"math/big"
	"strings"

	"github.com/tillkeep/tillkeep"
)

// Randomized common codes (the coupon-management model's "randomized common code"): a
// fixed part that is unique in the organisation, followed by a random part, 5 to 10
// characters overall, at least half of them random. They are common codes that can be
// told apart, so each customer's copy is single-use and traceable; they are not meant
// to be unguessable (the fixed part is public), so the one-in-a-million rule of unique
// series does not apply. Instead a series may fill at most half of its random space, to
// keep random draws cheap.
const (
	MinRandomizedCommonLength = 5
	MaxRandomizedCommonLength = 10
	// minRandomCommonRandom is the random part of the shortest code: 5 - 5/2.
	minRandomCommonRandom = MinRandomizedCommonLength - MinRandomizedCommonLength/2
)

// randomizedCommonLayout checks a fixed part and length. The random part is numeric when
// the fixed part is all digits and alphanumeric otherwise, as in the model, where the
// sample code decides.
func randomizedCommonLayout(fixed string, length int) (layout, error) {
	if length < MinRandomizedCommonLength || length > MaxRandomizedCommonLength {
		return layout{}, tillkeep.Errorf(tillkeep.CodeInvalidRequest,
			"length of a randomized common code must be between %d and %d characters, not %d",
			MinRandomizedCommonLength, MaxRandomizedCommonLength, length)
	}
	if fixed == "" {
		return layout{}, tillkeep.Errorf(tillkeep.CodeInvalidRequest, "fixed part of a randomized common code is empty")
	}
	numeric := true
	for i := 0; i < len(fixed); i++ {
		c := fixed[i]
		switch {
		case c >= '0' && c <= '9':
		case c >= 'A' && c <= 'Z':
			numeric = false
		default:
			return layout{}, tillkeep.Errorf(tillkeep.CodeInvalidRequest,
				"fixed part %q may hold only upper-case letters A-Z and digits, not %q at position %d", fixed, rune(c), i+1)
		}
	}
	if len(fixed) > length/2 {
		return layout{}, tillkeep.Errorf(tillkeep.CodeInvalidRequest,
			"fixed part %q is %d characters long; at most half of a %d-character code (%d) may be fixed",
			fixed, len(fixed), length, length/2)
	}
	charset := CharsetAlphanumeric
	if numeric {
		charset = CharsetNumeric
	}
	return checkLayout(charset, fixed, length, minRandomCommonRandom)
}

// CheckRandomizedCommon validates a randomized common request: the fixed part and
// length, and that existing+count codes fill at most half of the random space.
// It does not know other offers: the platform must check that fixed is unique in the
// organisation (see FixedPartsOverlap).
func CheckRandomizedCommon(fixed string, length int, count, existing int64) error {
	l, err := randomizedCommonLayout(fixed, length)
	if err != nil {
		return err
	}
	if count < 1 || count > MaxCount {
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "count must be between 1 and %d, not %d", MaxCount, count)
	}
	if existing < 0 {
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "existing code count must not be negative, not %d", existing)
	}
	alphabet, _ := Alphabet(l.charset)
	space := spaceOf(len(alphabet), l.randomLength())
	total := new(big.Int).Add(big.NewInt(count), big.NewInt(existing))
	if new(big.Int).Mul(total, big.NewInt(2)).Cmp(space) > 0 {
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest,
			"count: %s codes do not fit a %d-character code with fixed part %q: its %d random %s characters allow at most %s (half the space); use a longer code",
			total, length, fixed, l.randomLength(), l.charset, new(big.Int).Quo(space, big.NewInt(2)))
	}
	return nil
}

// RandomizedCommon draws one randomized common code: fixed followed by length-len(fixed)
// uniformly random characters read from rnd (nil means crypto/rand). Draws may repeat:
// the storage refuses a repeat and the caller draws again. For many codes, prefer a
// generator over NewRandomizedCommonState, which never repeats.
func RandomizedCommon(fixed string, length int, rnd io.Reader) (string, error) {
	l, err := randomizedCommonLayout(fixed, length)
	if err != nil {
		return "", err
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	alphabet, _ := Alphabet(l.charset)
	// Bytes at or above limit are rejected, so that byte % len(alphabet) is uniform.
	limit := 256 - 256%len(alphabet)
	code := make([]byte, length)
	copy(code, fixed)
	var buf [MaxRandomizedCommonLength]byte
	for i, reads := len(fixed), 0; i < length; reads++ {
		// A source that keeps giving rejected bytes is broken, not unlucky: with a fair
		// one, 64 reads in a row without a usable byte happen with odds below 10^-96.
		if reads == 64 {
			return "", tillkeep.Errorf(tillkeep.CodeInternal, "the random source gives only unusable bytes")
		}
		// Read only what is still missing, so no randomness is thrown away unused.
		chunk := buf[:length-i]
		if _, err := io.ReadFull(rnd, chunk); err != nil {
			return "", tillkeep.Wrap(tillkeep.CodeInternal, err, "read random characters")
		}
		for _, b := range chunk {
			if int(b) < limit {
				code[i] = alphabet[int(b)%len(alphabet)]
				i++
			}
		}
	}
	return string(code), nil
}

// NewRandomizedCommonState starts a randomized common series: a Generator over it makes
// fixed followed by a random part, without repeats, in random order.
func NewRandomizedCommonState(fixed string, length int, rnd io.Reader) (State, error) {
	l, err := randomizedCommonLayout(fixed, length)
	if err != nil {
		return State{}, err
	}
	return newState(l, true, rnd)
}

// FixedPartsOverlap reports whether two fixed parts could produce the same code: when
// one starts with the other, a code of one series can look like a code of the other.
// "Unique in the organisation" means no two offers' fixed parts overlap.
func FixedPartsOverlap(a, b string) bool {
	return strings.HasPrefix(a, b) || strings.HasPrefix(b, a)
}
