package router

import "encoding/binary"

// reader walks Kafka primitives over a byte slice without allocating. Any
// read past the end sets bad and makes every later read a no-op, so callers
// check once at the end.
type reader struct {
	b   []byte
	off int
	bad bool
}

func (r *reader) need(n int) bool {
	if r.bad || n < 0 || len(r.b)-r.off < n {
		r.bad = true
		return false
	}
	return true
}

func (r *reader) skip(n int) {
	if r.need(n) {
		r.off += n
	}
}

func (r *reader) int16() int16 {
	if !r.need(2) {
		return 0
	}
	v := int16(binary.BigEndian.Uint16(r.b[r.off:]))
	r.off += 2
	return v
}

func (r *reader) int32() int32 {
	if !r.need(4) {
		return 0
	}
	v := int32(binary.BigEndian.Uint32(r.b[r.off:]))
	r.off += 4
	return v
}

func (r *reader) uvarint() uint64 {
	if r.bad {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.off += n
	return v
}

// bytesN returns the next n bytes as a subslice.
func (r *reader) bytesN(n int) []byte {
	if !r.need(n) {
		return nil
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v
}

// nullableString reads an int16-length string; nil for length -1.
func (r *reader) nullableString() []byte {
	n := r.int16()
	if n < 0 {
		return nil
	}
	return r.bytesN(int(n))
}

// compactNullableString reads a uvarint(length+1) string; nil for 0.
func (r *reader) compactNullableString() []byte {
	n := r.uvarint()
	if n == 0 {
		return nil
	}
	if n-1 > uint64(len(r.b)) {
		r.bad = true
		return nil
	}
	return r.bytesN(int(n - 1))
}

// compactLen reads a compact array or bytes length: uvarint(n+1), -1 for null.
func (r *reader) compactLen() int {
	n := r.uvarint()
	if n > uint64(len(r.b))+1 {
		r.bad = true
		return 0
	}
	return int(n) - 1
}

// skipTags skips a tagged-field section.
func (r *reader) skipTags() {
	n := r.uvarint()
	for i := uint64(0); i < n && !r.bad; i++ {
		r.uvarint() // tag
		size := r.uvarint()
		if size > uint64(len(r.b)) {
			r.bad = true
			return
		}
		r.skip(int(size))
	}
}

// skipCompactBytes skips compact (nullable) bytes or a compact string: a
// null or empty value has nothing after its length.
func (r *reader) skipCompactBytes() {
	if n := r.compactLen(); n > 0 {
		r.skip(n)
	}
}

// done reports whether the walk stayed in bounds and consumed every byte. A
// walker that stops short has misread the layout, so its verdict about what
// follows cannot be trusted.
func (r *reader) done() bool {
	return !r.bad && r.off == len(r.b)
}
