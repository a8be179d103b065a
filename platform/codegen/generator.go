package codegen

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"slices"

	"github.com/tillkeep/tillkeep"
)

// KeySize is the length of a series key in bytes (AES-256).
const KeySize = 32

// The longest random part that the permutation covers exactly, per charset: the largest
// power of the alphabet size that stays under 2^63. Characters beyond it (codes with
// more than 18 random digits or 12 random alphanumerics) come from a keyed PRF of the
// counter: the permuted part alone keeps codes unique, the rest adds unpredictability.
const (
	maxCoreNumeric      = 18 // 10^18 < 2^63
	maxCoreAlphanumeric = 12 // 31^12 < 2^63
	// Characters taken from one 64-bit PRF word: few enough that reducing the word
	// modulo alphabet^n is unbiased to within 1e-10.
	tailPerWordNumeric      = 9 // 10^9
	tailPerWordAlphanumeric = 6 // 31^6
)

// State is everything needed to resume a series: persist it after each batch (JSON is
// fine) and keep it secret, since the key lets anyone list the series' codes.
type State struct {
	Key []byte `json:"key"`
	// Next is the counter of the next code to make.
	Next    uint64 `json:"next"`
	Length  int    `json:"length"`
	Charset string `json:"charset"`
	Prefix  string `json:"prefix,omitempty"`
	// RandomizedCommon marks a randomized common series (see NewRandomizedCommonState),
	// whose random part may be shorter than a unique series'.
	RandomizedCommon bool `json:"randomized_common,omitempty"`
}

// NewState starts a series of spec's shape with a fresh key read from rnd (nil means
// crypto/rand). It checks the shape, not the count: call spec.Check first.
func NewState(spec Spec, rnd io.Reader) (State, error) {
	l, err := checkLayout(spec.Charset, spec.Prefix, spec.Length, MinRandomLength)
	if err != nil {
		return State{}, err
	}
	return newState(l, false, rnd)
}

func newState(l layout, randomizedCommon bool, rnd io.Reader) (State, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	key := make([]byte, KeySize)
	if _, err := io.ReadFull(rnd, key); err != nil {
		return State{}, tillkeep.Wrap(tillkeep.CodeInternal, err, "read a series key")
	}
	return State{Key: key, Length: l.length, Charset: l.charset, Prefix: l.prefix, RandomizedCommon: randomizedCommon}, nil
}

// Generator makes the codes of one series in counter order. It is not safe for
// concurrent use; its memory does not grow with the number of codes.
type Generator struct {
	perm   *permutation
	key    []byte
	prefix string
	next   uint64
	// numeric selects the alphabet (the encoders divide by constants, which compiles to
	// multiplications: much faster than dividing by a variable).
	numeric          bool
	randomizedCommon bool
	length           int
	coreLen, tailLen int
}

// NewGenerator resumes the series of st at st.Next.
func NewGenerator(st State) (*Generator, error) {
	minRandom := MinRandomLength
	if st.RandomizedCommon {
		minRandom = minRandomCommonRandom
	}
	l, err := checkLayout(st.Charset, st.Prefix, st.Length, minRandom)
	if err != nil {
		return nil, err
	}
	if len(st.Key) != KeySize {
		return nil, tillkeep.Errorf(tillkeep.CodeInvalidRequest, "series key must be %d bytes, not %d", KeySize, len(st.Key))
	}
	g := &Generator{
		key:              slices.Clone(st.Key),
		prefix:           l.prefix,
		next:             st.Next,
		numeric:          l.charset == CharsetNumeric,
		randomizedCommon: st.RandomizedCommon,
		length:           l.length,
	}
	random := l.randomLength()
	maxCore, alphabetSize := maxCoreAlphanumeric, uint64(len(alphanumericAlphabet))
	if g.numeric {
		maxCore, alphabetSize = maxCoreNumeric, uint64(len(numericAlphabet))
	}
	g.coreLen = min(random, maxCore)
	g.tailLen = random - g.coreLen
	size := uint64(1)
	for range g.coreLen {
		size *= alphabetSize
	}
	if st.Next > size {
		return nil, tillkeep.Errorf(tillkeep.CodeInvalidRequest, "series counter %d is past the end of its space of %d codes", st.Next, size)
	}
	g.perm, err = newPermutation(g.key, size)
	if err != nil {
		return nil, tillkeep.Wrap(tillkeep.CodeInternal, err, "set up the code permutation")
	}
	return g, nil
}

// Next returns the next code of the series.
func (g *Generator) Next() (string, error) {
	var buf [MaxLength]byte
	code, err := g.AppendNext(buf[:0])
	if err != nil {
		return "", err
	}
	return string(code), nil
}

// AppendNext appends the next code to dst and returns the extended slice. With a
// reused buffer it allocates nothing.
func (g *Generator) AppendNext(dst []byte) ([]byte, error) {
	if g.next >= g.perm.size {
		return dst, tillkeep.Errorf(tillkeep.CodeInvalidRequest,
			"the series has used all %d codes of its space; start a series with longer codes", g.perm.size)
	}
	counter := g.next
	g.next++
	start := len(dst)
	dst = slices.Grow(dst, g.length)
	dst = append(dst, g.prefix...)
	dst = dst[:start+g.length]
	core := dst[start+len(g.prefix) : start+len(g.prefix)+g.coreLen]
	g.encode(core, g.perm.apply(counter))
	if g.tailLen > 0 {
		g.fillTail(dst[start+len(g.prefix)+g.coreLen:], counter)
	}
	return dst, nil
}

// Fill sets every element of dst to the next codes of the series. The codes of one call
// share one backing string, so a batch costs two allocations, not one per code.
func (g *Generator) Fill(dst []string) error {
	if len(dst) == 0 {
		return nil
	}
	buf := make([]byte, 0, len(dst)*g.length)
	for range dst {
		var err error
		if buf, err = g.AppendNext(buf); err != nil {
			return err
		}
	}
	all := string(buf)
	for i := range dst {
		dst[i] = all[i*g.length : (i+1)*g.length]
	}
	return nil
}

// State returns the series state to persist: resuming from it continues after the last
// code returned.
func (g *Generator) State() State {
	charset := CharsetAlphanumeric
	if g.numeric {
		charset = CharsetNumeric
	}
	return State{
		Key:              slices.Clone(g.key),
		Next:             g.next,
		Length:           g.length,
		Charset:          charset,
		Prefix:           g.prefix,
		RandomizedCommon: g.randomizedCommon,
	}
}

// Remaining is how many codes the series' space still holds.
func (g *Generator) Remaining() uint64 { return g.perm.size - g.next }

// encode writes v as len(dst) digits of the alphabet, most significant first.
func (g *Generator) encode(dst []byte, v uint64) {
	if g.numeric {
		for i := len(dst) - 1; i >= 0; i-- {
			dst[i] = numericAlphabet[v%10]
			v /= 10
		}
		return
	}
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = alphanumericAlphabet[v%31]
		v /= 31
	}
}

// fillTail writes the characters past the permuted part from the PRF of the counter.
func (g *Generator) fillTail(dst []byte, counter uint64) {
	perWord := tailPerWordAlphanumeric
	if g.numeric {
		perWord = tailPerWordNumeric
	}
	var block byte
	for len(dst) > 0 {
		w0, w1 := g.perm.tail(counter, block)
		block++
		for _, w := range [2]uint64{w0, w1} {
			n := min(perWord, len(dst))
			g.encode(dst[:n], w)
			dst = dst[n:]
			if len(dst) == 0 {
				break
			}
		}
	}
}

// progressEvery is how many codes GenerateTo makes between progress reports and checks
// for cancellation.
const progressEvery = 1 << 16

// GenerateTo makes spec.Count codes of a new series (fresh random key) and writes them
// to w, one per line, calling progress (if not nil) with the number written so far.
// It holds no codes in memory and stops with ctx's error when ctx ends.
func GenerateTo(ctx context.Context, spec Spec, w io.Writer, progress func(done int64)) error {
	if err := spec.Check(0); err != nil {
		return err
	}
	st, err := NewState(spec, nil)
	if err != nil {
		return err
	}
	g, err := NewGenerator(st)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("generate codes: %w", err)
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	for done := int64(0); done < spec.Count; done++ {
		if done%progressEvery == 0 && done > 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("generate codes: stopped after %d: %w", done, err)
			}
			if progress != nil {
				progress(done)
			}
		}
		line, err := g.AppendNext(bw.AvailableBuffer())
		if err != nil {
			return err
		}
		line = append(line, '\n')
		if _, err := bw.Write(line); err != nil {
			return fmt.Errorf("write generated codes: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write generated codes: %w", err)
	}
	if progress != nil {
		progress(spec.Count)
	}
	return nil
}
