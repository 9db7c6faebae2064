package router

import (
	"encoding/binary"
	"reflect"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Most responses open their body with ThrottleMillis, the time the broker
// asks the client to back off for quota (KIP-219); Produce and ApiVersions
// carry it after variable-length arrays, where reading it would mean
// walking the answer. The table says, per API and version, whether the
// field sits at the start of the body, so that the forward path reads it at
// a fixed offset and parses nothing else.

// throttleProbe is written into ThrottleMillis to find where kmsg encodes it.
const throttleProbe int32 = 0x5a3c7e19

// throttleAtStart builds the per-key bitmask of versions whose response
// body starts with ThrottleMillis, by encoding each response kmsg knows with
// the field set to a probe value and every other field zero.
func throttleAtStart() (t [keySpan]uint64) {
	for k := range int16(keySpan) {
		resp := kmsg.ResponseForKey(k)
		if resp == nil {
			continue
		}
		field := reflect.ValueOf(resp).Elem().FieldByName("ThrottleMillis")
		if !field.IsValid() || field.Kind() != reflect.Int32 {
			continue
		}
		field.SetInt(int64(throttleProbe))
		for v := int16(0); v <= resp.MaxVersion() && v < 64; v++ {
			resp.SetVersion(v)
			b := resp.AppendTo(nil)
			if len(b) >= 4 && int32(binary.BigEndian.Uint32(b)) == throttleProbe {
				t[k] |= 1 << v
			}
		}
	}
	return t
}

// ThrottleAtStart reports whether a response of key/version opens its body
// with ThrottleMillis.
func (p *Protocol) ThrottleAtStart(key, version int16) bool {
	return p.Known(key) && version >= 0 && version < 64 && p.throttleFirst[key]&(1<<version) != 0
}

// ResponseThrottle reads ThrottleMillis from a response, given the bytes
// after its correlation id (the header's tag section, if any, then the
// body). ok is false for APIs and versions that do not carry the field at
// the start of the body and for answers too short to hold it.
func (p *Protocol) ResponseThrottle(key, version int16, afterCorrelation []byte) (ms int32, ok bool) {
	if !p.ThrottleAtStart(key, version) {
		return 0, false
	}
	r := reader{b: afterCorrelation}
	if p.FlexibleResponseHeader(key, version) {
		r.skipTags()
	}
	ms = r.int32()
	if r.bad {
		return 0, false
	}
	return ms, true
}
