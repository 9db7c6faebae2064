package bridge

import (
	"encoding/binary"
	"fmt"
)

// requestHeader is what a translated request keeps of the client's header.
type requestHeader struct {
	correlation int32
	clientID    []byte // the nullable string as sent: int16 length, bytes
}

// readRequestHeader reads a request header v1 (v2 when flexible) and returns
// the body after it. The header must name key and version.
func readRequestHeader(req []byte, key, version int16, flexible bool) (requestHeader, []byte, error) {
	var h requestHeader
	if len(req) < 10 {
		return h, nil, fmt.Errorf("%w: short request header", ErrMalformed)
	}
	if k, v := int16(binary.BigEndian.Uint16(req)), int16(binary.BigEndian.Uint16(req[2:])); k != key || v != version {
		return h, nil, fmt.Errorf("%w: header says key %d v%d, not key %d v%d", ErrMalformed, k, v, key, version)
	}
	h.correlation = int32(binary.BigEndian.Uint32(req[4:]))
	end := 10
	if n := int16(binary.BigEndian.Uint16(req[8:])); n > 0 {
		end += int(n)
	} else if n < -1 {
		return h, nil, fmt.Errorf("%w: client id length %d", ErrMalformed, n)
	}
	if end > len(req) {
		return h, nil, fmt.Errorf("%w: client id past the frame", ErrMalformed)
	}
	h.clientID = req[8:end]
	body := req[end:]
	if flexible {
		var ok bool
		if body, ok = skipTags(body); !ok {
			return h, nil, fmt.Errorf("%w: header tags", ErrMalformed)
		}
	}
	return h, body, nil
}

func appendRequestHeader(dst []byte, h requestHeader, key, version int16, flexible bool) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(key))
	dst = binary.BigEndian.AppendUint16(dst, uint16(version))
	dst = binary.BigEndian.AppendUint32(dst, uint32(h.correlation))
	dst = append(dst, h.clientID...)
	if flexible {
		dst = append(dst, 0) // no tagged fields
	}
	return dst
}

// skipTags returns what follows a tag section (KIP-482): a count, then per
// tag its number and its size-prefixed value.
func skipTags(b []byte) ([]byte, bool) {
	n, ok := uvarint(&b)
	if !ok {
		return nil, false
	}
	for range n {
		if _, ok = uvarint(&b); !ok {
			return nil, false
		}
		size, ok := uvarint(&b)
		if !ok || size > uint64(len(b)) {
			return nil, false
		}
		b = b[size:]
	}
	return b, true
}

func uvarint(b *[]byte) (uint64, bool) {
	v, n := binary.Uvarint(*b)
	if n <= 0 {
		return 0, false
	}
	*b = (*b)[n:]
	return v, true
}
