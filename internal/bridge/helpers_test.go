package bridge

import (
	"encoding/binary"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	testCorrelation = int32(0x01020304)
	testMaxOut      = 1 << 20
)

var testClientID = "legacy-client"

// requestBytes is a request as Up takes it: header and body, no size prefix.
func requestBytes(r kmsg.Request, version int16, clientID *string) []byte {
	r.SetVersion(version)
	b := binary.BigEndian.AppendUint16(nil, uint16(r.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(testCorrelation))
	if clientID == nil {
		b = binary.BigEndian.AppendUint16(b, 0xffff)
	} else {
		b = binary.BigEndian.AppendUint16(b, uint16(len(*clientID)))
		b = append(b, *clientID...)
	}
	if r.IsFlexible() {
		b = append(b, 0)
	}
	return r.AppendTo(b)
}

// decodeRequestFrame reads a whole request frame as a broker would: it
// checks the size prefix and that the header names key at version and
// carries the test's correlation id and clientID, then decodes the body.
func decodeRequestFrame(t *testing.T, frame []byte, key, version int16, clientID *string) kmsg.Request {
	t.Helper()
	if got := int(binary.BigEndian.Uint32(frame)); got != len(frame)-4 {
		t.Fatalf("size prefix %d, frame holds %d", got, len(frame)-4)
	}
	r := kmsg.RequestForKey(key)
	r.SetVersion(version)
	h, body, err := readRequestHeader(frame[4:], key, version, r.IsFlexible())
	if err != nil {
		t.Fatalf("request header: %v", err)
	}
	if h.correlation != testCorrelation {
		t.Fatalf("correlation id %#x, want %#x", h.correlation, testCorrelation)
	}
	wantID := []byte{0xff, 0xff}
	if clientID != nil {
		wantID = binary.BigEndian.AppendUint16(nil, uint16(len(*clientID)))
		wantID = append(wantID, *clientID...)
	}
	if string(h.clientID) != string(wantID) {
		t.Fatalf("client id %q, want %q", h.clientID, wantID)
	}
	if err := r.ReadFrom(body); err != nil {
		t.Fatalf("decode request at v%d: %v", version, err)
	}
	return r
}

// responseFrame is a broker's answer: size prefix, header, body.
func responseFrame(r kmsg.Response, version int16) []byte {
	r.SetVersion(version)
	b := make([]byte, 8, 64)
	binary.BigEndian.PutUint32(b[4:], uint32(testCorrelation))
	if r.IsFlexible() && r.Key() != int16(kmsg.ApiVersions) {
		b = append(b, 0)
	}
	b = r.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// decodeResponseFrame reads a whole answer frame as a client of version
// would, checking the size prefix and the correlation id.
func decodeResponseFrame(t *testing.T, frame []byte, key, version int16) kmsg.Response {
	t.Helper()
	if len(frame) < 8 || int(binary.BigEndian.Uint32(frame)) != len(frame)-4 {
		t.Fatalf("bad size prefix in %d bytes", len(frame))
	}
	if c := int32(binary.BigEndian.Uint32(frame[4:])); c != testCorrelation {
		t.Fatalf("answer correlation id %#x, want %#x", c, testCorrelation)
	}
	r := kmsg.ResponseForKey(key)
	r.SetVersion(version)
	body := frame[8:]
	if r.IsFlexible() && key != int16(kmsg.ApiVersions) {
		var ok bool
		if body, ok = skipTags(body); !ok {
			t.Fatal("answer header tags")
		}
	}
	if err := r.ReadFrom(body); err != nil {
		t.Fatalf("decode answer at v%d: %v", version, err)
	}
	return r
}

// poisoning is an Allocator that fills every buffer it is given back with
// 0xAA: a conversion that reads a buffer after freeing it reads garbage,
// and the fuzzers' oracles see it.
func poisoning() Allocator {
	return Allocator{Free: func(b []byte) {
		b = b[:cap(b)]
		for i := range b {
			b[i] = 0xAA
		}
	}}
}
