package router

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

const unsupportedVersion = 35

type apiRange struct{ key, min, max int16 }

func apiVersionsResponse(code int16, ranges ...apiRange) *kmsg.ApiVersionsResponse {
	r := kmsg.NewPtrApiVersionsResponse()
	r.ErrorCode = code
	r.ThrottleMillis = 3
	for _, a := range ranges {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = a.key, a.min, a.max
		r.ApiKeys = append(r.ApiKeys, k)
	}
	r.SupportedFeatures = []kmsg.ApiVersionsResponseSupportedFeature{{Name: "metadata.version", MinVersion: 1, MaxVersion: 20}}
	return r
}

func apiRanges(r *kmsg.ApiVersionsResponse) []apiRange {
	var out []apiRange
	for _, k := range r.ApiKeys {
		out = append(out, apiRange{k.ApiKey, k.MinVersion, k.MaxVersion})
	}
	return out
}

// decodeApiVersions reads a rewritten frame the way a client would.
func decodeApiVersions(t *testing.T, out []byte, version int16) *kmsg.ApiVersionsResponse {
	t.Helper()
	r := kmsg.NewPtrApiVersionsResponse()
	r.Version = version
	if err := r.ReadFrom(out[8:]); err != nil { // never a flexible header
		t.Fatal(err)
	}
	return r
}

func TestApiVersionsCap(t *testing.T) {
	p := NewProtocol()
	rw := NewRewriter(p)
	broker := []apiRange{
		{KeyProduce, 3, 99},                         // capped
		{KeyFetch, p.MaxVersion(KeyFetch) + 1, 99},  // empty once capped: dropped
		{KeyMetadata, 0, p.MaxVersion(KeyMetadata)}, // at the cap already
		{2, 0, 99},                 // ListOffsets: not decoded, untouched
		{KeyApiVersions, 0, 9},     // capped
		{KeyDescribeCluster, 0, 1}, // below the cap
		{KeyShareFetch, 1, p.MaxVersion(KeyShareFetch)}, // at the cap
	}
	want := []apiRange{
		{KeyProduce, 3, p.MaxVersion(KeyProduce)},
		{KeyMetadata, 0, p.MaxVersion(KeyMetadata)},
		{2, 0, 99},
		{KeyApiVersions, 0, p.MaxVersion(KeyApiVersions)},
		{KeyDescribeCluster, 0, 1},
		{KeyShareFetch, 1, p.MaxVersion(KeyShareFetch)},
	}
	for v := range p.MaxVersion(KeyApiVersions) + 1 {
		frame := encodeFrame(p, KeyApiVersions, v, apiVersionsResponse(0, broker...))
		out, rewrote, err := rw.Rewrite(frame, KeyApiVersions, v, nil)
		if err != nil || !rewrote {
			t.Fatalf("v%d: rewrote=%v err=%v", v, rewrote, err)
		}
		if exp := encodeFrame(p, KeyApiVersions, v, apiVersionsResponse(0, want...)); !bytes.Equal(out, exp) {
			t.Fatalf("v%d:\n got %v\nwant %v", v, apiRanges(decodeApiVersions(t, out, v)), want)
		}

		within := encodeFrame(p, KeyApiVersions, v, apiVersionsResponse(0, want...))
		out, rewrote, err = rw.Rewrite(within, KeyApiVersions, v, nil)
		if err != nil || rewrote || !sameSlice(out, within) {
			t.Fatalf("v%d within caps: rewrote=%v err=%v", v, rewrote, err)
		}
		allocs := testing.AllocsPerRun(50, func() { _, _, _ = rw.Rewrite(within, KeyApiVersions, v, nil) })
		if allocs != 0 {
			t.Fatalf("v%d: %v allocs when no cap is needed", v, allocs)
		}
	}
}

// TestApiVersionsErrorAnswerV0: KIP-511's UNSUPPORTED_VERSION answer is a v0
// body even though the client asked for v3; it is capped and stays v0.
func TestApiVersionsErrorAnswerV0(t *testing.T) {
	p := NewProtocol()
	rw := NewRewriter(p)
	frame := encodeFrame(p, KeyApiVersions, 0, apiVersionsResponse(unsupportedVersion, apiRange{KeyApiVersions, 0, 9}))
	out := assertCapped(t, rw, frame, 3, 0, unsupportedVersion, apiRange{KeyApiVersions, 0, p.MaxVersion(KeyApiVersions)})
	if !bytes.Equal(out, encodeFrame(p, KeyApiVersions, 0, apiVersionsResponse(unsupportedVersion, apiRange{KeyApiVersions, 0, p.MaxVersion(KeyApiVersions)}))) {
		t.Fatal("not re-encoded at v0")
	}

	within := encodeFrame(p, KeyApiVersions, 0, apiVersionsResponse(unsupportedVersion, apiRange{KeyApiVersions, 0, 3}))
	out, rewrote, err := rw.Rewrite(within, KeyApiVersions, 3, nil)
	if err != nil || rewrote || !sameSlice(out, within) {
		t.Fatalf("v0 error answer within caps: rewrote=%v err=%v", rewrote, err)
	}
}

// TestApiVersionsErrorAnswerAtRequestVersion: other errors are encoded at
// the request's version; a failed v0 reading must not lose them.
func TestApiVersionsErrorAnswerAtRequestVersion(t *testing.T) {
	p := NewProtocol()
	rw := NewRewriter(p)
	const invalidRequest = 42
	frame := encodeFrame(p, KeyApiVersions, 3, apiVersionsResponse(invalidRequest, apiRange{KeyMetadata, 0, 99}))
	assertCapped(t, rw, frame, 3, 3, invalidRequest, apiRange{KeyMetadata, 0, p.MaxVersion(KeyMetadata)})
}

// assertCapped rewrites an answer to a request at version and checks that
// the client reads code and want at readAt.
func assertCapped(t *testing.T, rw *Rewriter, frame []byte, version, readAt, code int16, want ...apiRange) []byte {
	t.Helper()
	out, rewrote, err := rw.Rewrite(frame, KeyApiVersions, version, nil)
	if err != nil || !rewrote {
		t.Fatalf("rewrote=%v err=%v", rewrote, err)
	}
	got := decodeApiVersions(t, out, readAt)
	if got.ErrorCode != code || !slices.Equal(apiRanges(got), want) {
		t.Fatalf("got code %d %v, want %d %v", got.ErrorCode, apiRanges(got), code, want)
	}
	return out
}

func TestApiVersionsMalformed(t *testing.T) {
	p := NewProtocol()
	rw := NewRewriter(p)
	frame := encodeFrame(p, KeyApiVersions, 3, apiVersionsResponse(0, apiRange{KeyMetadata, 0, 99}))
	frame = append(frame, 1, 2, 3) // trailing junk fits neither v3 nor v0
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	if out, _, err := rw.Rewrite(frame, KeyApiVersions, 3, nil); err == nil || out != nil {
		t.Fatalf("malformed answer accepted: err=%v", err)
	}
}

// TestApiVersionsAdvertiseSASL: in terminate mode the answer lists the
// proxy's own SASL versions, whatever the broker said (or left out).
func TestApiVersionsAdvertiseSASL(t *testing.T) {
	p := NewProtocol()
	rw := NewRewriter(p)
	rw.AdvertiseSASL()
	for name, broker := range map[string][]apiRange{
		"broker lists v1 only": {{KeyMetadata, 0, 5}, {KeySaslHandshake, 1, 1}, {KeySaslAuthenticate, 0, 1}},
		"broker lists none":    {{KeyMetadata, 0, 5}},
	} {
		frame := encodeFrame(p, KeyApiVersions, 3, apiVersionsResponse(0, broker...))
		out, rewrote, err := rw.Rewrite(frame, KeyApiVersions, 3, nil)
		if err != nil || !rewrote {
			t.Fatalf("%s: rewrote=%v err=%v", name, rewrote, err)
		}
		got := apiRanges(decodeApiVersions(t, out, 3))
		for _, want := range []apiRange{{KeyMetadata, 0, 5}, {KeySaslHandshake, 0, 1}, {KeySaslAuthenticate, 0, 2}} {
			if !slices.Contains(got, want) {
				t.Errorf("%s: %v missing from %v", name, want, got)
			}
		}
	}
}

// TestApiVersionsHideUnknown: with HideUnknownAPIs, keys kmsg does not know
// (a future key past kmsg.MaxKey, a vendor key above 10000) leave the
// answer and Hidden refuses them, and every known key is capped at kmsg's
// versions. Without it they pass as the broker lists them, and only the
// decoded APIs are capped.
func TestApiVersionsHideUnknown(t *testing.T) {
	p := NewProtocol()
	future := int16(kmsg.MaxKey + 1)
	listOffsets := int16(kmsg.ListOffsets)
	broker := []apiRange{
		{KeyProduce, 3, 99},
		{future, 0, 2},
		{int16(kmsg.StreamsGroupHeartbeat), 0, 1},
		{10007, 0, 0},
		{listOffsets, 1, 99}, // known, not decoded: capped only in hide mode
	}
	known := []apiRange{
		{KeyProduce, 3, p.MaxVersion(KeyProduce)},
		{int16(kmsg.StreamsGroupHeartbeat), 0, 1},
		{listOffsets, 1, p.MaxVersion(listOffsets)},
	}
	hiding := NewRewriter(p)
	hiding.HideUnknownAPIs()
	forwarding := NewRewriter(p)
	for v := range p.MaxVersion(KeyApiVersions) + 1 {
		frame := encodeFrame(p, KeyApiVersions, v, apiVersionsResponse(0, broker...))
		out, _, err := hiding.Rewrite(frame, KeyApiVersions, v, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := apiRanges(decodeApiVersions(t, out, v)); !slices.Equal(got, known) {
			t.Fatalf("hide, v%d: %v, want %v", v, got, known)
		}
		// Nothing to hide or cap: the frame passes as it came.
		clean := encodeFrame(p, KeyApiVersions, v, apiVersionsResponse(0, known...))
		if out, rewrote, err := hiding.Rewrite(clean, KeyApiVersions, v, nil); err != nil || rewrote || !sameSlice(out, clean) {
			t.Fatalf("hide, v%d, known keys only: rewrote=%v err=%v", v, rewrote, err)
		}

		out, _, err = forwarding.Rewrite(frame, KeyApiVersions, v, nil)
		if err != nil {
			t.Fatal(err)
		}
		wantForward := []apiRange{known[0], {future, 0, 2}, known[1], {10007, 0, 0}, {listOffsets, 1, 99}}
		if got := apiRanges(decodeApiVersions(t, out, v)); !slices.Equal(got, wantForward) {
			t.Fatalf("forward, v%d: %v, want %v", v, got, wantForward)
		}
	}
	for _, k := range []int16{future, 10007, -1, 127} {
		if !hiding.Hidden(k) || forwarding.Hidden(k) {
			t.Errorf("key %d: Hidden = %v (hide), %v (forward)", k, hiding.Hidden(k), forwarding.Hidden(k))
		}
	}
	for k := range int16(kmsg.MaxKey + 1) {
		if hiding.Hidden(k) || !hiding.Capped(k) {
			t.Errorf("known key %d: hidden %v, capped %v", k, hiding.Hidden(k), hiding.Capped(k))
		}
	}
	if forwarding.Capped(listOffsets) || !forwarding.Capped(KeyFetch) {
		t.Error("forward mode caps what it does not decode, or not what it decodes")
	}
}

// TestKeySpanCoversKmsg: every key kmsg knows fits the proxy's tables, so
// none of them is taken for an unknown key and hidden.
func TestKeySpanCoversKmsg(t *testing.T) {
	if kmsg.MaxKey >= keySpan {
		t.Fatalf("kmsg knows keys up to %d; raise keySpan (%d)", kmsg.MaxKey, keySpan)
	}
	p := NewProtocol()
	for k := range int16(kmsg.MaxKey + 1) {
		if (kmsg.RequestForKey(k) != nil) != p.Known(k) {
			t.Errorf("key %d: kmsg knows it %v, the proxy %v", k, kmsg.RequestForKey(k) != nil, p.Known(k))
		}
	}
}
