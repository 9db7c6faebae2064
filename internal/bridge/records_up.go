package bridge

import (
	"encoding/binary"
	"hash/crc32"
	"math"
	"math/bits"

	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	// everything of a record batch before its records
	recordBatchHeaderLen = 61
	// offset and length, which the batch length does not count
	recordBatchLogOverhead = 12
	// the batch CRC (CRC32C) covers the batch from its attributes on
	recordBatchCRCAt   = 17
	recordBatchAttrsAt = 21

	batchTimestampLogAppendTime = 0x08
	batchControl                = 0x20
)

// UpMessageSet converts one Produce v0–2 partition's records — a message
// set of magic 0 or magic 1 messages, any of which may be a compressed
// wrapper (gzip, snappy incl. xerial framing, lz4 incl. magic 0's broken
// LZ4 frame header checksum) — into one RecordBatch v2 (CRC32C, varints;
// magic 0 messages have no timestamp: -1), producer id -1, compressed with
// the wrapper's codec when the set was compressed, else plain. It fails,
// never allocates past maxOut bytes of decompressed or output data. A nil
// or empty set is returned as is.
//
// Every message's CRC is checked, inner ones too: a set that fails is the
// client's corruption, which the broker would answer CORRUPT_MESSAGE, and
// the converted batch would carry a fresh CRC that hides it. Offsets are
// the broker's to assign: the batch counts from 0. A set mixing codecs is
// compressed with the last one, as Kafka's LogValidator picks its source
// codec.
func UpMessageSet(set []byte, maxOut int) ([]byte, error) {
	inflate := maxOut
	return upMessageSet(Allocator{}, set, maxOut, &inflate)
}

// upMessageSet is UpMessageSet decompressing at most *inflate bytes, which
// it takes from *inflate: the partitions of one request share it.
func upMessageSet(alloc Allocator, set []byte, maxOut int, inflate *int) ([]byte, error) {
	if len(set) == 0 {
		return set, nil
	}
	b, err := newBatchBuilder(alloc, len(set), maxOut)
	if err != nil {
		return nil, err
	}
	codec, err := b.addSet(set, inflate)
	if err != nil {
		// A corrupt partition's batch goes back at once: the rest of
		// the request goes on without it.
		alloc.free(b.buf)
		return nil, err
	}
	return b.finish(codec)
}

// addSet adds every record of a message set and returns the codec to
// compress the batch with: the last wrapper's.
func (b *batchBuilder) addSet(set []byte, inflate *int) (compression, error) {
	codec := compressionNone
	for in := set; len(in) > 0; {
		m, n, err := readLegacyMessage(in, true)
		if err != nil {
			return codec, err
		}
		if c := m.compression(); c != compressionNone {
			codec = c
		}
		if err := eachLegacyRecord(&b.codecs, &m, true, inflate, &b.scratch, b.add); err != nil {
			return codec, err
		}
		in = in[n:]
	}
	if b.count == 0 {
		return codec, corruptf("message set of %d bytes holds no message", len(set))
	}
	return codec, nil
}

// batchBuilder encodes records as one producer's RecordBatch v2.
type batchBuilder struct {
	codecs
	scratch        record // the record being added
	buf            []byte // room for the batch header, then the records
	limit          int
	count          int32
	firstTimestamp int64
	maxTimestamp   int64
}

func newBatchBuilder(alloc Allocator, sizeHint, limit int) (*batchBuilder, error) {
	if limit < recordBatchHeaderLen {
		return nil, tooLarge("record batch", limit)
	}
	buf := alloc.get(min(recordBatchHeaderLen+sizeHint, limit))[:recordBatchHeaderLen] // finish writes the header whole
	return &batchBuilder{codecs: codecs{alloc: alloc}, buf: buf, limit: limit}, nil
}

func (b *batchBuilder) add(r *record) error {
	if b.count == math.MaxInt32 {
		return corruptf("more than %d records in one batch", math.MaxInt32)
	}
	if b.count == 0 {
		b.firstTimestamp, b.maxTimestamp = r.timestamp, r.timestamp
	}
	b.maxTimestamp = max(b.maxTimestamp, r.timestamp)
	delta := r.timestamp - b.firstTimestamp
	rec := kmsg.Record{
		TimestampDelta64: delta,
		TimestampDelta:   int32(delta),
		OffsetDelta:      b.count,
		Key:              r.key,
		Value:            r.value,
	}
	body := 1 + varintSize(delta) + varintSize(int64(b.count)) +
		varintBytesSize(r.key) + varintBytesSize(r.value) + varintSize(0)
	rec.Length = int32(body)
	buf, err := b.alloc.reserve(b.buf, varintSize(int64(body))+body, b.limit)
	if err != nil {
		return err
	}
	b.buf = rec.AppendTo(buf)
	b.count++
	return nil
}

// finish writes the batch header (compressing the records first when c is
// a codec) and its CRC.
func (b *batchBuilder) finish(c compression) ([]byte, error) {
	out := b.buf
	if c != compressionNone {
		records := b.buf[recordBatchHeaderLen:]
		dst := b.alloc.get(min(recordBatchHeaderLen+len(records)/2, b.limit))[:recordBatchHeaderLen]
		var err error
		if out, err = b.deflate(dst, c, records, false, b.limit); err != nil {
			return nil, err
		}
		b.alloc.free(b.buf)
	}
	if len(out)-recordBatchLogOverhead > math.MaxInt32 {
		return nil, tooLarge("record batch", math.MaxInt32)
	}
	header := kmsg.RecordBatch{
		FirstOffset:          0,
		Length:               int32(len(out) - recordBatchLogOverhead),
		PartitionLeaderEpoch: -1,
		Magic:                2,
		Attributes:           int16(c),
		LastOffsetDelta:      b.count - 1,
		FirstTimestamp:       b.firstTimestamp,
		MaxTimestamp:         b.maxTimestamp,
		ProducerID:           -1,
		ProducerEpoch:        -1,
		FirstSequence:        -1,
		NumRecords:           b.count,
	}
	header.AppendTo(out[:0]) // fills the room left at the front, in place
	crc := crc32.Checksum(out[recordBatchAttrsAt:], crc32.MakeTable(crc32.Castagnoli))
	binary.BigEndian.PutUint32(out[recordBatchCRCAt:], crc)
	return out, nil
}

// varintSize is the length of v as a zigzag varint, Kafka's varint and
// varlong.
func varintSize(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	return (bits.Len64(u|1) + 6) / 7
}

// varintBytesSize is the encoded length of a varint-length-prefixed byte
// string; nil is length -1.
func varintBytesSize(b []byte) int {
	if b == nil {
		return varintSize(-1)
	}
	return varintSize(int64(len(b))) + len(b)
}
