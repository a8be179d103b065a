package wire_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/sync/wire"
)

var at = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)

func sample(t *testing.T, coupons int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := wire.NewSnapshotWriter(&buf)
	if err := w.Header(wire.SnapshotHeader{Epoch: "e1", StoreID: "S001", Store: tillkeep.Store{ID: "S001"}, Seq: 42, AsOf: at, ReflectsTillSeq: 7}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"A", "B"} {
		if err := w.Offer(&tillkeep.Offer{ID: id, Name: "Offer " + id}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range coupons {
		c := tillkeep.Coupon{Code: fmt.Sprintf("C%05d", i), OfferID: "A", Status: tillkeep.CouponActive, Redemptions: i % 2, IssuedAt: at}
		if err := w.Coupon(&c); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readAll reads a stream the way a till does, in chunks of 4.
func readAll(data []byte) (wire.SnapshotHeader, []tillkeep.Offer, []tillkeep.Coupon, error) {
	r := wire.NewSnapshotReader(bytes.NewReader(data))
	h, err := r.Header()
	if err != nil {
		return h, nil, nil, err
	}
	offers, err := r.Offers()
	if err != nil {
		return h, nil, nil, err
	}
	var all []tillkeep.Coupon
	buf := make([]tillkeep.Coupon, 0, 4)
	for {
		batch, done, err := r.Coupons(buf, 4)
		if err != nil {
			return h, offers, all, err
		}
		all = append(all, batch...)
		if done {
			return h, offers, all, nil
		}
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 4, 9} {
		h, offers, coupons, err := readAll(sample(t, n))
		if err != nil {
			t.Fatalf("%d coupons: %v", n, err)
		}
		if h.Format != wire.SnapshotFormat || h.Seq != 42 || h.ReflectsTillSeq != 7 || h.Epoch != "e1" || !h.AsOf.Equal(at) {
			t.Fatalf("header %+v", h)
		}
		if len(offers) != 2 || offers[1].Name != "Offer B" || len(coupons) != n {
			t.Fatalf("%d coupons: offers %+v, coupons %d", n, offers, len(coupons))
		}
		for i, c := range coupons {
			if c.Code != fmt.Sprintf("C%05d", i) || c.OfferID != "A" || c.Redemptions != i%2 || !c.IssuedAt.Equal(at) {
				t.Fatalf("coupon %d: %+v", i, c)
			}
		}
	}
}

func TestSnapshotRefusesDamage(t *testing.T) {
	good := sample(t, 9)
	trailer := bytes.LastIndex(good[:len(good)-1], []byte("\n")) + 1
	cases := map[string][]byte{
		"a byte changed":    bytes.Replace(good, []byte(`"k":"C00003"`), []byte(`"k":"C00003 "`), 1),
		"a status changed":  bytes.Replace(good, []byte(`"r":1`), []byte(`"r":0`), 1),
		"a line dropped":    dropLine(good, 5),
		"a line repeated":   append(append(append([]byte{}, good[:trailer]...), lineAt(good, 6)...), good[trailer:]...),
		"garbage after":     append(append([]byte{}, good...), []byte("{\"t\":\"coupon\"}\n")...),
		"digest forged":     bytes.Replace(good, []byte(`"sha256":"`), []byte(`"sha256":"00`), 1),
		"header not first":  dropLine(good, 0),
		"not json":          []byte("hello\n"),
		"unknown line kind": append(append([]byte{}, good[:trailer]...), []byte("{\"t\":\"mystery\"}\n")...),
		"unknown format":    bytes.Replace(good, []byte(`"format":1`), []byte(`"format":9`), 1),
		"coupons out of order": func() []byte {
			var buf bytes.Buffer
			w := wire.NewSnapshotWriter(&buf)
			_ = w.Header(wire.SnapshotHeader{StoreID: "S001"})
			_ = w.Coupon(&tillkeep.Coupon{Code: "B", OfferID: "A"})
			_ = w.Close()
			// Splice a lower code in after the writer's check, as a broken platform might.
			s := strings.Replace(buf.String(), `{"t":"end"`, `{"t":"coupon","c":{"k":"A","o":"A","s":""}}`+"\n"+`{"t":"end"`, 1)
			return []byte(s)
		}(),
	}
	for name, data := range cases {
		_, _, _, err := readAll(data)
		if !errors.Is(err, wire.ErrSnapshotCorrupt) && !errors.Is(err, wire.ErrSnapshotTruncated) {
			t.Errorf("%s: err %v, want a refusal", name, err)
		}
	}
	// A stream cut anywhere before the end of the trailer is truncated, never applied.
	for cut := 0; cut < len(good)-1; cut += 7 {
		_, _, _, err := readAll(good[:cut])
		if err == nil {
			t.Fatalf("a stream cut at %d of %d bytes was accepted", cut, len(good))
		}
	}
	if _, _, _, err := readAll(good[:len(good)-40]); !errors.Is(err, wire.ErrSnapshotTruncated) && !errors.Is(err, wire.ErrSnapshotCorrupt) {
		t.Fatalf("cut inside the trailer: %v", err)
	}
	if _, _, _, err := readAll(good[:trailer]); !errors.Is(err, wire.ErrSnapshotTruncated) {
		t.Fatalf("stream without its trailer: %v, want truncated", err)
	}
}

func lineAt(data []byte, n int) []byte {
	lines := bytes.SplitAfter(data, []byte("\n"))
	return lines[n]
}

func dropLine(data []byte, n int) []byte {
	lines := bytes.SplitAfter(data, []byte("\n"))
	return bytes.Join(append(lines[:n:n], lines[n+1:]...), nil)
}

func TestSnapshotWriterRefusesWrongOrder(t *testing.T) {
	w := wire.NewSnapshotWriter(io.Discard)
	if err := w.Offer(&tillkeep.Offer{ID: "A"}); err == nil {
		t.Fatal("an offer before the header was written")
	}
	w = wire.NewSnapshotWriter(io.Discard)
	_ = w.Header(wire.SnapshotHeader{})
	_ = w.Coupon(&tillkeep.Coupon{Code: "B"})
	if err := w.Offer(&tillkeep.Offer{ID: "A"}); err == nil {
		t.Fatal("an offer after a coupon was written")
	}
	w = wire.NewSnapshotWriter(io.Discard)
	_ = w.Header(wire.SnapshotHeader{})
	_ = w.Coupon(&tillkeep.Coupon{Code: "B"})
	if err := w.Coupon(&tillkeep.Coupon{Code: "B"}); err == nil {
		t.Fatal("a code written twice")
	}
	if err := w.Close(); err == nil {
		t.Fatal("Close after a refused coupon succeeded")
	}
}

func TestSnapshotLongLineRefused(t *testing.T) {
	data := []byte(`{"t":"header","h":{"format":1,"store":{"name":"` + strings.Repeat("x", 5<<20) + `"}}}` + "\n")
	if _, _, _, err := readAll(data); !errors.Is(err, wire.ErrSnapshotCorrupt) {
		t.Fatalf("a 5 MB line: %v", err)
	}
}
