package router

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// decodingRewriter is the reference the Metadata splice is held to: the same
// Rewriter, with Metadata decoded, rewritten and encoded whole.
func decodingRewriter(p *Protocol) *Rewriter {
	rw := NewRewriter(p)
	rw.handlers[KeyMetadata].splice = nil
	return rw
}

// oddMap advertises odd nodes at the proxy (with a host long enough to
// need a two-byte compact length) and leaves even nodes as they are, so a
// splice has both rewritten and copied brokers.
type oddMap struct{}

func (oddMap) AdvertiseController(node int32, host string, port int32) (string, int32, error) {
	return oddMap{}.Advertise(node, host, port)
}

func (oddMap) Advertise(node int32, host string, port int32) (string, int32, error) {
	if node%2 == 0 {
		return host, port, nil
	}
	return strings.Repeat("p", 130) + ".proxy.local", 20000 + node, nil
}

// randomMetadata builds a Metadata answer with everything a version can
// carry: racks or none, nullable names, unknown tags at every level, arrays
// empty and not.
func randomMetadata(rng *rand.Rand, version int16) *kmsg.MetadataResponse {
	r := kmsg.NewPtrMetadataResponse()
	r.SetVersion(version)
	r.ThrottleMillis = rng.Int32()
	tags := func(t *kmsg.Tags) {
		if version >= 9 && rng.IntN(4) == 0 {
			t.Set(uint32(10+rng.IntN(200)), bytes.Repeat([]byte{byte(rng.IntN(256))}, rng.IntN(150)))
		}
	}
	maybe := func(s string) *string {
		if rng.IntN(3) == 0 {
			return nil
		}
		return &s
	}
	for n := range int32(rng.IntN(5)) {
		b := kmsg.NewMetadataResponseBroker()
		b.NodeID = n
		b.Host = "b" + strconv.Itoa(int(n)) + strings.Repeat(".upstream", rng.IntN(20))
		b.Port = 9092 + n
		b.Rack = maybe("rack-" + strconv.Itoa(rng.IntN(3)))
		tags(&b.UnknownTags)
		r.Brokers = append(r.Brokers, b)
	}
	r.ClusterID = maybe("cluster")
	r.ControllerID = rng.Int32N(5) - 1
	for i := range rng.IntN(4) {
		t := kmsg.NewMetadataResponseTopic()
		t.ErrorCode = int16(rng.IntN(2))
		name := "topic-" + strconv.Itoa(i)
		t.Topic = &name
		if version >= 12 && rng.IntN(4) == 0 {
			t.Topic = nil
		}
		t.TopicID = [16]byte{byte(i), 1}
		t.IsInternal = rng.IntN(2) == 0
		for part := range int32(rng.IntN(5)) {
			pt := kmsg.NewMetadataResponseTopicPartition()
			pt.Partition, pt.Leader, pt.LeaderEpoch = part, rng.Int32N(4), rng.Int32()
			pt.Replicas = []int32{0, 1, 2}[:rng.IntN(4)]
			pt.ISR = []int32{0, 1}[:rng.IntN(3)]
			pt.OfflineReplicas = []int32{2}[:rng.IntN(2)]
			tags(&pt.UnknownTags)
			t.Partitions = append(t.Partitions, pt)
		}
		t.AuthorizedOperations = rng.Int32()
		tags(&t.UnknownTags)
		r.Topics = append(r.Topics, t)
	}
	r.AuthorizedOperations = rng.Int32()
	r.ErrorCode = int16(rng.IntN(2))
	tags(&r.UnknownTags)
	return r
}

// TestMetadataSpliceMatchesDecode: at every version, for answers kmsg
// encoded, the splice sends exactly the bytes that decoding, rewriting and
// encoding the whole answer sends.
func TestMetadataSpliceMatchesDecode(t *testing.T) {
	p := NewProtocol()
	rw, ref := NewRewriter(p), decodingRewriter(p)
	rng := rand.New(rand.NewPCG(1, 2))
	for v := range p.MaxVersion(KeyMetadata) + 1 {
		for range 300 {
			frame := encodeFrame(p, KeyMetadata, v, randomMetadata(rng, v))
			checkSpliceMatches(t, rw, ref, frame, v, true)
		}
	}
}

// checkSpliceMatches runs frame through both rewriters. They must agree on
// whether it is refused and whether it changes, and what they send must
// decode to the same answer; when the upstream frame is kmsg's own
// encoding (canonical), the bytes must be the same too.
func checkSpliceMatches(t *testing.T, rw, ref *Rewriter, frame []byte, version int16, canonical bool) {
	t.Helper()
	got, gotRewrote, gotErr := rw.Rewrite(frame, KeyMetadata, version, oddMap{})
	want, wantRewrote, wantErr := ref.Rewrite(frame, KeyMetadata, version, oddMap{})
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("v%d: splice error %v, decode error %v; frame %x", version, gotErr, wantErr, frame)
	}
	if gotErr != nil {
		if gotErr.Error() != wantErr.Error() {
			t.Fatalf("v%d: splice says %q, decode says %q", version, gotErr, wantErr)
		}
		return
	}
	if gotRewrote != wantRewrote {
		t.Fatalf("v%d: splice rewrote=%v, decode rewrote=%v", version, gotRewrote, wantRewrote)
	}
	if !gotRewrote {
		if !sameSlice(got, frame) {
			t.Fatalf("v%d: unchanged but not the upstream frame", version)
		}
		return
	}
	if canonical && !bytes.Equal(got, want) {
		t.Fatalf("v%d: splice and decode differ\nsplice %x\ndecode %x", version, got, want)
	}
	if again := reencode(t, got, version); !bytes.Equal(again, want) {
		t.Fatalf("v%d: splice's answer decodes to another answer\nsplice %x\ndecode %x", version, again, want)
	}
}

// reencode decodes a Metadata frame and encodes it again: kmsg's
// canonical form of what the frame says.
func reencode(t *testing.T, frame []byte, version int16) []byte {
	t.Helper()
	p := NewProtocol()
	flex := p.FlexibleResponseHeader(KeyMetadata, version)
	body, err := responseBody(frame, flex)
	if err != nil {
		t.Fatal(err)
	}
	m := kmsg.NewPtrMetadataResponse()
	m.SetVersion(version)
	if err := m.ReadFrom(body); err != nil {
		t.Fatalf("v%d: what the proxy sends does not decode: %v", version, err)
	}
	return buildResponse(frame[4:8], flex, m, len(frame))
}

// FuzzMetadataSplice holds the splice to the full decode on arbitrary
// bodies: the same refusals (with the same error), the same verdict on
// whether anything changed, and an answer that means the same; byte for
// byte the same whenever the upstream body is in kmsg's canonical encoding.
func FuzzMetadataSplice(f *testing.F) {
	p := NewProtocol()
	rw, ref := NewRewriter(p), decodingRewriter(p)
	rng := rand.New(rand.NewPCG(3, 4))
	for v := range p.MaxVersion(KeyMetadata) + 1 {
		for range 3 {
			frame := encodeFrame(p, KeyMetadata, v, randomMetadata(rng, v))
			body, err := responseBody(frame, p.FlexibleResponseHeader(KeyMetadata, v))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(body, uint8(v))
		}
	}
	f.Fuzz(func(t *testing.T, body []byte, v uint8) {
		version := int16(v) % (p.MaxVersion(KeyMetadata) + 1)
		flex := p.FlexibleResponseHeader(KeyMetadata, version)
		frame := binary.BigEndian.AppendUint32(make([]byte, 4), testCorr)
		if flex {
			frame = append(frame, 0)
		}
		frame = append(frame, body...)
		binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
		m := kmsg.NewPtrMetadataResponse()
		m.SetVersion(version)
		canonical := m.ReadFrom(body) == nil && bytes.Equal(m.AppendTo(nil), body)
		checkSpliceMatches(t, rw, ref, frame, version, canonical)
	})
}
