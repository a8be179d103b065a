package codegen

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"math/bits"
)

// feistelRounds is the number of rounds of the permutation. Ten is what NIST's FF1
// format-preserving cipher uses for small domains, where few rounds would leak structure.
const feistelRounds = 10

// Domain tags of the AES input block, so that the round function and the tail PRF never
// see the same block.
const (
	tagRound byte = 'R'
	tagTail  byte = 'T'
)

// permutation is a keyed bijection of [0, size): an unbalanced Feistel network over the
// smallest bit width that holds size-1, with cycle-walking for values that land outside.
// Since 2^width < 2*size, a value walks less than twice on average.
type permutation struct {
	block cipher.Block
	size  uint64
	// u and v are the widths of the two halves (u+v = width, u = width/2).
	u, v  uint
	in    [aes.BlockSize]byte
	out   [aes.BlockSize]byte
	width byte
}

func newPermutation(key []byte, size uint64) (*permutation, error) {
	if size == 0 || size > 1<<63 {
		return nil, fmt.Errorf("permutation size %d is out of range", size)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("permutation key: %w", err)
	}
	width := uint(bits.Len64(size - 1))
	// Two bits at least, so that each half has a bit to mix; the walk covers the rest.
	width = max(width, 2)
	u := width / 2
	return &permutation{block: block, size: size, u: u, v: width - u, width: byte(width)}, nil
}

// apply maps x (which must be < size) to its image, also < size.
func (p *permutation) apply(x uint64) uint64 {
	for {
		x = p.encrypt(x)
		if x < p.size {
			return x
		}
	}
}

// encrypt is the Feistel network on width bits, with the FF1 round structure: the half
// that is added to alternates between u and v bits wide.
func (p *permutation) encrypt(x uint64) uint64 {
	a := x >> p.v
	b := x & (1<<p.v - 1)
	for round := range feistelRounds {
		m := p.v
		if round%2 == 0 {
			m = p.u
		}
		c := (a + p.round(byte(round), b)) & (1<<m - 1)
		a, b = b, c
	}
	return a<<p.v | b
}

// round is the round function: AES of (tag, round, width, half), truncated by the caller.
func (p *permutation) round(round byte, half uint64) uint64 {
	p.in = [aes.BlockSize]byte{0: tagRound, 1: round, 2: p.width}
	binary.BigEndian.PutUint64(p.in[8:], half)
	p.block.Encrypt(p.out[:], p.in[:])
	return binary.BigEndian.Uint64(p.out[:8])
}

// tail is a keyed pseudo-random function of (counter, i), for the random characters
// that do not fit in the permuted part.
func (p *permutation) tail(counter uint64, i byte) (uint64, uint64) {
	p.in = [aes.BlockSize]byte{0: tagTail, 1: i}
	binary.BigEndian.PutUint64(p.in[8:], counter)
	p.block.Encrypt(p.out[:], p.in[:])
	return binary.BigEndian.Uint64(p.out[:8]), binary.BigEndian.Uint64(p.out[8:])
}
