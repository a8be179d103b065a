package codegen

import (
	"context"
	"fmt"
	"io"
	"testing"
)

func benchGenerator(b *testing.B, spec Spec) *Generator {
	b.Helper()
	st, err := NewState(spec, nil)
	if err != nil {
		b.Fatal(err)
	}
	g, err := NewGenerator(st)
	if err != nil {
		b.Fatal(err)
	}
	return g
}

func BenchmarkNext(b *testing.B) {
	for _, spec := range []Spec{
		{Length: 10, Charset: CharsetAlphanumeric},
		{Length: 16, Charset: CharsetNumeric},
		{Length: 24, Charset: CharsetAlphanumeric, Prefix: "SPR-"},
	} {
		b.Run(fmt.Sprintf("%s/%d", spec.Charset, spec.Length), func(b *testing.B) {
			g := benchGenerator(b, spec)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := g.Next(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAppendNext(b *testing.B) {
	g := benchGenerator(b, Spec{Length: 10})
	buf := make([]byte, 0, MaxLength)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = g.AppendNext(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFill(b *testing.B) {
	g := benchGenerator(b, Spec{Length: 10})
	batch := make([]string, 1024)
	b.ReportAllocs()
	for b.Loop() {
		if err := g.Fill(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/code")
}

// BenchmarkGenerateTo measures the bench harness's path, one code per op: multiply
// ns/op by 30e6 for the time of 30 million codes.
func BenchmarkGenerateTo(b *testing.B) {
	b.ReportAllocs()
	if err := GenerateTo(context.Background(), Spec{Count: int64(b.N), Length: 10}, io.Discard, nil); err != nil {
		b.Fatal(err)
	}
}
