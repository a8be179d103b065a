package codegen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tillkeep/tillkeep"
)

// fixedKey makes a deterministic key, so that failures can be reproduced.
func fixedKey(seed byte) []byte {
	key := make([]byte, KeySize)
	for i := range key {
		key[i] = seed + byte(i)*7
	}
	return key
}

func mustGenerator(t testing.TB, st State) *Generator {
	t.Helper()
	g, err := NewGenerator(st)
	if err != nil {
		t.Fatalf("NewGenerator(%+v): %v", st, err)
	}
	return g
}

// bitset records which values of a space were seen.
type bitset []uint64

func newBitset(size uint64) bitset { return make(bitset, (size+63)/64) }

// add reports whether v was new.
func (b bitset) add(v uint64) bool {
	w, m := v/64, uint64(1)<<(v%64)
	if b[w]&m != 0 {
		return false
	}
	b[w] |= m
	return true
}

// decode turns the random part of a code back into its value in the space. It is on
// the hot path of the million-code tests, so it fails without t.Helper's stack walk.
func decode(t testing.TB, random, alphabet string) uint64 {
	var v uint64
	for i := 0; i < len(random); i++ {
		d := strings.IndexByte(alphabet, random[i])
		if d < 0 {
			t.Fatalf("character %q of %q is not in the alphabet %q", random[i], random, alphabet)
		}
		v = v*uint64(len(alphabet)) + uint64(d)
	}
	return v
}

// checkShape fails unless code has the state's length, prefix and alphabet.
func checkShape(t testing.TB, code string, st State) {
	t.Helper()
	if len(code) != st.Length {
		t.Fatalf("code %q is %d long, want %d", code, len(code), st.Length)
	}
	if !strings.HasPrefix(code, st.Prefix) {
		t.Fatalf("code %q lacks prefix %q", code, st.Prefix)
	}
	alphabet, _ := Alphabet(st.Charset)
	for _, c := range []byte(code[len(st.Prefix):]) {
		if strings.IndexByte(alphabet, c) < 0 {
			t.Fatalf("code %q holds %q, outside the %s alphabet", code, c, st.Charset)
		}
	}
}

func TestPermutationIsABijection(t *testing.T) {
	for _, size := range []uint64{1, 2, 3, 4, 5, 16, 17, 100, 1000, 4096, 4097, 29791, 10000} {
		p, err := newPermutation(fixedKey(byte(size)), size)
		if err != nil {
			t.Fatal(err)
		}
		seen := newBitset(size)
		fixedPoints := 0
		for x := range size {
			y := p.apply(x)
			if y >= size {
				t.Fatalf("size %d: %d maps to %d, outside the space", size, x, y)
			}
			if !seen.add(y) {
				t.Fatalf("size %d: %d maps to %d, which another value already maps to", size, x, y)
			}
			if x == y {
				fixedPoints++
			}
		}
		// A random permutation has about one fixed point; the identity has size of them.
		if size >= 100 && fixedPoints > 10 {
			t.Errorf("size %d: %d fixed points: the permutation barely mixes", size, fixedPoints)
		}
	}
}

func TestPermutationRejectsBadSizes(t *testing.T) {
	for _, size := range []uint64{0, 1<<63 + 1} {
		if _, err := newPermutation(fixedKey(1), size); err == nil {
			t.Errorf("newPermutation(size %d) succeeded", size)
		}
	}
}

// TestGeneratorCoversTinySpaces generates every code of small spaces: each code once,
// all of them, then a clear error.
func TestGeneratorCoversTinySpaces(t *testing.T) {
	for _, st := range []State{
		{Key: fixedKey(3), Length: 4, Charset: CharsetNumeric},
		{Key: fixedKey(4), Length: 7, Charset: CharsetNumeric, Prefix: "AB-"},
		{Key: fixedKey(5), Length: 4, Charset: CharsetAlphanumeric},
	} {
		t.Run(st.Charset+"/"+st.Prefix, func(t *testing.T) {
			if st.Charset == CharsetAlphanumeric && testing.Short() {
				t.Skip("the 923,521-code alphanumeric space takes seconds; skipped in -short")
			}
			g := mustGenerator(t, st)
			alphabet, _ := Alphabet(st.Charset)
			size := g.Remaining()
			seen := newBitset(size)
			buf := make([]byte, 0, MaxLength)
			for i := range size {
				var err error
				if buf, err = g.AppendNext(buf[:0]); err != nil {
					t.Fatalf("code %d of %d: %v", i, size, err)
				}
				code := string(buf)
				if i < 1000 {
					checkShape(t, code, st)
				}
				if !seen.add(decode(t, code[len(st.Prefix):], alphabet)) {
					t.Fatalf("code %q repeated after %d codes", code, i)
				}
			}
			_, err := g.Next()
			if tillkeep.ErrorCode(err) != tillkeep.CodeInvalidRequest || !strings.Contains(err.Error(), "used all") {
				t.Fatalf("Next after %d codes = %v, want an exhausted-space error", size, err)
			}
		})
	}
}

func TestGeneratorTwoMillionUnique(t *testing.T) {
	n := 2_000_000
	if raceEnabled {
		n = 300_000
		t.Logf("race detector on: checking %d codes instead of 2,000,000", n)
	}
	st := State{Key: fixedKey(9), Length: 7, Charset: CharsetNumeric}
	g := mustGenerator(t, st)
	seen := newBitset(10_000_000)
	buf := make([]byte, 0, MaxLength)
	for i := range n {
		var err error
		if buf, err = g.AppendNext(buf[:0]); err != nil {
			t.Fatal(err)
		}
		if !seen.add(decode(t, string(buf), numericAlphabet)) {
			t.Fatalf("code %q repeated after %d codes", buf, i)
		}
	}
}

func TestResumeFromState(t *testing.T) {
	st, err := NewState(Spec{Length: 12, Prefix: "SP"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := mustGenerator(t, st)
	var all []string
	var mid State
	for i := range 1000 {
		if i == 500 {
			mid = g.State()
		}
		code, err := g.Next()
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, code)
	}
	data, err := json.Marshal(mid)
	if err != nil {
		t.Fatal(err)
	}
	var restored State
	if err := json.Unmarshal(data, &restored); err != nil {
		t.Fatal(err)
	}
	if restored.Next != 500 || !bytes.Equal(restored.Key, st.Key) {
		t.Fatalf("restored state %+v does not match the saved one", restored)
	}
	resumed := mustGenerator(t, restored)
	for i := 500; i < 1000; i++ {
		code, err := resumed.Next()
		if err != nil {
			t.Fatal(err)
		}
		if code != all[i] {
			t.Fatalf("resumed code %d = %q, want %q", i, code, all[i])
		}
	}
	// The same key from the start gives the same series: nothing random outside the key.
	again := mustGenerator(t, st)
	for i := range 10 {
		if code, _ := again.Next(); code != all[i] {
			t.Fatalf("replayed code %d = %q, want %q", i, code, all[i])
		}
	}
	if dup := duplicates(all); len(dup) > 0 {
		t.Fatalf("repeated codes: %v", dup)
	}
}

func duplicates(codes []string) []string {
	sorted := slices.Clone(codes)
	slices.Sort(sorted)
	var dup []string
	for i := 1; i < len(sorted); i++ {
		if sorted[i] == sorted[i-1] {
			dup = append(dup, sorted[i])
		}
	}
	return dup
}

func TestStateIsACopy(t *testing.T) {
	st := State{Key: fixedKey(1), Length: 10}
	g := mustGenerator(t, st)
	st.Key[0] ^= 0xFF // the caller's slice must not reach into the generator
	saved := g.State()
	saved.Key[1] ^= 0xFF
	if !bytes.Equal(g.State().Key, fixedKey(1)) {
		t.Fatal("the generator's key changed through a caller's slice")
	}
}

func TestKeysGiveDifferentSeries(t *testing.T) {
	a := mustGenerator(t, State{Key: fixedKey(1), Length: 10})
	b := mustGenerator(t, State{Key: fixedKey(2), Length: 10})
	same := 0
	for range 100 {
		x, _ := a.Next()
		y, _ := b.Next()
		if x == y {
			same++
		}
	}
	if same > 0 {
		t.Fatalf("%d of 100 codes equal under two keys", same)
	}
}

func TestCodeShapes(t *testing.T) {
	for _, spec := range []Spec{
		{Length: 4, Charset: CharsetNumeric},
		{Length: 10},
		{Length: 10, Charset: CharsetAlphanumeric, Prefix: "SPRING-"[:4]},
		{Length: 18, Charset: CharsetNumeric, Prefix: "9"},
		{Length: 32, Charset: CharsetAlphanumeric},                 // 12 permuted + 20 PRF characters
		{Length: 32, Charset: CharsetNumeric, Prefix: "X-"},        // 18 permuted + 12 PRF digits
		{Length: 32, Charset: CharsetAlphanumeric, Prefix: "ABCD"}, // 12 + 16
	} {
		st, err := NewState(spec, nil)
		if err != nil {
			t.Fatalf("NewState(%+v): %v", spec, err)
		}
		if spec.Charset == "" && st.Charset != DefaultCharset {
			t.Fatalf("empty charset became %q, want %q", st.Charset, DefaultCharset)
		}
		g := mustGenerator(t, st)
		codes := make([]string, 5000)
		if err := g.Fill(codes); err != nil {
			t.Fatal(err)
		}
		for _, code := range codes {
			checkShape(t, code, st)
			if strings.ContainsAny(code[len(spec.Prefix):], "0O1IL") && st.Charset == CharsetAlphanumeric {
				t.Fatalf("code %q holds a look-alike character", code)
			}
		}
		if dup := duplicates(codes); len(dup) > 0 {
			t.Fatalf("%+v: repeated codes %v", spec, dup)
		}
		// The PRF tail must vary too, or long codes would be as guessable as short ones.
		if g.tailLen > 0 {
			tails := map[string]bool{}
			for _, code := range codes {
				tails[code[len(code)-g.tailLen:]] = true
			}
			if len(tails) < len(codes)-1 {
				t.Fatalf("%+v: only %d distinct tails in %d codes", spec, len(tails), len(codes))
			}
		}
	}
}

func TestFillMatchesNext(t *testing.T) {
	st := State{Key: fixedKey(7), Length: 9, Charset: CharsetNumeric, Next: 42}
	batch := make([]string, 300)
	if err := mustGenerator(t, st).Fill(batch); err != nil {
		t.Fatal(err)
	}
	one := mustGenerator(t, st)
	for i, want := range batch {
		if got, _ := one.Next(); got != want {
			t.Fatalf("code %d: Next %q, Fill %q", i, got, want)
		}
	}
	if err := one.Fill(nil); err != nil {
		t.Fatal(err)
	}
}

func TestNewGeneratorRefusesBadStates(t *testing.T) {
	for name, st := range map[string]State{
		"short key":        {Key: make([]byte, 16), Length: 10},
		"no key":           {Length: 10},
		"past the end":     {Key: fixedKey(1), Length: 4, Charset: CharsetNumeric, Next: 10_001},
		"unknown charset":  {Key: fixedKey(1), Length: 10, Charset: "hex"},
		"too long":         {Key: fixedKey(1), Length: 33},
		"random too short": {Key: fixedKey(1), Length: 6, Prefix: "ABC"},
		"lower prefix":     {Key: fixedKey(1), Length: 10, Prefix: "ab"},
	} {
		if _, err := NewGenerator(st); tillkeep.ErrorCode(err) != tillkeep.CodeInvalidRequest {
			t.Errorf("%s: NewGenerator = %v, want invalid_request", name, err)
		}
	}
	// Exactly at the end is a valid, exhausted series.
	g := mustGenerator(t, State{Key: fixedKey(1), Length: 4, Charset: CharsetNumeric, Next: 10_000})
	if _, err := g.Next(); err == nil {
		t.Fatal("Next on an exhausted series succeeded")
	}
}

func TestNewStateReadsTheKeyFromRnd(t *testing.T) {
	st, err := NewState(Spec{Length: 10}, bytes.NewReader(fixedKey(5)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(st.Key, fixedKey(5)) || st.Next != 0 {
		t.Fatalf("state %+v", st)
	}
	if _, err := NewState(Spec{Length: 10}, bytes.NewReader(make([]byte, 5))); tillkeep.ErrorCode(err) != tillkeep.CodeInternal {
		t.Fatalf("short random source: err = %v, want internal", err)
	}
	if _, err := NewState(Spec{Length: 3}, nil); tillkeep.ErrorCode(err) != tillkeep.CodeInvalidRequest {
		t.Fatalf("bad spec: err = %v, want invalid_request", err)
	}
}

func TestGenerateTo(t *testing.T) {
	var out bytes.Buffer
	var reports []int64
	spec := Spec{Count: 200_000, Length: 13, Charset: CharsetNumeric, Prefix: "7"}
	if err := GenerateTo(context.Background(), spec, &out, func(done int64) { reports = append(reports, done) }); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != int(spec.Count) {
		t.Fatalf("%d lines, want %d", len(lines), spec.Count)
	}
	st := State{Length: spec.Length, Charset: spec.Charset, Prefix: spec.Prefix}
	for _, line := range lines[:1000] {
		checkShape(t, line, st)
	}
	if dup := duplicates(lines); len(dup) > 0 {
		t.Fatalf("%d repeated codes, e.g. %q", len(dup), dup[0])
	}
	if len(reports) < 2 || reports[len(reports)-1] != spec.Count || !slices.IsSorted(reports) {
		t.Fatalf("progress reports %v: want increasing, ending at %d", reports, spec.Count)
	}
}

func TestGenerateToStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	err := GenerateTo(ctx, Spec{Count: 1_000_000, Length: 10}, &out, func(done int64) {
		if done >= progressEvery {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if lines := strings.Count(out.String(), "\n"); lines >= 1_000_000 {
		t.Fatalf("wrote %d lines after cancel", lines)
	}
	if err := GenerateTo(context.Background(), Spec{Count: 1_000_000, Length: 6, Charset: CharsetNumeric}, &out, nil); tillkeep.ErrorCode(err) != tillkeep.CodeInvalidRequest {
		t.Fatalf("oversized request: err = %v, want invalid_request", err)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestGenerateToReportsWriteErrors(t *testing.T) {
	err := GenerateTo(context.Background(), Spec{Count: 10, Length: 10}, failingWriter{}, nil)
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err = %v, want the writer's error", err)
	}
}
