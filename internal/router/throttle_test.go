package router

import (
	"encoding/binary"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// afterCorrelation encodes resp as a broker would, from just after the
// correlation id: the header's tag section (with tags, when given) for
// flexible responses, then the body.
func afterCorrelation(p *Protocol, resp kmsg.Response, headerTags []byte) []byte {
	var b []byte
	if p.FlexibleResponseHeader(resp.Key(), resp.GetVersion()) {
		if headerTags == nil {
			b = append(b, 0)
		} else {
			b = append(b, headerTags...)
		}
	}
	return resp.AppendTo(b)
}

func TestResponseThrottleReadsTheField(t *testing.T) {
	p := NewProtocol()
	for _, v := range []int16{1, 4} { // v4: flexible header
		resp := kmsg.NewPtrHeartbeatResponse()
		resp.SetVersion(v)
		resp.ThrottleMillis = 1234
		ms, ok := p.ResponseThrottle(resp.Key(), v, afterCorrelation(p, resp, nil))
		if !ok || ms != 1234 {
			t.Fatalf("Heartbeat v%d: got %d, %v; want 1234, true", v, ms, ok)
		}
	}
	// A flexible header may carry tagged fields; the reader steps over them.
	resp := kmsg.NewPtrFetchResponse()
	resp.SetVersion(13)
	resp.ThrottleMillis = 77
	tags := []byte{1, 5, 3, 'a', 'b', 'c'} // one tag (5), 3 bytes
	if ms, ok := p.ResponseThrottle(resp.Key(), 13, afterCorrelation(p, resp, tags)); !ok || ms != 77 {
		t.Fatalf("Fetch v13 with header tags: got %d, %v; want 77, true", ms, ok)
	}
}

func TestResponseThrottleSkipsWhatHasNoFixedField(t *testing.T) {
	p := NewProtocol()
	cases := []struct {
		key, version int16
	}{
		{KeyProduce, 9},     // after the topics array
		{KeyApiVersions, 3}, // after the ApiKeys array
		{KeyFetch, 0},       // no field before v1
		{KeyMetadata, 2},    // no field before v3
		{127, 0},            // unknown key
		{KeyFetch, -1},      // nonsense version
	}
	body := binary.BigEndian.AppendUint32([]byte{0}, 99)
	for _, c := range cases {
		if ms, ok := p.ResponseThrottle(c.key, c.version, body); ok {
			t.Errorf("key %d v%d: read %d; want nothing", c.key, c.version, ms)
		}
	}
}

func TestResponseThrottleTruncated(t *testing.T) {
	p := NewProtocol()
	for _, b := range [][]byte{nil, {0}, {0, 0, 0}, {0x80}, {1, 1, 200}} {
		if ms, ok := p.ResponseThrottle(KeyFetch, 13, b); ok {
			t.Errorf("%x: read %d from a truncated answer", b, ms)
		}
	}
	allocs := testing.AllocsPerRun(100, func() { _, _ = p.ResponseThrottle(KeyFetch, 13, []byte{0, 0, 0, 0, 9}) })
	if allocs != 0 {
		t.Fatalf("%v allocs reading the throttle", allocs)
	}
}
