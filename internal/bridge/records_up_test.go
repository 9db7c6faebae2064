package bridge

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// upExpected is what a consumer reads back from the batch a set converts
// to: offsets from 0, magic 0's timestamps none.
func upExpected(magic int8, recs []testRecord) []testRecord {
	want := make([]testRecord, len(recs))
	for i, r := range recs {
		want[i] = r
		want[i].offset = int64(i)
		if magic == 0 {
			want[i].timestamp = -1
		}
	}
	return want
}

func readBatchHeader(t *testing.T, batch []byte) kmsg.RecordBatch {
	t.Helper()
	var b kmsg.RecordBatch
	if err := b.ReadFrom(batch); err != nil {
		t.Fatal(err)
	}
	if int(b.Length)+12 != len(batch) {
		t.Fatalf("batch length %d, %d bytes", b.Length, len(batch))
	}
	return b
}

func TestUpMessageSetCodecs(t *testing.T) {
	recs := testRecords(23)
	for _, tc := range []struct {
		name string
		spec legacySetSpec
	}{
		{"v0 plain", legacySetSpec{magic: 0, firstOffset: 5}},
		{"v1 plain", legacySetSpec{magic: 1, firstOffset: 5}},
		{"v0 gzip", legacySetSpec{magic: 0, codec: compressionGzip}},
		{"v1 gzip", legacySetSpec{magic: 1, codec: compressionGzip}},
		{"v0 snappy", legacySetSpec{magic: 0, codec: compressionSnappy}},
		{"v1 snappy", legacySetSpec{magic: 1, codec: compressionSnappy}},
		{"v0 snappy xerial", legacySetSpec{magic: 0, codec: compressionSnappy, xerial: true}},
		{"v1 snappy xerial", legacySetSpec{magic: 1, codec: compressionSnappy, xerial: true}},
		{"v0 lz4", legacySetSpec{magic: 0, codec: compressionLz4}},
		{"v0 lz4 broken checksum", legacySetSpec{magic: 0, codec: compressionLz4, brokenLz4: true}},
		{"v1 lz4", legacySetSpec{magic: 1, codec: compressionLz4}},
		{"v1 gzip wrapper offset 0", legacySetSpec{magic: 1, codec: compressionGzip, wrapperZeros: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set := legacySet(t, tc.spec, recs)
			if tc.spec.brokenLz4 {
				if _, err := kgoRead(set); err == nil {
					t.Fatal("franz-go reads the broken lz4 checksum: the set does not test it")
				}
			} else if got := mustKgoRead(t, set); len(got) != len(recs) {
				t.Fatalf("the set holds %d records for franz-go, want %d", len(got), len(recs))
			}

			batch, err := UpMessageSet(set, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			requireRecords(t, mustKgoRead(t, batch), upExpected(tc.spec.magic, recs))
			b := readBatchHeader(t, batch)
			if b.Magic != 2 || b.ProducerID != -1 || b.ProducerEpoch != -1 || b.FirstSequence != -1 ||
				b.NumRecords != int32(len(recs)) || b.LastOffsetDelta != int32(len(recs)-1) {
				t.Fatalf("batch header %+v", b)
			}
			if got := compression(b.Attributes & 7); got != tc.spec.codec || b.Attributes&^7 != 0 {
				t.Fatalf("batch attributes %#x, want codec %v and nothing else", b.Attributes, tc.spec.codec)
			}
			wantFirst, wantMax := int64(-1), int64(-1)
			if tc.spec.magic == 1 {
				wantFirst, wantMax = recs[0].timestamp, recs[0].timestamp
				for _, r := range recs {
					wantMax = max(wantMax, r.timestamp)
				}
			}
			if b.FirstTimestamp != wantFirst || b.MaxTimestamp != wantMax {
				t.Fatalf("batch timestamps first %d max %d, want %d %d", b.FirstTimestamp, b.MaxTimestamp, wantFirst, wantMax)
			}
		})
	}
}

// A magic 1 wrapper stamped LogAppendTime gives its timestamp to every
// inner message, as Kafka's consumer reads it.
func TestUpMessageSetLogAppendTimeWrapper(t *testing.T) {
	recs := testRecords(4)
	set := legacySet(t, legacySetSpec{magic: 1, codec: compressionGzip, logAppendAt: 1_800_000_000_000}, recs)
	batch, err := UpMessageSet(set, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	want := upExpected(1, recs)
	for i := range want {
		want[i].timestamp = 1_800_000_000_000
	}
	requireRecords(t, mustKgoRead(t, batch), want)
}

// Several wrappers and plain messages in one set become one batch, in order,
// compressed with the last wrapper's codec.
func TestUpMessageSetMixed(t *testing.T) {
	recs := testRecords(9)
	set := legacySet(t, legacySetSpec{magic: 1, codec: compressionGzip}, recs[:3])
	set = append(set, legacySet(t, legacySetSpec{magic: 1}, recs[3:5])...)
	set = append(set, legacySet(t, legacySetSpec{magic: 1, codec: compressionSnappy, xerial: true}, recs[5:])...)
	batch, err := UpMessageSet(set, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	requireRecords(t, mustKgoRead(t, batch), upExpected(1, recs))
	if b := readBatchHeader(t, batch); compression(b.Attributes&7) != compressionSnappy {
		t.Fatalf("batch codec %v, want snappy", compression(b.Attributes&7))
	}
}

func TestUpMessageSetEmpty(t *testing.T) {
	for _, set := range [][]byte{nil, {}} {
		got, err := UpMessageSet(set, 1<<20)
		if err != nil || len(got) != 0 || (got == nil) != (set == nil) {
			t.Fatalf("UpMessageSet(%#v) = %#v, %v; want it as is", set, got, err)
		}
	}
}

func TestUpMessageSetCorrupt(t *testing.T) {
	recs := testRecords(3)
	plain := legacySet(t, legacySetSpec{magic: 1}, recs)
	gz := legacySet(t, legacySetSpec{magic: 1, codec: compressionGzip}, recs)
	flip := func(b []byte, at int) []byte {
		b = bytes.Clone(b)
		b[at] ^= 0x40
		return b
	}
	// An inner message with a bad CRC inside a wrapper with a good one.
	var inner []byte
	for i, r := range recs {
		inner = append(inner, legacyMessageBytes(1, int64(i), 0, r.timestamp, r.key, r.value)...)
	}
	badInner := legacyMessageBytes(1, 2, int8(compressionGzip), 0, nil,
		compressIndependently(t, compressionGzip, flip(inner, 20), false))
	nested := legacyMessageBytes(1, 0, int8(compressionGzip), 0, nil, compressIndependently(t, compressionGzip, gz, false))
	zstdWrapper := legacyMessageBytes(1, 0, int8(compressionZstd), 0, nil, compressIndependently(t, compressionZstd, inner, false))
	wrongSize := bytes.Clone(plain)
	binary.BigEndian.PutUint32(wrongSize[8:], binary.BigEndian.Uint32(wrongSize[8:])-1)
	for name, set := range map[string][]byte{
		"bad crc":            flip(plain, 30),
		"bad crc in wrapper": flip(gz, len(gz)-3),
		"bad inner crc":      badInner,
		"truncated":          plain[:len(plain)-1],
		"short":              plain[:20],
		"magic 2":            flip(plain, 16),
		"nested compression": nested,
		"zstd wrapper":       zstdWrapper,
		"size field short":   wrongSize,
		"garbage gzip":       legacyMessageBytes(1, 0, int8(compressionGzip), 0, nil, []byte("not gzip")),
		"empty wrapper":      legacyMessageBytes(1, 0, int8(compressionGzip), 0, nil, compressIndependently(t, compressionGzip, nil, false)),
	} {
		t.Run(name, func(t *testing.T) {
			got, err := UpMessageSet(set, 1<<20)
			if !errors.Is(err, ErrCorruptRecords) {
				t.Fatalf("UpMessageSet = %d bytes, %v; want ErrCorruptRecords", len(got), err)
			}
		})
	}
}

// A small wrapper that decompresses to far more than maxOut fails without
// allocating it, for every codec.
func TestUpMessageSetDecompressionBomb(t *testing.T) {
	const maxOut = 1 << 20
	big := legacyMessageBytes(1, 0, 0, 0, nil, make([]byte, 16<<20))
	for _, tc := range []struct {
		name   string
		codec  compression
		xerial bool
	}{
		{"gzip", compressionGzip, false},
		{"snappy", compressionSnappy, false},
		{"snappy xerial", compressionSnappy, true},
		{"lz4", compressionLz4, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set := legacyMessageBytes(1, 0, int8(tc.codec), 0, nil, compressIndependently(t, tc.codec, big, tc.xerial))
			if len(set) > maxOut {
				t.Fatalf("the bomb is %d bytes itself", len(set))
			}
			_, err := UpMessageSet(set, maxOut)
			if !errors.Is(err, ErrRecordsTooLarge) {
				t.Fatalf("err = %v, want ErrRecordsTooLarge", err)
			}
		})
	}
	if _, err := UpMessageSet(legacySet(t, legacySetSpec{magic: 1}, testRecords(50)), 200); !errors.Is(err, ErrRecordsTooLarge) {
		t.Fatalf("a batch past maxOut: err = %v, want ErrRecordsTooLarge", err)
	}
}

// xxh32 is checked against published vectors and against the header
// checksum the lz4 package writes, so the KAFKA-3160 checksum built from it
// is the one Kafka computed.
func TestXXH32(t *testing.T) {
	for in, want := range map[string]uint32{
		"":    0x02cc5d05,
		"a":   0x550d7456,
		"abc": 0x32d153ff,
		"Nobody inspects the spammish repetition": 0xe2293b2f,
	} {
		if got := xxh32([]byte(in)); got != want {
			t.Errorf("xxh32(%q) = %#x, want %#x", in, got, want)
		}
	}
	for _, opts := range [][]lz4.Option{
		nil,
		{lz4.BlockSizeOption(lz4.Block64Kb), lz4.ChecksumOption(false)},
		{lz4.SizeOption(1234)},
		{lz4.BlockChecksumOption(true), lz4.BlockSizeOption(lz4.Block1Mb)},
	} {
		var buf bytes.Buffer
		w := lz4.NewWriter(&buf)
		if err := w.Apply(opts...); err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("payload"))
		w.Close()
		frame := buf.Bytes()
		hc := 6
		if frame[4]&0x08 != 0 {
			hc += 8
		}
		if got := lz4HeaderChecksum(frame[4:hc]); got != frame[hc] {
			t.Errorf("options %v: header checksum %#x, the lz4 package wrote %#x", opts, got, frame[hc])
		}
	}
}

// A Produce's partitions decompress within maxOut together, not each: a
// request of many small wrappers, each inflating to just under maxOut,
// would otherwise cost a partition's worth of maxOut apiece.
func TestUpProduceDecompressesWithinMaxOutInAll(t *testing.T) {
	const maxOut = 10 << 20
	big := legacyMessageBytes(1, 0, 0, 0, nil, make([]byte, 4<<20))
	set := legacyMessageBytes(1, 0, int8(compressionGzip), 0, nil, compressIndependently(t, compressionGzip, big, false))
	produce := func(partitions int) []byte {
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = 1, 5000
		topic := kmsg.ProduceRequestTopic{Topic: "t"}
		for i := range partitions {
			topic.Partitions = append(topic.Partitions, kmsg.ProduceRequestTopicPartition{Partition: int32(i), Records: set})
		}
		req.Topics = []kmsg.ProduceRequestTopic{topic}
		return requestBytes(req, 2, &testClientID)
	}
	if _, _, err := Up(produce(2), int16(kmsg.Produce), 2, 3, maxOut); err != nil {
		t.Fatalf("two partitions inflating to 4 MiB each, within 10 MiB: %v", err)
	}
	if _, _, err := Up(produce(3), int16(kmsg.Produce), 2, 3, maxOut); !errors.Is(err, ErrRecordsTooLarge) {
		t.Fatalf("three partitions inflating to 4 MiB each, past 10 MiB in all: err = %v, want ErrRecordsTooLarge", err)
	}
}

// A corrupt partition of a Produce no longer fails the request (the others
// go on), so what its conversion took must go back at once rather than
// stay lent, and charged, until the request is done.
func TestUpMessageSetGivesBackWhatACorruptSetTook(t *testing.T) {
	good := legacySet(t, legacySetSpec{magic: 1}, []testRecord{{timestamp: 1700000000000, value: []byte("good")}})
	bad := bytes.Clone(good)
	bad[len(bad)-1] ^= 0xff // the value no longer matches the CRC
	lent := map[*byte]bool{}
	alloc := Allocator{
		Get:  func(n int) []byte { b := make([]byte, 0, max(n, 1)); lent[&b[:1][0]] = true; return b },
		Free: func(b []byte) { delete(lent, &b[:1][0]) },
	}
	inflate := testMaxOut
	if _, err := upMessageSet(alloc, slices.Concat(good, bad), testMaxOut, &inflate); !errors.Is(err, ErrCorruptRecords) {
		t.Fatalf("err = %v, want ErrCorruptRecords", err)
	}
	if len(lent) != 0 {
		t.Fatalf("%d buffers still lent after a corrupt set's conversion failed", len(lent))
	}
}
