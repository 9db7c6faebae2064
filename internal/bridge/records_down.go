package bridge

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// errMessageSetFull stops the walk of a batch whose next message does not fit
// in the fetch's bytes.
var errMessageSetFull = errors.New("message set full")

// DownRecords converts one Fetch v4+ partition's records (RecordBatch v2
// batches; a batch of magic 0/1 that a broker stored is converted too) to a
// message set of the given magic: 0 for Fetch v0–1, 1 for Fetch v2–3.
// Control batches and record headers are dropped; compressed batches become
// one compressed wrapper of the same codec (gzip, snappy, lz4; magic 0 lz4
// with the broken header checksum old clients expect), zstd (unknown to
// magic 0/1) is sent plain; a wrapper's offset is its last inner offset, and
// magic 1 inner offsets are relative (0..n-1) while magic 0 inner offsets are
// absolute. The result holds at most maxBytes bytes except that it always
// holds at least one whole message if the input had one (KIP-74); messages
// that do not fit are left out (a client fetches them next time from the
// next offset). It fails rather than allocate past maxOut bytes.
//
// Fetch v0–3 know no isolation level: the records of transactions are sent
// whatever their outcome, as to a read_uncommitted consumer.
//
// The broker's batches are trusted: their CRCs are not checked (the client
// checks the CRCs of what it is sent, which are computed afresh here). A
// partial batch at the end, which a broker sends when the fetch's bytes end
// inside it, is left out as a client would skip it. A record at a negative
// offset, which no broker sends, makes the records corrupt.
func DownRecords(records []byte, magic int8, maxBytes int32, maxOut int) ([]byte, error) {
	return downRecords(Allocator{}, nil, records, magic, maxBytes, maxOut)
}

// downRecords is DownRecords writing the set into into, of length 0, while
// it has room (a Fetch answer's piece, behind the bytes that precede the
// set); nil: into memory from alloc.
func downRecords(alloc Allocator, into, records []byte, magic int8, maxBytes int32, maxOut int) ([]byte, error) {
	if magic != 0 && magic != 1 {
		return nil, fmt.Errorf("bridge: no message format v%d to convert records to", magic)
	}
	if len(records) == 0 {
		return records, nil
	}
	if into == nil {
		into = alloc.get(setSizeHint(records, maxBytes, maxOut))
	}
	d := &downConverter{
		codecs:   codecs{maxOut: maxOut, alloc: alloc},
		magic:    magic,
		maxBytes: int(max(maxBytes, 0)),
		maxOut:   maxOut,
		budget:   maxOut,
		out:      into,
	}
	defer d.close()
	for in := records; len(in) > magicAt && !d.full; {
		size := int64(int32(binary.BigEndian.Uint32(in[8:])))
		if size < magicAt+1-recordBatchLogOverhead {
			return nil, corruptf("batch length %d", size)
		}
		if size > int64(len(in)-recordBatchLogOverhead) {
			break
		}
		unit := in[:recordBatchLogOverhead+size]
		in = in[len(unit):]
		if len(d.out) > 0 && len(d.out) >= d.maxBytes {
			break
		}
		var err error
		switch m := unit[magicAt]; m {
		case 2:
			err = d.batch(unit)
		case 0, 1:
			err = d.legacy(unit)
		default:
			err = corruptf("batch magic %d", m)
		}
		if err != nil {
			return nil, err
		}
	}
	return d.out, nil
}

// setSizeHint is about how large the message set converted from records
// is: message format v1 frames a small record with about 24 bytes more than
// v2 does, and the set holds at most about maxBytes.
func setSizeHint(records []byte, maxBytes int32, maxOut int) int {
	return max(0, min(len(records)+len(records)/4+64, maxOut, max(int(maxBytes), 1<<10)))
}

// downConverter writes the message set of one partition.
type downConverter struct {
	codecs
	magic         int8
	maxBytes      int
	maxOut        int
	budget        int    // decompressed bytes still allowed
	out           []byte // the message set
	scratch       []byte // the inner message set of the wrapper being written
	scratchRecord record
	full          bool // a message was left out: nothing after it may follow
}

func (d *downConverter) batch(unit []byte) error {
	var b kmsg.RecordBatch
	if err := b.ReadFrom(unit); err != nil || b.Length < recordBatchHeaderLen-recordBatchLogOverhead {
		return corruptf("record batch of %d bytes", len(unit))
	}
	if b.Attributes&batchControl != 0 {
		return nil
	}
	if b.NumRecords < 0 {
		return corruptf("record batch of %d records", b.NumRecords)
	}
	c := compression(b.Attributes & compressionMask)
	logAppendTime := b.Attributes&batchTimestampLogAppendTime != 0
	recs := batchRecords{
		raw: b.Records, left: b.NumRecords, logAppendTime: logAppendTime,
		firstOffset: b.FirstOffset, firstTimestamp: b.FirstTimestamp, maxTimestamp: b.MaxTimestamp,
	}
	if c != compressionNone {
		var err error
		if recs.raw, err = d.inflate(c, b.Records, d.budget); err != nil {
			return err
		}
		d.budget -= len(recs.raw)
		defer d.alloc.free(recs.raw[:0]) // every record is copied out of it
	}
	if d.plain(c) {
		// Most of what a consumer reads. A loop of its own costs less per
		// record than the walk by callbacks a wrapper takes: no indirect
		// call per record, and the record and the batch stay on the
		// stack.
		attributes := d.attributes(logAppendTime)
		var r record
		for {
			more, err := recs.next(&r)
			if !more || err != nil {
				return err
			}
			if err := d.appendMessage(attributes, &r); err != nil {
				if errors.Is(err, errMessageSetFull) {
					return nil
				}
				return err
			}
		}
	}
	return d.appendWrapper(c, d.attributes(logAppendTime), func(fn recordFunc) error {
		r := &d.scratchRecord
		for {
			more, err := recs.next(r)
			if !more || err != nil {
				return err
			}
			if err := fn(r); err != nil {
				return err
			}
		}
	})
}

// batchRecords reads the records of a RecordBatch v2 in order.
type batchRecords struct {
	raw            []byte // the records not yet read, decompressed
	left           int32  // records not yet read
	firstOffset    int64
	firstTimestamp int64
	maxTimestamp   int64
	logAppendTime  bool
}

// next reads the next record into r; false when there is none left.
func (it *batchRecords) next(r *record) (bool, error) {
	if it.left == 0 {
		if len(it.raw) != 0 {
			return false, corruptf("%d bytes after the last record of a batch", len(it.raw))
		}
		return false, nil
	}
	n, err := readBatchRecord(it.raw, r)
	if err != nil {
		return false, err
	}
	it.raw, it.left = it.raw[n:], it.left-1
	r.offset += it.firstOffset
	if it.logAppendTime {
		r.timestamp = it.maxTimestamp
	} else {
		r.timestamp += it.firstTimestamp
	}
	return true, nil
}

func (d *downConverter) legacy(unit []byte) error {
	m, _, err := readLegacyMessage(unit, false)
	if err != nil {
		return err
	}
	logAppendTime := m.magic == 1 && m.attributes&legacyLogAppendTime != 0
	return d.write(m.compression(), logAppendTime, func(fn recordFunc) error {
		return eachLegacyRecord(&d.codecs, &m, false, &d.budget, &d.scratchRecord, fn)
	})
}

// write appends the records walk hands on: as plain messages when c is none
// or a codec magic 0/1 lacks, else as one wrapper compressed with c.
func (d *downConverter) write(c compression, logAppendTime bool, walk func(recordFunc) error) error {
	attributes := d.attributes(logAppendTime)
	if d.plain(c) {
		err := walk(func(r *record) error { return d.appendMessage(attributes, r) })
		if errors.Is(err, errMessageSetFull) {
			return nil
		}
		return err
	}
	return d.appendWrapper(c, attributes, walk)
}

// plain reports whether records compressed with c are written as plain
// messages: c is none, or a codec magic 0/1 lacks (zstd).
func (d *downConverter) plain(c compression) bool {
	return c == compressionNone || c > compressionLz4
}

// attributes are the attributes of the messages written for records of
// the given timestamp type.
func (d *downConverter) attributes(logAppendTime bool) int8 {
	if d.magic == 1 && logAppendTime {
		return legacyLogAppendTime
	}
	return 0
}

func (d *downConverter) appendMessage(attributes int8, r *record) error {
	if r.offset < 0 {
		return negativeOffset(r)
	}
	size := legacyLogOverhead + legacyMessageSize(d.magic, r.key, r.value)
	if len(d.out) > 0 && len(d.out)+size > d.maxBytes {
		d.full = true
		return errMessageSetFull
	}
	out, err := d.alloc.reserve(d.out, size, d.maxOut)
	if err != nil {
		return err
	}
	d.out = appendLegacyMessage(out, d.magic, r.offset, attributes, r.timestamp, r.key, r.value)
	return nil
}

// appendWrapper writes the records as a compressed wrapper: its offset is
// the last inner offset, magic 1 inner offsets count from the first inner
// message, and a magic 1 wrapper's timestamp is the highest inner one.
func (d *downConverter) appendWrapper(c compression, attributes int8, walk func(recordFunc) error) error {
	inner := d.scratch[:0]
	var count int
	var first, last int64
	maxTimestamp := int64(-1)
	err := walk(func(r *record) error {
		if r.offset < 0 {
			return negativeOffset(r)
		}
		if count == 0 {
			first = r.offset
		}
		offset := r.offset
		if d.magic == 1 {
			offset -= first
		}
		var err error
		if inner, err = d.alloc.reserve(inner, legacyLogOverhead+legacyMessageSize(d.magic, r.key, r.value), d.maxOut); err != nil {
			return err
		}
		inner = appendLegacyMessage(inner, d.magic, offset, 0, r.timestamp, r.key, r.value)
		last, maxTimestamp = r.offset, max(maxTimestamp, r.timestamp)
		count++
		return nil
	})
	d.scratch = inner
	if err != nil || count == 0 {
		return err
	}

	start := len(d.out)
	headerLen := legacyLogOverhead + legacyMessageSize(d.magic, nil, nil)
	out, err := d.alloc.reserve(d.out, headerLen, d.maxOut)
	if err != nil {
		return err
	}
	if out, err = d.deflate(out[:start+headerLen], c, inner, d.magic == 0, d.maxOut); err != nil {
		return err
	}
	if start > 0 && len(out) > d.maxBytes {
		d.out, d.full = out[:start], true
		return nil
	}
	value := out[start+headerLen:]
	// The header is written in front of the compressed value, which
	// AppendTo then copies onto itself.
	d.out = appendLegacyMessage(out[:start], d.magic, last, int8(c)|attributes, maxTimestamp, nil, value)
	return nil
}

// negativeOffset is the error for a record at an offset below 0, which no
// broker sends: a magic 1 wrapper could not name it (its offset, the last
// inner one, must not be below the inner offsets, which count from 0).
func negativeOffset(r *record) error {
	return corruptf("record at offset %d", r.offset)
}

// readBatchRecord reads the record at the start of in, a RecordBatch v2's
// records, into r with its offset and timestamp deltas, and returns the bytes
// it took; headers are skipped.
func readBatchRecord(in []byte, r *record) (int, error) {
	length, n := binary.Varint(in)
	if n <= 0 || length < 0 || length > int64(len(in)-n) {
		return 0, corruptf("record length in %d bytes", len(in))
	}
	rd := varintReader{b: in[n : n+int(length)], ok: true}
	rd.skip(1) // attributes, unused
	r.timestamp = rd.varint(math.MinInt64, math.MaxInt64)
	r.offset = rd.varint(math.MinInt32, math.MaxInt32)
	r.key = rd.bytes()
	r.value = rd.bytes()
	for headers := rd.varint(0, math.MaxInt32); headers > 0 && rd.ok; headers-- {
		rd.bytes()
		rd.bytes()
	}
	if !rd.ok || len(rd.b) != 0 {
		return 0, corruptf("record of %d bytes", length)
	}
	return n + int(length), nil
}

// varintReader reads the varint fields of a record; the first that does not
// fit its bounds or its bytes turns ok off.
type varintReader struct {
	b  []byte
	ok bool
}

func (r *varintReader) skip(n int) {
	if len(r.b) < n {
		r.b, r.ok = nil, false
		return
	}
	r.b = r.b[n:]
}

func (r *varintReader) varint(lo, hi int64) int64 {
	if len(r.b) > 0 && r.b[0] < 0x80 {
		// One byte: most of a small record's fields (its deltas,
		// lengths below 64, a header count of 0).
		if v := int64(r.b[0]>>1) ^ -int64(r.b[0]&1); v >= lo && v <= hi {
			r.b = r.b[1:]
			return v
		}
	}
	v, n := binary.Varint(r.b)
	if n <= 0 || v < lo || v > hi {
		r.b, r.ok = nil, false
		return 0
	}
	r.b = r.b[n:]
	return v
}

// bytes reads a varint-length-prefixed byte string; length -1 is nil.
func (r *varintReader) bytes() []byte {
	l := r.varint(-1, math.MaxInt32)
	if l < 0 || l > int64(len(r.b)) {
		if l > int64(len(r.b)) {
			r.b, r.ok = nil, false
		}
		return nil
	}
	b := r.b[:l:l]
	r.b = r.b[l:]
	return b
}
