package wire

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/tillkeep/tillkeep"
)

// Errors of a snapshot stream that must not be applied.
var (
	// ErrSnapshotTruncated: the stream ended before its trailer (a cut connection).
	ErrSnapshotTruncated = errors.New("catalog snapshot ended before its trailer")
	// ErrSnapshotCorrupt: the stream is out of order, malformed, or its digest or
	// counts do not match the trailer.
	ErrSnapshotCorrupt = errors.New("catalog snapshot is corrupt")
)

// maxSnapshotLine bounds one line, so that a corrupt stream cannot make a till buffer
// without limit. An offer with every rule list filled stays far below it.
const maxSnapshotLine = 4 << 20

// Snapshot sections, in stream order.
const (
	stageStart = iota
	stageOffers
	stageCoupons
	stageDone
)

// SnapshotWriter writes a snapshot stream: Header once, every Offer, every Coupon in
// strictly ascending code order, then Close, which writes the trailer. It refuses calls
// out of order, so the platform cannot produce a stream the till would refuse.
type SnapshotWriter struct {
	bw       *bufio.Writer
	sum      hash.Hash
	stage    int
	offers   int
	coupons  int
	lastCode string
	buf      []byte
	err      error
}

// NewSnapshotWriter returns a writer of a snapshot stream to w. It buffers; Close
// flushes.
func NewSnapshotWriter(w io.Writer) *SnapshotWriter {
	return &SnapshotWriter{bw: bufio.NewWriterSize(w, 256<<10), sum: sha256.New()}
}

// Counts returns how many offers and coupons were written so far.
func (w *SnapshotWriter) Counts() (offers, coupons int) { return w.offers, w.coupons }

func (w *SnapshotWriter) line(l SnapshotLine, hashed bool) error {
	if w.err != nil {
		return w.err
	}
	b, err := json.Marshal(l)
	if err != nil {
		w.err = fmt.Errorf("encode snapshot %s line: %w", l.Type, err)
		return w.err
	}
	b = append(b, '\n')
	if hashed {
		w.sum.Write(b)
	}
	if _, err := w.bw.Write(b); err != nil {
		w.err = fmt.Errorf("write snapshot: %w", err)
	}
	return w.err
}

func (w *SnapshotWriter) outOfOrder(what string) error {
	if w.err == nil {
		w.err = fmt.Errorf("write snapshot: %s out of order", what)
	}
	return w.err
}

// Header writes the header; it must come first.
func (w *SnapshotWriter) Header(h SnapshotHeader) error {
	if w.stage != stageStart {
		return w.outOfOrder("header")
	}
	h.Format = SnapshotFormat
	w.stage = stageOffers
	return w.line(SnapshotLine{Type: LineHeader, Header: &h}, true)
}

// Offer writes one offer; every offer comes before the first coupon.
func (w *SnapshotWriter) Offer(o *tillkeep.Offer) error {
	if w.stage != stageOffers {
		return w.outOfOrder("offer")
	}
	w.offers++
	return w.line(SnapshotLine{Type: LineOffer, Offer: o}, true)
}

// Coupon writes one coupon; codes must be strictly ascending.
func (w *SnapshotWriter) Coupon(c *tillkeep.Coupon) error {
	if w.stage == stageOffers {
		w.stage = stageCoupons
	}
	if w.stage != stageCoupons {
		return w.outOfOrder("coupon")
	}
	if w.coupons > 0 && c.Code <= w.lastCode {
		return w.outOfOrder(fmt.Sprintf("coupon %q after %q", c.Code, w.lastCode))
	}
	w.lastCode = c.Code
	w.coupons++
	if w.err != nil {
		return w.err
	}
	w.buf = appendCouponLine(w.buf[:0], c)
	w.sum.Write(w.buf)
	if _, err := w.bw.Write(w.buf); err != nil {
		w.err = fmt.Errorf("write snapshot: %w", err)
	}
	return w.err
}

// Close writes the trailer and flushes. Without it the stream is incomplete, and a
// till refuses it.
func (w *SnapshotWriter) Close() error {
	if w.stage == stageStart || w.stage == stageDone {
		return w.outOfOrder("trailer")
	}
	w.stage = stageDone
	t := SnapshotTrailer{Offers: w.offers, Coupons: w.coupons, SHA256: hex.EncodeToString(w.sum.Sum(nil))}
	if err := w.line(SnapshotLine{Type: LineTrailer, Trailer: &t}, false); err != nil {
		return err
	}
	if err := w.bw.Flush(); err != nil {
		w.err = fmt.Errorf("write snapshot: %w", err)
	}
	return w.err
}

// SnapshotReader reads and verifies a snapshot stream: Header, then Offers, then
// Coupons until it reports the end. Every byte before the trailer is hashed as it is
// read; the end is reported only after the digest, the counts and the code order are
// checked, so a caller that applies coupons as they come must stage them and commit only
// then.
type SnapshotReader struct {
	br       *bufio.Reader
	sum      hash.Hash
	stage    int
	offers   int
	coupons  int
	lastCode string
	pending  *SnapshotLine // a line read ahead: the first coupon or the trailer
	buf      []byte
	parser   couponParser
	err      error
}

// NewSnapshotReader returns a reader of the snapshot stream r.
func NewSnapshotReader(r io.Reader) *SnapshotReader {
	return &SnapshotReader{br: bufio.NewReaderSize(r, 256<<10), sum: sha256.New()}
}

func (r *SnapshotReader) fail(err error) error {
	if r.err == nil {
		r.err = err
	}
	return r.err
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrSnapshotCorrupt, fmt.Sprintf(format, args...))
}

// next reads one line and decodes it. Lines other than the trailer are hashed.
func (r *SnapshotReader) next() (SnapshotLine, error) {
	var l SnapshotLine
	if err := r.readLine(); err != nil {
		return l, err
	}
	if err := json.Unmarshal(r.buf, &l); err != nil {
		return l, r.fail(corrupt("line after %d offers and %d coupons: %v", r.offers, r.coupons, err))
	}
	if l.Type != LineTrailer {
		r.sum.Write(r.buf)
	}
	return l, nil
}

// readLine reads one line into r.buf, newline included.
func (r *SnapshotReader) readLine() error {
	if r.err != nil {
		return r.err
	}
	r.buf = r.buf[:0]
	for {
		part, err := r.br.ReadSlice('\n')
		r.buf = append(r.buf, part...)
		if len(r.buf) > maxSnapshotLine {
			return r.fail(corrupt("a line is longer than %d bytes", maxSnapshotLine))
		}
		if err == nil {
			return nil
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			return r.fail(fmt.Errorf("%w after %d offers and %d coupons", ErrSnapshotTruncated, r.offers, r.coupons))
		}
		return r.fail(fmt.Errorf("%w: %w", ErrSnapshotTruncated, err))
	}
}

// Header reads the header line; it must be called first.
func (r *SnapshotReader) Header() (SnapshotHeader, error) {
	if r.stage != stageStart {
		return SnapshotHeader{}, r.fail(errors.New("snapshot header read twice"))
	}
	l, err := r.next()
	if err != nil {
		return SnapshotHeader{}, err
	}
	if l.Type != LineHeader || l.Header == nil {
		return SnapshotHeader{}, r.fail(corrupt("the first line is %q, not the header", l.Type))
	}
	if l.Header.Format != SnapshotFormat {
		return SnapshotHeader{}, r.fail(corrupt("format %d, this tillkeep reads format %d", l.Header.Format, SnapshotFormat))
	}
	r.stage = stageOffers
	return *l.Header, nil
}

// Offers reads every offer line; it must follow Header.
func (r *SnapshotReader) Offers() ([]tillkeep.Offer, error) {
	if r.stage != stageOffers {
		return nil, r.fail(errors.New("snapshot offers read out of order"))
	}
	offers := []tillkeep.Offer{}
	for {
		l, err := r.next()
		if err != nil {
			return nil, err
		}
		if l.Type != LineOffer {
			r.pending = &l
			r.stage = stageCoupons
			return offers, nil
		}
		if l.Offer == nil {
			return nil, r.fail(corrupt("offer line %d has no offer", r.offers+1))
		}
		r.offers++
		offers = append(offers, *l.Offer)
	}
}

// Coupons appends up to limit coupons to buf[:0] and returns them. done is true once the
// trailer was read and verified; the coupons returned with done=true are the last ones
// (possibly none). An error means the stream must not be applied.
func (r *SnapshotReader) Coupons(buf []tillkeep.Coupon, limit int) (coupons []tillkeep.Coupon, done bool, err error) {
	coupons = buf[:0]
	switch r.stage {
	case stageCoupons:
	case stageDone:
		return coupons, true, nil
	default:
		return nil, false, r.fail(errors.New("snapshot coupons read out of order"))
	}
	for len(coupons) < limit {
		var l SnapshotLine
		if r.pending != nil {
			l, r.pending = *r.pending, nil
		} else {
			if err := r.readLine(); err != nil {
				return nil, false, err
			}
			// Nearly every line is a coupon in the writer's own layout: decode it
			// without reflection; anything else goes through encoding/json.
			if c, ok := r.parser.parse(r.buf); ok {
				r.sum.Write(r.buf)
				if r.coupons > 0 && c.Code <= r.lastCode {
					return nil, false, r.fail(corrupt("coupon %q follows %q: codes must ascend", c.Code, r.lastCode))
				}
				r.lastCode = c.Code
				r.coupons++
				coupons = append(coupons, c)
				continue
			}
			if err := json.Unmarshal(r.buf, &l); err != nil {
				return nil, false, r.fail(corrupt("line after %d offers and %d coupons: %v", r.offers, r.coupons, err))
			}
			if l.Type != LineTrailer {
				r.sum.Write(r.buf)
			}
		}
		switch l.Type {
		case LineCoupon:
			if l.Coupon == nil {
				return nil, false, r.fail(corrupt("coupon line %d has no coupon", r.coupons+1))
			}
			if r.coupons > 0 && l.Coupon.Code <= r.lastCode {
				return nil, false, r.fail(corrupt("coupon %q follows %q: codes must ascend", l.Coupon.Code, r.lastCode))
			}
			r.lastCode = l.Coupon.Code
			r.coupons++
			coupons = append(coupons, l.Coupon.Coupon())
		case LineTrailer:
			if err := r.finish(l.Trailer); err != nil {
				return nil, false, err
			}
			return coupons, true, nil
		default:
			return nil, false, r.fail(corrupt("a %q line among the coupons", l.Type))
		}
	}
	return coupons, false, nil
}

// finish checks the trailer against what was read, and that nothing follows it.
func (r *SnapshotReader) finish(t *SnapshotTrailer) error {
	if t == nil {
		return r.fail(corrupt("the trailer line is empty"))
	}
	if t.Offers != r.offers || t.Coupons != r.coupons {
		return r.fail(corrupt("the trailer counts %d offers and %d coupons, the stream held %d and %d",
			t.Offers, t.Coupons, r.offers, r.coupons))
	}
	if got := hex.EncodeToString(r.sum.Sum(nil)); got != t.SHA256 {
		return r.fail(corrupt("sha256 %s, the trailer says %s", got, t.SHA256))
	}
	rest, err := io.ReadAll(io.LimitReader(r.br, 1<<10))
	if err != nil {
		return r.fail(fmt.Errorf("%w: %w", ErrSnapshotTruncated, err))
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return r.fail(corrupt("data after the trailer"))
	}
	r.stage = stageDone
	return nil
}

// Counts returns how many offers and coupons were read so far.
func (r *SnapshotReader) Counts() (offers, coupons int) { return r.offers, r.coupons }
