package bridge

import (
	"encoding/binary"
	"hash/crc32"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// record is one record as a reader sees it, whatever layout carried it:
// absolute offset, effective timestamp (-1 for none), key and value
// aliasing the input or its decompressed copy.
type record struct {
	offset    int64
	timestamp int64
	key       []byte
	value     []byte
}

// recordFunc takes the records of a message set or batch in order; an error
// stops the walk and is returned by it.
type recordFunc func(r *record) error

const (
	// offset and message size, which the message size does not count
	legacyLogOverhead = 12
	// crc, magic, attributes, key length, value length
	legacyV0Overhead = 4 + 1 + 1 + 4 + 4
	// the magic 1 timestamp
	legacyTimestampLen = 8
	// the magic byte of a message or record batch, after offset, size and
	// crc or leader epoch
	magicAt = 16
	// attribute bit 3 of a magic 1 message: the timestamp is the broker's
	legacyLogAppendTime = 0x08
)

// legacyMessage is one magic 0 or 1 message, aliasing the set it was read
// from.
type legacyMessage struct {
	offset     int64
	magic      int8
	attributes int8
	timestamp  int64 // -1 in magic 0
	key        []byte
	value      []byte
}

func (m *legacyMessage) compression() compression {
	return compression(m.attributes & compressionMask)
}

// legacyMessageSize is the size of a message with this key and value after
// its message size field.
func legacyMessageSize(magic int8, key, value []byte) int {
	n := legacyV0Overhead + len(key) + len(value)
	if magic == 1 {
		n += legacyTimestampLen
	}
	return n
}

// readLegacyMessage reads the message at the start of in and returns it
// with the bytes it took. Its CRC (IEEE, from the magic on) is checked when
// checkCRC is set.
func readLegacyMessage(in []byte, checkCRC bool) (legacyMessage, int, error) {
	if len(in) < legacyLogOverhead+legacyV0Overhead {
		return legacyMessage{}, 0, corruptf("message of %d bytes is too short", len(in))
	}
	size := int32(binary.BigEndian.Uint32(in[8:]))
	if size < legacyV0Overhead || int64(size) > int64(len(in)-legacyLogOverhead) {
		return legacyMessage{}, 0, corruptf("message size %d does not fit in %d bytes", size, len(in)-legacyLogOverhead)
	}
	whole := in[:legacyLogOverhead+int(size)]
	var m legacyMessage
	var crc int32
	switch magic := whole[magicAt]; magic {
	case 0:
		var v kmsg.MessageV0
		if err := v.ReadFrom(whole); err != nil {
			return legacyMessage{}, 0, corruptf("message v0: %v", err)
		}
		m = legacyMessage{offset: v.Offset, magic: 0, attributes: v.Attributes, timestamp: -1, key: v.Key, value: v.Value}
		crc = v.CRC
	case 1:
		var v kmsg.MessageV1
		if err := v.ReadFrom(whole); err != nil {
			return legacyMessage{}, 0, corruptf("message v1: %v", err)
		}
		m = legacyMessage{offset: v.Offset, magic: 1, attributes: v.Attributes, timestamp: v.Timestamp, key: v.Key, value: v.Value}
		crc = v.CRC
	default:
		return legacyMessage{}, 0, corruptf("message magic %d in a message set", magic)
	}
	if got := legacyMessageSize(m.magic, m.key, m.value); got != int(size) {
		return legacyMessage{}, 0, corruptf("message size %d, its fields take %d", size, got)
	}
	if checkCRC {
		if sum := int32(crc32.ChecksumIEEE(whole[magicAt:])); sum != crc {
			return legacyMessage{}, 0, corruptf("message crc %08x, computed %08x", uint32(crc), uint32(sum))
		}
	}
	return m, len(whole), nil
}

// eachLegacyRecord hands fn the records of m, one at a time in r (the
// caller's, so that no record is allocated): m itself, or the messages
// inside it when it is a compressed wrapper, decompressed into at most
// *budget bytes, which it takes from *budget. Inner offsets are made
// absolute: a magic 1 wrapper's inner offsets are relative to its own, the
// offset of its last inner message (a wrapper offset 0 means they are used
// as they are, as older librdkafka wrote); a magic 0 wrapper's are absolute
// already. A magic 1 wrapper stamped LogAppendTime gives its timestamp to
// every inner message, as Kafka's consumer reads it.
func eachLegacyRecord(cs *codecs, m *legacyMessage, checkCRC bool, budget *int, r *record, fn recordFunc) error {
	c := m.compression()
	*r = record{offset: m.offset, timestamp: m.timestamp, key: m.key, value: m.value}
	if c == compressionNone {
		return fn(r)
	}
	if c > compressionLz4 {
		return corruptf("%v wrapper in message format v%d", c, m.magic)
	}
	inner, err := cs.inflate(c, m.value, *budget)
	if err != nil {
		return err
	}
	*budget -= len(inner)
	defer cs.alloc.free(inner[:0]) // fn copies every record out of it

	// A magic 1 wrapper's offset names its last inner message, which is
	// found before any record is handed on.
	var base int64
	if m.magic == 1 && m.offset != 0 {
		last, err := lastLegacyOffset(inner)
		if err != nil {
			return err
		}
		if last > m.offset {
			return corruptf("wrapper offset %d is below its last inner offset %d", m.offset, last)
		}
		base = m.offset - last
	}
	logAppendTime := m.magic == 1 && m.attributes&legacyLogAppendTime != 0
	for len(inner) > 0 {
		im, n, err := readLegacyMessage(inner, checkCRC)
		if err != nil {
			return err
		}
		if im.compression() != compressionNone {
			return corruptf("compressed message inside a %v wrapper", c)
		}
		*r = record{offset: base + im.offset, timestamp: im.timestamp, key: im.key, value: im.value}
		if logAppendTime {
			r.timestamp = m.timestamp
		}
		if err := fn(r); err != nil {
			return err
		}
		inner = inner[n:]
	}
	return nil
}

// lastLegacyOffset is the offset of the last message of set, found by its
// size fields alone; the messages themselves are read and checked after.
func lastLegacyOffset(set []byte) (int64, error) {
	var last int64
	for len(set) > 0 {
		if len(set) < legacyLogOverhead {
			return 0, corruptf("message of %d bytes is too short", len(set))
		}
		size := int64(int32(binary.BigEndian.Uint32(set[8:])))
		if size < 0 || size > int64(len(set)-legacyLogOverhead) {
			return 0, corruptf("message size %d does not fit in %d bytes", size, len(set)-legacyLogOverhead)
		}
		last = int64(binary.BigEndian.Uint64(set))
		set = set[legacyLogOverhead+size:]
	}
	return last, nil
}

// appendLegacyMessage appends one message of the given magic with its size
// and CRC; magic 0 has no timestamp.
func appendLegacyMessage(dst []byte, magic int8, offset int64, attributes int8, timestamp int64, key, value []byte) []byte {
	start := len(dst)
	size := int32(legacyMessageSize(magic, key, value))
	if magic == 0 {
		m := kmsg.MessageV0{Offset: offset, MessageSize: size, Magic: 0, Attributes: attributes, Key: key, Value: value}
		dst = m.AppendTo(dst)
	} else {
		m := kmsg.MessageV1{Offset: offset, MessageSize: size, Magic: 1, Attributes: attributes, Timestamp: timestamp, Key: key, Value: value}
		dst = m.AppendTo(dst)
	}
	sealLegacyMessage(dst[start:])
	return dst
}

// sealLegacyMessage writes the CRC of the whole message msg.
func sealLegacyMessage(msg []byte) {
	binary.BigEndian.PutUint32(msg[12:], crc32.ChecksumIEEE(msg[magicAt:]))
}
