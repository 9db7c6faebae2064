package bridge

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchRecords are 1 MiB of 1 KiB records, half random (so compression has
// work but does not vanish the data), half repeated text.
func benchRecords() []testRecord {
	rng := rand.New(rand.NewPCG(1, 2))
	recs := make([]testRecord, 1024)
	for i := range recs {
		value := make([]byte, 1024)
		for j := 0; j < 512; j += 8 {
			v := rng.Uint64()
			for k := range 8 {
				value[j+k] = byte(v >> (8 * k))
			}
		}
		copy(value[512:], fmt.Sprintf("%0512d", i))
		recs[i] = testRecord{offset: int64(i), timestamp: 1_700_000_000_000 + int64(i), key: fmt.Appendf(nil, "k%d", i), value: value}
	}
	return recs
}

func BenchmarkUpMessageSet(b *testing.B) {
	recs := benchRecords()
	for _, codec := range []compression{compressionNone, compressionGzip, compressionLz4} {
		b.Run(codec.String(), func(b *testing.B) {
			set := legacySet(b, legacySetSpec{magic: 1, codec: codec}, recs)
			b.SetBytes(int64(len(recs) * 1024))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := UpMessageSet(set, 64<<20); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDownRecords converts batches of 64 records, as producers linger
// them, into a pooled buffer as kproxy does; "none 100 B" is the consumer of
// small records, where the cost per message (a header and a CRC) dominates.
func BenchmarkDownRecords(b *testing.B) {
	recs := benchRecords()
	small := make([]testRecord, 10*len(recs))
	for i := range small {
		small[i] = testRecord{offset: int64(i), timestamp: 1_700_000_000_000 + int64(i), value: fmt.Appendf(nil, "%0100d", i)}
	}
	for _, c := range []struct {
		name  string
		codec compression
		recs  []testRecord
	}{
		{"none", compressionNone, recs}, {"none 100 B", compressionNone, small},
		{"gzip", compressionGzip, recs}, {"lz4", compressionLz4, recs},
	} {
		b.Run(c.name, func(b *testing.B) {
			var in []byte
			for i := 0; i < len(c.recs); i += 64 {
				in = append(in, recordBatch(b, batchSpec{codec: c.codec, baseOffset: int64(i)}, c.recs[i:i+64])...)
			}
			buf := make([]byte, 0, 2*len(c.recs)*(len(c.recs[0].value)+64))
			b.SetBytes(int64(len(c.recs) * len(c.recs[0].value)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := downRecords(Allocator{}, buf[:0], in, 1, 64<<20, 64<<20); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
