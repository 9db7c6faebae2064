package router

import (
	"encoding/binary"
	"fmt"

	"github.com/twmb/franz-go/pkg/kbin"
)

// walker steps over a response body exactly as kmsg's generated decoder
// reads it (kbin's primitives, the same length checks), without keeping
// anything: a splice accepts precisely the bodies kmsg accepts, so that
// copying a part as bytes never lets through what decoding would refuse.
// It moves an offset, not a slice, so that stepping writes no pointer (a
// pointer write pays a GC write barrier while a collection runs, and a
// large answer is walked field by field). Once a read fails every later
// read fails too.
type walker struct {
	b    []byte
	off  int
	bad  bool
	flex bool
}

func (w *walker) left() int { return len(w.b) - w.off }

// span steps over n bytes and returns them; a negative n or one past the
// end fails the walk, as kbin.Reader.Span does.
func (w *walker) span(n int) []byte {
	if w.bad || n < 0 || w.left() < n {
		w.bad = true
		return nil
	}
	w.off += n
	return w.b[w.off-n : w.off]
}

func (w *walker) int16() int16 {
	if s := w.span(2); s != nil {
		return int16(binary.BigEndian.Uint16(s))
	}
	return 0
}

func (w *walker) int32() int32 {
	if s := w.span(4); s != nil {
		return int32(binary.BigEndian.Uint32(s))
	}
	return 0
}

// uvarint reads kbin's 32-bit uvarint (at most five bytes).
func (w *walker) uvarint() uint32 {
	if w.bad {
		return 0
	}
	if w.off < len(w.b) && w.b[w.off] < 0x80 {
		w.off++
		return uint32(w.b[w.off-1])
	}
	v, n := kbin.Uvarint(w.b[w.off:])
	if n <= 0 {
		w.bad = true
		return 0
	}
	w.off += n
	return v
}

// arrayLen reads an array length as kmsg does (a negative length reads as
// an empty array) and fails it if the rest of the body cannot hold that
// many entries of at least min bytes: kmsg's sanity check before it
// allocates.
func (w *walker) arrayLen(min int64) int {
	var n int32
	if w.flex {
		if w.off < len(w.b) && w.b[w.off] < 0x80 && int(w.b[w.off]) <= w.left() {
			n = int32(w.b[w.off]) - 1
			w.off++
		} else {
			n = int32(w.uvarint()) - 1
		}
	} else {
		n = w.int32()
	}
	if w.bad || w.left() < int(n) || int64(n)*min > int64(w.left()) {
		w.bad = true
		return 0
	}
	return int(n)
}

// strLen reads a string or bytes length: compact (uvarint n+1) or int16.
func (w *walker) strLen() int {
	if w.flex {
		return int(w.uvarint()) - 1
	}
	return int(w.int16())
}

// str reads a non-nullable string: a negative length fails, as in kmsg.
func (w *walker) str() []byte { return w.span(w.strLen()) }

// nullableStr steps over a nullable string; a negative length is null.
func (w *walker) nullableStr() {
	if n := w.strLen(); n >= 0 {
		w.span(n)
	}
}

// int32s steps over an array of int32.
func (w *walker) int32s() {
	if n := w.arrayLen(4); n > 0 {
		w.span(4 * n)
	}
}

// tags steps over a tagged-field section when the version is flexible.
func (w *walker) tags() {
	if !w.flex {
		return
	}
	if w.off < len(w.b) && w.b[w.off] == 0 {
		w.off++
		return
	}
	for n := w.uvarint(); n > 0 && !w.bad; n-- {
		w.uvarint() // key
		w.span(int(w.uvarint()))
	}
}

// addressAt is one host and port in a body: where the host's length
// starts, where the port ends, and what they say.
type addressAt struct {
	node     int32
	from, to int
	host     []byte // aliases the body
	port     int32
}

// spliceAddresses frames a copy of body[:end] in which every address in
// at (in body order) is re-encoded to what am advertises, and reports
// whether anything changed; when nothing did it returns no frame.
// Everything between the addresses is copied as bytes.
func spliceAddresses(corr []byte, flexHeader bool, body []byte, end int, flex bool, at []addressAt, am AddressMap) ([]byte, bool, error) {
	type advertised struct {
		host    string
		port    int32
		changed bool
	}
	var adv []advertised
	size := end
	for i, a := range at {
		// Advertise may keep the host: hand it a copy, never the frame.
		host, port, err := am.Advertise(a.node, string(a.host), a.port)
		if err != nil {
			return nil, false, fmt.Errorf("advertise node %d (%s:%d): %w", a.node, a.host, a.port, err)
		}
		if host == string(a.host) && port == a.port {
			continue
		}
		if adv == nil {
			adv = make([]advertised, len(at))
		}
		adv[i] = advertised{host, port, true}
		size += stringLen(host, flex) + 4 - (a.to - a.from)
	}
	if adv == nil {
		return nil, false, nil
	}
	out := make([]byte, 8, 8+1+size)
	copy(out[4:], corr)
	if flexHeader {
		out = append(out, 0)
	}
	prev := 0
	for i, a := range at {
		if !adv[i].changed {
			continue
		}
		out = append(out, body[prev:a.from]...)
		out = appendString(out, adv[i].host, flex)
		out = binary.BigEndian.AppendUint32(out, uint32(adv[i].port))
		prev = a.to
	}
	out = append(out, body[prev:end]...)
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	return out, true, nil
}

func stringLen(s string, flex bool) int {
	if flex {
		return kbin.UvarintLen(uint32(len(s)+1)) + len(s)
	}
	return 2 + len(s)
}

func appendString(dst []byte, s string, flex bool) []byte {
	if flex {
		dst = kbin.AppendUvarint(dst, uint32(len(s)+1))
	} else {
		dst = kbin.AppendInt16(dst, int16(len(s)))
	}
	return append(dst, s...)
}
