package bridge

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const fuzzMaxOut = 1 << 20

// conversionError fails the fuzz run unless err is one of the two kinds a
// conversion may fail with.
func conversionError(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrCorruptRecords) && !errors.Is(err, ErrRecordsTooLarge) {
		t.Fatalf("error of no known kind: %v", err)
	}
}

// FuzzUpMessageSet: no input panics; what converts is a batch franz-go
// reads, holding the keys and values franz-go reads from the set itself.
// Each input is also tried with its top-level CRCs made right, so that
// mutations reach past the CRC check.
func FuzzUpMessageSet(f *testing.F) {
	recs := testRecords(4)
	for _, spec := range []legacySetSpec{
		{magic: 0}, {magic: 1},
		{magic: 0, codec: compressionGzip}, {magic: 1, codec: compressionGzip},
		{magic: 1, codec: compressionSnappy}, {magic: 0, codec: compressionSnappy, xerial: true},
		{magic: 1, codec: compressionLz4}, {magic: 0, codec: compressionLz4, brokenLz4: true},
		{magic: 1, codec: compressionGzip, logAppendAt: 1},
	} {
		f.Add(legacySet(f, spec, recs))
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, set []byte) {
		checkUpMessageSet(t, set)
		checkUpMessageSet(t, withFreshCRCs(set))
	})
}

// withFreshCRCs is set with the CRC of every top-level message it can find
// recomputed.
func withFreshCRCs(set []byte) []byte {
	out := bytes.Clone(set)
	for in := out; len(in) > magicAt; {
		size := int64(int32(binary.BigEndian.Uint32(in[8:])))
		if size < magicAt+1-legacyLogOverhead || size > int64(len(in)-legacyLogOverhead) {
			break
		}
		msg := in[:legacyLogOverhead+size]
		binary.BigEndian.PutUint32(msg[12:], crc32.ChecksumIEEE(msg[magicAt:]))
		in = in[len(msg):]
	}
	return out
}

func checkUpMessageSet(t *testing.T, set []byte) {
	t.Helper()
	inflate := fuzzMaxOut
	batch, err := upMessageSet(poisoning(), set, fuzzMaxOut, &inflate)
	if err != nil {
		conversionError(t, err)
		return
	}
	if len(set) == 0 {
		if len(batch) != 0 {
			t.Fatalf("%d bytes from an empty set", len(batch))
		}
		return
	}
	got, err := kgoRead(batch)
	if err != nil {
		t.Fatalf("franz-go cannot read the converted batch: %v", err)
	}
	if len(got) == 0 {
		t.Fatal("a set converted to a batch without records")
	}
	want, err := kgoRead(set)
	if err != nil {
		return // franz-go refuses what Kafka accepts, e.g. a magic 0 lz4 checksum
	}
	// franz-go drops a message whose offset does not move past the one
	// before; a producer's offsets mean nothing and all are converted,
	// so what franz-go reads is a subsequence of the conversion.
	sameData := func(a, b testRecord) bool {
		return sameRecord(testRecord{key: a.key, value: a.value}, testRecord{key: b.key, value: b.value})
	}
	i := 0
	for _, w := range want {
		for i < len(got) && !sameData(got[i], w) {
			i++
		}
		if i == len(got) {
			t.Fatalf("franz-go reads %v from the set, not among the %d converted records", w, len(got))
		}
		i++
	}
}

// FuzzDownRecords: no input panics; what converts is a message set franz-go
// reads, a prefix of the records franz-go reads from the input (CRCs aside:
// the broker's are trusted) of at least one record, within maxBytes unless
// it is one message.
func FuzzDownRecords(f *testing.F) {
	recs := testRecords(4)
	for _, spec := range []batchSpec{
		{}, {codec: compressionGzip, baseOffset: 7}, {codec: compressionSnappy, headers: true},
		{codec: compressionLz4, offsetGap: 2}, {codec: compressionZstd}, {logAppendTime: 5}, {control: true},
	} {
		f.Add(recordBatch(f, spec, recs), false, uint16(1000))
		f.Add(recordBatch(f, spec, recs), true, uint16(100))
	}
	f.Add(recordBatch(f, batchSpec{baseOffset: -1}, recs), true, uint16(1000))
	two := append(recordBatch(f, batchSpec{}, recs[:2]), recordBatch(f, batchSpec{baseOffset: 2, codec: compressionLz4}, recs[2:])...)
	f.Add(two, false, uint16(60))
	f.Add(legacySet(f, legacySetSpec{magic: 1, codec: compressionGzip, firstOffset: 3}, recs), false, uint16(500))
	f.Add(legacySet(f, legacySetSpec{magic: 1, codec: compressionGzip, firstOffset: 3, logAppendAt: 1_900_000_000_000}, recs), true, uint16(500))
	f.Fuzz(func(t *testing.T, records []byte, magic1 bool, maxBytes uint16) {
		magic := int8(0)
		if magic1 {
			magic = 1
		}
		set, err := downRecords(poisoning(), nil, records, magic, int32(maxBytes), fuzzMaxOut)
		if err != nil {
			conversionError(t, err)
			return
		}
		top := topMessages(t, set)
		if len(top) > 1 && len(set) > int(maxBytes) {
			t.Fatalf("%d messages in %d bytes, past maxBytes %d", len(top), len(set), maxBytes)
		}
		got, err := kgoReadOpts(repairMagic0Lz4(t, set), kgo.ProcessFetchPartitionOpts{Offset: math.MinInt64})
		if err != nil {
			t.Fatalf("franz-go cannot read the converted set: %v", err)
		}
		for i := 1; i < len(got); i++ {
			if got[i].offset <= got[i-1].offset {
				return // franz-go skips offsets that go back; nothing to compare
			}
		}
		// The set leaves control batches out, as a read_uncommitted Kafka
		// consumer skips them whole; franz-go reads their records and
		// moves on to the offset after the last, which in a malformed
		// batch can lie past later batches. So it reads the input
		// without them.
		records = withoutControlBatches(records)
		if offsetsGoBack(records) {
			return // franz-go skips or relabels records whose offsets the set keeps
		}
		want, err := kgoReadOpts(records, kgo.ProcessFetchPartitionOpts{Offset: math.MinInt64, DisableCRCValidation: true})
		if err != nil {
			return
		}
		if len(want) > 0 && len(got) == 0 {
			t.Fatalf("nothing converted of %d records", len(want))
		}
		if len(got) > len(want) {
			t.Fatalf("%d records converted, franz-go reads %d", len(got), len(want))
		}
		timeless := franzTimestampsDiffer(records)
		for i := range got {
			if magic == 0 {
				want[i].timestamp = -1
			}
			if timeless {
				got[i].timestamp, want[i].timestamp = 0, 0
			}
			if !sameRecord(got[i], want[i]) {
				t.Fatalf("record %d: converted %v, input %v", i, got[i], want[i])
			}
		}
		if len(set) > 0 && !bytes.Equal(set, repairMagic0Lz4(t, set)) && magic != 0 {
			t.Fatal("a magic 1 set changed by the magic 0 lz4 repair")
		}
	})
}

// withoutControlBatches is records with every whole control batch left
// out; a unit that does not decode as a batch is kept.
func withoutControlBatches(records []byte) []byte {
	var out []byte
	for b := records; len(b) > 0; {
		size := int64(-1)
		if len(b) >= recordBatchLogOverhead {
			size = int64(int32(binary.BigEndian.Uint32(b[8:])))
		}
		if size < 0 || size > int64(len(b)-recordBatchLogOverhead) {
			return append(out, b...) // a partial unit at the end
		}
		unit := b[:recordBatchLogOverhead+size]
		b = b[len(unit):]
		var rb kmsg.RecordBatch
		if len(unit) > magicAt && unit[magicAt] == 2 && rb.ReadFrom(unit) == nil && rb.Attributes&batchControl != 0 {
			continue
		}
		out = append(out, unit...)
	}
	return out
}

// offsetsGoBack reports whether franz-go reads the offsets of records other
// than the set keeps them, so that the two cannot be compared record for
// record:
//   - a batch starts inside the offsets an earlier batch covers: franz-go
//     skips its records (it reads a partition forward);
//   - a batch's first offset is -1: franz-go reads every record of it at
//     offset -1, and then skips all but the first.
func offsetsGoBack(records []byte) bool {
	next := int64(math.MinInt64)
	for b := records; len(b) > recordBatchLogOverhead; {
		size := int64(int32(binary.BigEndian.Uint32(b[8:])))
		if size < 0 || size > int64(len(b)-recordBatchLogOverhead) {
			return false
		}
		unit := b[:recordBatchLogOverhead+size]
		b = b[len(unit):]
		var rb kmsg.RecordBatch
		if rb.ReadFrom(unit) != nil || unit[magicAt] != 2 {
			return false
		}
		if rb.FirstOffset < next || rb.FirstOffset == -1 {
			return true
		}
		if end := rb.FirstOffset + int64(rb.LastOffsetDelta) + 1; end > next {
			next = end
		}
	}
	return false
}

// franzTimestampsDiffer reports whether franz-go reads some timestamp of
// records other than Kafka does, so that its reading of the input is no
// measure of the conversion's timestamps:
//   - past what a time.Time holds in milliseconds (beyond the year 9999),
//     franz-go hands timestamps back wrapped, one way for a batch's base
//     plus delta and another for a message's own timestamp;
//   - a batch attribute bit Kafka leaves unused (7) makes franz-go read
//     the batch as if stamped LogAppendTime;
//   - a compressed magic 1 message stamped LogAppendTime gives its inner
//     messages its own timestamp in Kafka, franz-go reads theirs
//     (TestDownRecordsLogAppendTime checks the conversion's).
func franzTimestampsDiffer(records []byte) bool {
	const lastMillis = 253402300799999
	for b := records; len(b) > magicAt+2; {
		size := int64(int32(binary.BigEndian.Uint32(b[8:])))
		if size < 0 || size > int64(len(b)-recordBatchLogOverhead) {
			return false
		}
		unit := b[:recordBatchLogOverhead+size]
		b = b[len(unit):]
		if len(unit) <= magicAt+1 {
			continue // too short for a magic and attributes: no records
		}
		if unit[magicAt] != 2 {
			attributes := int8(unit[magicAt+1])
			if unit[magicAt] == 1 && compression(attributes&compressionMask) != compressionNone && attributes&legacyLogAppendTime != 0 {
				return true
			}
			continue
		}
		var rb kmsg.RecordBatch
		if rb.ReadFrom(unit) != nil {
			continue
		}
		if rb.Attributes&0x80 != 0 || abs(rb.FirstTimestamp) > lastMillis || abs(rb.MaxTimestamp) > lastMillis {
			return true
		}
		raw := rb.Records
		if codec := kgo.CompressionCodecType(rb.Attributes & 0x07); codec != kgo.CodecNone {
			var err error
			if raw, err = kgo.DefaultDecompressor().Decompress(raw, codec); err != nil {
				continue
			}
		}
		for range rb.NumRecords {
			n, used := binary.Varint(raw)
			if used <= 0 || n < 0 || int64(len(raw)-used) < n {
				break
			}
			var r kmsg.Record
			if r.ReadFrom(raw[:used+int(n)]) == nil && abs(rb.FirstTimestamp+r.TimestampDelta64) > lastMillis {
				return true
			}
			raw = raw[used+int(n):]
		}
	}
	return false
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
