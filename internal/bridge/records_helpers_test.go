package bridge

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// testRecord is a record as a consumer sees it; timestamp -1 is none.
type testRecord struct {
	offset    int64
	timestamp int64
	key       []byte
	value     []byte
}

func (r testRecord) String() string {
	return fmt.Sprintf("{offset %d ts %d key %q(nil %v) value %q(nil %v)}",
		r.offset, r.timestamp, r.key, r.key == nil, r.value, r.value == nil)
}

func sameRecord(a, b testRecord) bool {
	return a.offset == b.offset && a.timestamp == b.timestamp &&
		(a.key == nil) == (b.key == nil) && bytes.Equal(a.key, b.key) &&
		(a.value == nil) == (b.value == nil) && bytes.Equal(a.value, b.value)
}

func requireRecords(t testing.TB, got, want []testRecord) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d:\ngot  %v\nwant %v", len(got), len(want), got, want)
	}
	for i := range got {
		if !sameRecord(got[i], want[i]) {
			t.Fatalf("record %d: got %v, want %v", i, got[i], want[i])
		}
	}
}

// kgoRead decodes a partition's records (message sets of any magic or
// record batches) with franz-go's consumer, the independent decoder these
// tests trust; it checks every CRC.
func kgoRead(records []byte) ([]testRecord, error) {
	return kgoReadOpts(records, kgo.ProcessFetchPartitionOpts{Topic: "t"})
}

func kgoReadOpts(records []byte, opts kgo.ProcessFetchPartitionOpts) ([]testRecord, error) {
	rp := kmsg.FetchResponseTopicPartition{RecordBatches: records}
	fp, _ := kgo.ProcessFetchPartition(opts, &rp, kgo.DefaultDecompressor(), nil)
	out := make([]testRecord, 0, len(fp.Records))
	for _, r := range fp.Records {
		ts := int64(-1)
		if !r.Timestamp.IsZero() {
			ts = r.Timestamp.UnixMilli()
		}
		out = append(out, testRecord{offset: r.Offset, timestamp: ts, key: r.Key, value: r.Value})
	}
	return out, fp.Err
}

func mustKgoRead(t testing.TB, records []byte) []testRecord {
	t.Helper()
	recs, err := kgoRead(records)
	if err != nil {
		t.Fatalf("kgo cannot read the records: %v", err)
	}
	return recs
}

// testRecords are records with what old clients produce: null keys, empty
// and null values, timestamps out of order.
func testRecords(n int) []testRecord {
	recs := make([]testRecord, n)
	for i := range recs {
		recs[i] = testRecord{
			offset:    int64(i),
			timestamp: 1_700_000_000_000 + int64((i*7)%5)*1000,
			key:       fmt.Appendf(nil, "key-%d", i),
			value:     bytes.Repeat(fmt.Appendf(nil, "value-%d;", i), 1+i%4),
		}
		switch i % 5 {
		case 1:
			recs[i].key = nil
		case 2:
			recs[i].value = []byte{}
		case 3:
			recs[i].value = nil
		}
	}
	return recs
}

// compressIndependently compresses src the way a Kafka client's library
// does, without the code under test: raw or xerial snappy, lz4 frames with
// the standard header checksum.
func compressIndependently(t testing.TB, c compression, src []byte, xerial bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch c {
	case compressionGzip:
		w := gzip.NewWriter(&buf)
		w.Write(src)
		w.Close()
	case compressionSnappy:
		if !xerial {
			return s2.EncodeSnappy(nil, src)
		}
		buf.Write([]byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1})
		for len(src) > 0 {
			n := min(len(src), 1000) // several blocks
			block := s2.EncodeSnappy(nil, src[:n])
			binary.Write(&buf, binary.BigEndian, uint32(len(block)))
			buf.Write(block)
			src = src[n:]
		}
	case compressionLz4:
		w := lz4.NewWriter(&buf)
		w.Write(src)
		w.Close()
	case compressionZstd:
		enc, _ := zstd.NewWriter(nil)
		defer enc.Close()
		return enc.EncodeAll(src, nil)
	default:
		t.Fatalf("no codec %v", c)
	}
	return buf.Bytes()
}

// breakLz4Checksum gives an lz4 frame the header checksum of magic 0 era
// Kafka (KAFKA-3160): the XXH32 of the frame magic and descriptor.
func breakLz4Checksum(t testing.TB, frame []byte) []byte {
	t.Helper()
	if len(frame) < 7 || frame[4]&0x09 != 0 {
		t.Fatalf("not an lz4 frame with a 3-byte descriptor: % x", frame[:min(len(frame), 8)])
	}
	out := bytes.Clone(frame)
	out[6] = byte(xxh32(out[:6]) >> 8)
	if out[6] == frame[6] {
		t.Fatalf("broken checksum equals the standard one")
	}
	return out
}

// legacyMessageBytes is one message encoded by kmsg with its CRC.
func legacyMessageBytes(magic int8, offset int64, attributes int8, timestamp int64, key, value []byte) []byte {
	var b []byte
	size := int32(4 + 1 + 1 + 4 + len(key) + 4 + len(value))
	if magic == 0 {
		m := kmsg.MessageV0{Offset: offset, MessageSize: size, Magic: 0, Attributes: attributes, Key: key, Value: value}
		b = m.AppendTo(nil)
	} else {
		m := kmsg.MessageV1{Offset: offset, MessageSize: size + 8, Magic: 1, Attributes: attributes, Timestamp: timestamp, Key: key, Value: value}
		b = m.AppendTo(nil)
	}
	binary.BigEndian.PutUint32(b[12:], crc32.ChecksumIEEE(b[16:]))
	return b
}

// legacySetSpec says how a client would write a message set.
type legacySetSpec struct {
	magic        int8
	codec        compression
	xerial       bool // snappy in xerial framing
	brokenLz4    bool // magic 0 lz4 with the KAFKA-3160 header checksum
	firstOffset  int64
	logAppendAt  int64 // a magic 1 wrapper stamped LogAppendTime with this timestamp
	wrapperZeros bool  // a magic 1 wrapper offset 0 (old librdkafka)
}

// legacySet encodes recs as a client would produce them (offsets from
// spec.firstOffset; inside a magic 1 wrapper relative, the wrapper carrying
// the last absolute offset).
func legacySet(t testing.TB, spec legacySetSpec, recs []testRecord) []byte {
	t.Helper()
	var set []byte
	for i, r := range recs {
		offset := spec.firstOffset + int64(i)
		if spec.codec != compressionNone && spec.magic == 1 {
			offset = int64(i)
		}
		set = append(set, legacyMessageBytes(spec.magic, offset, 0, r.timestamp, r.key, r.value)...)
	}
	if spec.codec == compressionNone {
		return set
	}
	value := compressIndependently(t, spec.codec, set, spec.xerial)
	if spec.brokenLz4 {
		value = breakLz4Checksum(t, value)
	}
	attrs := int8(spec.codec)
	ts := recs[len(recs)-1].timestamp
	if spec.logAppendAt != 0 {
		attrs |= legacyLogAppendTime
		ts = spec.logAppendAt
	}
	wrapperOffset := spec.firstOffset + int64(len(recs)) - 1
	if spec.wrapperZeros {
		wrapperOffset = 0
	}
	return legacyMessageBytes(spec.magic, wrapperOffset, attrs, ts, nil, value)
}

// batchSpec says how a broker stored a record batch.
type batchSpec struct {
	codec         compression
	baseOffset    int64
	logAppendTime int64 // the batch's MaxTimestamp when stamped LogAppendTime
	control       bool
	headers       bool
	offsetGap     int64 // added to every offset delta after the first (compaction)
}

// recordBatch encodes recs as one RecordBatch v2 the way a broker stores
// it, with kmsg and the codec libraries only.
func recordBatch(t testing.TB, spec batchSpec, recs []testRecord) []byte {
	t.Helper()
	var raw []byte
	first, maxTs := recs[0].timestamp, recs[0].timestamp
	lastDelta := int32(0)
	for i, r := range recs {
		maxTs = max(maxTs, r.timestamp)
		delta := int32(i)
		if i > 0 {
			delta += int32(spec.offsetGap)
		}
		lastDelta = delta
		rec := kmsg.Record{TimestampDelta64: r.timestamp - first, OffsetDelta: delta, Key: r.key, Value: r.value}
		if spec.headers {
			rec.Headers = []kmsg.Header{{Key: "h", Value: []byte("header value")}, {Key: "empty"}}
		}
		body := rec.AppendTo(nil)[1:] // a zero Length takes one byte
		rec.Length = int32(len(body))
		raw = rec.AppendTo(raw)
	}
	attrs := int16(spec.codec)
	if spec.codec != compressionNone {
		raw = compressIndependently(t, spec.codec, raw, false)
	}
	if spec.logAppendTime != 0 {
		attrs |= batchTimestampLogAppendTime
		maxTs = spec.logAppendTime
	}
	if spec.control {
		attrs |= batchControl | 0x10
	}
	b := kmsg.RecordBatch{
		FirstOffset: spec.baseOffset, Length: int32(49 + len(raw)), PartitionLeaderEpoch: 3, Magic: 2,
		Attributes: attrs, LastOffsetDelta: lastDelta, FirstTimestamp: first, MaxTimestamp: maxTs,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: int32(len(recs)), Records: raw,
	}
	out := b.AppendTo(nil)
	binary.BigEndian.PutUint32(out[17:], crc32.Checksum(out[21:], crc32.MakeTable(crc32.Castagnoli)))
	return out
}

// topMessage is one top-level message of a message set, read with kmsg.
type topMessage struct {
	offset     int64
	magic      int8
	attributes int8
	timestamp  int64
	value      []byte
	raw        []byte
}

func topMessages(t testing.TB, set []byte) []topMessage {
	t.Helper()
	var out []topMessage
	for len(set) > 0 {
		size := int(binary.BigEndian.Uint32(set[8:])) + 12
		m := topMessage{raw: set[:size], magic: int8(set[16])}
		if m.magic == 0 {
			var v kmsg.MessageV0
			if err := v.ReadFrom(set[:size]); err != nil {
				t.Fatal(err)
			}
			m.offset, m.attributes, m.timestamp, m.value = v.Offset, v.Attributes, -1, v.Value
		} else {
			var v kmsg.MessageV1
			if err := v.ReadFrom(set[:size]); err != nil {
				t.Fatal(err)
			}
			m.offset, m.attributes, m.timestamp, m.value = v.Offset, v.Attributes, v.Timestamp, v.Value
		}
		out = append(out, m)
		set = set[size:]
	}
	return out
}

// repairMagic0Lz4 rewrites the magic 0 lz4 wrappers of set with the
// standard header checksum (and a new message CRC), which franz-go's lz4
// reader insists on; it fails the test if a wrapper lacks the broken
// checksum magic 0 readers expect.
func repairMagic0Lz4(t testing.TB, set []byte) []byte {
	t.Helper()
	var out []byte
	for _, m := range topMessages(t, set) {
		raw := bytes.Clone(m.raw)
		if m.magic == 0 && compression(m.attributes&7) == compressionLz4 {
			frame := raw[len(raw)-len(m.value):]
			if want := byte(xxh32(frame[:6]) >> 8); frame[6] != want {
				t.Fatalf("magic 0 lz4 header checksum %02x, want the KAFKA-3160 one %02x", frame[6], want)
			}
			frame[6] = byte(xxh32(frame[4:6]) >> 8)
			binary.BigEndian.PutUint32(raw[12:], crc32.ChecksumIEEE(raw[16:]))
		}
		out = append(out, raw...)
	}
	return out
}
