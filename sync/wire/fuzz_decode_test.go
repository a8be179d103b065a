package wire_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"testing"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/sync/wire"
)

// Fuzz targets for the till-to-platform protocol: every message decodes and re-encodes
// to a fixed point (what one end writes, the other reads back the same), and the
// catalog snapshot reader, which reads a stream from the network, refuses anything
// malformed with one of its two classified errors and never panics. Seed corpora live
// in testdata/fuzz/<Target>/.

// wireMessages are the protocol's JSON messages, by the kind byte of FuzzWireRoundTrip.
var wireMessages = []func() any{
	func() any { return new(wire.EnrollRequest) },
	func() any { return new(wire.EnrollResponse) },
	func() any { return new(wire.RedeemRequest) },
	func() any { return new(wire.RedeemResponse) },
	func() any { return new(wire.ValidateRequest) },
	func() any { return new(wire.ValidateResponse) },
	func() any { return new(wire.ReverseResponse) },
	func() any { return new(wire.PushRequest) },
	func() any { return new(wire.PushResponse) },
	func() any { return new(wire.AckState) },
	func() any { return new(wire.Delta) },
	func() any { return new(wire.SnapshotLine) },
}

// FuzzWireRoundTrip: a message that decodes re-encodes, and its encoding decodes and
// re-encodes to the same bytes, so nothing is lost or changed between the two ends.
func FuzzWireRoundTrip(f *testing.F) {
	f.Fuzz(func(t *testing.T, kind byte, data []byte) {
		newMsg := wireMessages[int(kind)%len(wireMessages)]
		first := newMsg()
		if json.Unmarshal(data, first) != nil {
			return
		}
		enc1, err := json.Marshal(first)
		if err != nil {
			t.Fatalf("%T decoded from %q does not encode: %v", first, data, err)
		}
		second := newMsg()
		if err := json.Unmarshal(enc1, second); err != nil {
			t.Fatalf("%T: its own encoding %s does not decode: %v", first, enc1, err)
		}
		enc2, err := json.Marshal(second)
		if err != nil {
			t.Fatalf("%T decoded from %s does not encode: %v", second, enc1, err)
		}
		if !bytes.Equal(enc1, enc2) {
			t.Fatalf("%T changes on a round trip:\n first  %s\n second %s", first, enc1, enc2)
		}
	})
}

// FuzzSnapshotReader feeds the stream a till receives to the reader as is, and once
// more with its last line resealed (the digest recomputed), so that the checks behind
// the digest — counts, order, sections, trailing data — are fuzzed too. A stream is
// either refused with ErrSnapshotTruncated or ErrSnapshotCorrupt, or accepted; an
// accepted stream written again by SnapshotWriter reads back the same.
func FuzzSnapshotReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		checkSnapshotStream(t, data)
		if resealed, ok := reseal(data); ok {
			checkSnapshotStream(t, resealed)
		}
	})
}

// snapshotContent is what a reader got out of an accepted stream.
type snapshotContent struct {
	header  wire.SnapshotHeader
	offers  []tillkeep.Offer
	coupons []tillkeep.Coupon
}

func readSnapshot(data []byte) (snapshotContent, error) {
	var c snapshotContent
	r := wire.NewSnapshotReader(bytes.NewReader(data))
	var err error
	if c.header, err = r.Header(); err != nil {
		return c, err
	}
	if c.offers, err = r.Offers(); err != nil {
		return c, err
	}
	buf := make([]tillkeep.Coupon, 0, 7)
	for {
		page, done, err := r.Coupons(buf, 7)
		if err != nil {
			return c, err
		}
		c.coupons = append(c.coupons, page...)
		if done {
			return c, nil
		}
	}
}

func checkSnapshotStream(t *testing.T, data []byte) {
	t.Helper()
	content, err := readSnapshot(data)
	if err != nil {
		if !errors.Is(err, wire.ErrSnapshotTruncated) && !errors.Is(err, wire.ErrSnapshotCorrupt) {
			t.Fatalf("refused with an unclassified error: %v", err)
		}
		return
	}
	for i := 1; i < len(content.coupons); i++ {
		if content.coupons[i-1].Code >= content.coupons[i].Code {
			t.Fatalf("accepted coupons out of order: %q then %q", content.coupons[i-1].Code, content.coupons[i].Code)
		}
	}
	var out bytes.Buffer
	w := wire.NewSnapshotWriter(&out)
	if err := w.Header(content.header); err != nil {
		t.Fatalf("write back the header: %v", err)
	}
	for i := range content.offers {
		if err := w.Offer(&content.offers[i]); err != nil {
			t.Fatalf("write back offer %d: %v", i, err)
		}
	}
	for i := range content.coupons {
		if err := w.Coupon(&content.coupons[i]); err != nil {
			t.Fatalf("write back coupon %d: %v", i, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close the rewritten stream: %v", err)
	}
	again, err := readSnapshot(out.Bytes())
	if err != nil {
		t.Fatalf("a stream written from an accepted one is refused: %v\n%s", err, out.Bytes())
	}
	if a, b := mustJSON(t, content), mustJSON(t, again); !bytes.Equal(a, b) {
		t.Fatalf("the rewritten stream reads differently:\n%s\n%s", a, b)
	}
}

func mustJSON(t *testing.T, c snapshotContent) []byte {
	t.Helper()
	b, err := json.Marshal(struct {
		H wire.SnapshotHeader
		O []tillkeep.Offer
		C []tillkeep.Coupon
	}{c.header, c.offers, c.coupons})
	if err != nil {
		t.Fatalf("encode snapshot content: %v", err)
	}
	return b
}

// reseal replaces the digest of data's last line, when it is a trailer, with the
// digest of everything before it.
func reseal(data []byte) ([]byte, bool) {
	body := bytes.TrimSuffix(data, []byte("\n"))
	cut := bytes.LastIndexByte(body, '\n') + 1
	var last wire.SnapshotLine
	if json.Unmarshal(body[cut:], &last) != nil || last.Type != wire.LineTrailer || last.Trailer == nil {
		return nil, false
	}
	sum := sha256.Sum256(body[:cut])
	last.Trailer.SHA256 = hex.EncodeToString(sum[:])
	line, err := json.Marshal(last)
	if err != nil {
		return nil, false
	}
	out := append(append(append([]byte(nil), body[:cut]...), line...), '\n')
	return out, true
}
