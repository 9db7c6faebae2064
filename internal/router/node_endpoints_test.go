package router

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// First versions that define NodeEndpoints.
const (
	produceNodeEndpoints int16 = 10
	fetchNodeEndpoints   int16 = 16
)

// walkerCase is a Produce or Fetch response shape for the walker.
type walkerCase struct {
	name  string
	key   int16
	from  int16
	build func(addr addrFunc, records int) kmsg.Response
}

func walkerCases() []walkerCase {
	return []walkerCase{
		{"Produce", KeyProduce, produceNodeEndpoints, func(a addrFunc, _ int) kmsg.Response { return produceResponse(a) }},
		{"Fetch", KeyFetch, fetchNodeEndpoints, func(a addrFunc, n int) kmsg.Response { return fetchResponse(a, n) }},
	}
}

// TestNodeEndpointsWalker: with NodeEndpoints the response is rewritten;
// without, the frame passes as it came and nothing is allocated, whatever
// the records and partition-level tags around it.
func TestNodeEndpointsWalker(t *testing.T) {
	p := NewProtocol()
	rw := NewRewriter(p)
	for _, c := range walkerCases() {
		for v := c.from; v <= p.MaxVersion(c.key); v++ {
			for _, records := range []int{0, 100, 1 << 20} {
				t.Run(fmt.Sprintf("%s/v%d/records=%d", c.name, v, records), func(t *testing.T) {
					plain := encodeFrame(p, c.key, v, c.build(nil, records))
					out, rewrote, err := rw.Rewrite(plain, c.key, v, newFakeMap())
					if err != nil || rewrote || !sameSlice(out, plain) {
						t.Fatalf("without NodeEndpoints: rewrote=%v same=%v err=%v", rewrote, sameSlice(out, plain), err)
					}
					allocs := testing.AllocsPerRun(20, func() { _, _, _ = rw.Rewrite(plain, c.key, v, benchMap{}) })
					if allocs != 0 {
						t.Fatalf("%v allocs checking a response without NodeEndpoints", allocs)
					}

					frame := encodeFrame(p, c.key, v, c.build(upstream, records))
					out, rewrote, err = rw.Rewrite(frame, c.key, v, newFakeMap())
					if err != nil || !rewrote {
						t.Fatalf("with NodeEndpoints: rewrote=%v err=%v", rewrote, err)
					}
					if want := encodeFrame(p, c.key, v, c.build(advertised, records)); !bytes.Equal(out, want) {
						t.Fatal("rewritten frame differs from the response built with advertised addresses")
					}
				})
			}
		}
	}
}

// TestNodeEndpointsUnknownTopLevelTag: a top-level tag that is not
// NodeEndpoints makes the walker hand the body to kmsg, which finds nothing
// to rewrite; the upstream frame goes out.
func TestNodeEndpointsUnknownTopLevelTag(t *testing.T) {
	p := NewProtocol()
	rw := NewRewriter(p)
	for _, c := range walkerCases() {
		for v := c.from; v <= p.MaxVersion(c.key); v++ {
			resp := c.build(nil, 64)
			switch r := resp.(type) {
			case *kmsg.ProduceResponse:
				r.UnknownTags.Set(7, []byte("future"))
			case *kmsg.FetchResponse:
				r.UnknownTags.Set(7, []byte("future"))
			}
			frame := encodeFrame(p, c.key, v, resp)
			if _, decode, err := scanFor(c.key)(frame[9:], v); err != nil || !decode {
				t.Fatalf("%s v%d: walker decode=%v err=%v, want a decode", c.name, v, decode, err)
			}
			out, rewrote, err := rw.Rewrite(frame, c.key, v, newFakeMap())
			if err != nil || rewrote || !sameSlice(out, frame) {
				t.Fatalf("%s v%d: rewrote=%v err=%v", c.name, v, rewrote, err)
			}
		}
	}
}

func scanFor(key int16) func([]byte, int16) (int16, bool, error) {
	if key == KeyProduce {
		return scanProduce
	}
	return scanFetch
}

// TestNodeEndpointsWalkerTrailingBytes: a body longer than its layout means
// the walker misread it, so it must not vouch for an empty tag section.
func TestNodeEndpointsWalkerTrailingBytes(t *testing.T) {
	p := NewProtocol()
	for _, c := range walkerCases() {
		v := p.MaxVersion(c.key)
		body := encodeFrame(p, c.key, v, c.build(nil, 64))[9:]
		if _, _, err := scanFor(c.key)(append(body, 0), v); err == nil {
			t.Fatalf("%s v%d: trailing byte accepted", c.name, v)
		}
	}
}

// TestNodeEndpointsProduceTopicNames pins the v10–v12 (names) vs v13
// (topic IDs) difference: a v13 body read as v12 must not pass.
func TestNodeEndpointsProduceTopicNames(t *testing.T) {
	p := NewProtocol()
	body := encodeFrame(p, KeyProduce, 13, produceResponse(nil))[9:]
	if _, _, err := scanProduce(body, 12); err == nil {
		t.Fatal("v13 body walked as v12")
	}
}

// TestNodeEndpointsUndefinedVersion: Produce v9 and Fetch v12–v15 have a
// top-level tag section but no NodeEndpoints field. They are walked (an
// empty section passes without a copy or an allocation; TestRewriteAddresses
// shows a NodeEndpoints there is rewritten), and a tag 0 that is not a
// NodeEndpoints fails the answer rather than passing it unread.
func TestNodeEndpointsUndefinedVersion(t *testing.T) {
	p := NewProtocol()
	rw := NewRewriter(p)
	for _, c := range walkerCases() {
		first := produceTags
		if c.key == KeyFetch {
			first = fetchTags
		}
		if rw.MayRewrite(c.key, first-1) {
			t.Errorf("%s v%d has no tag section but MayRewrite is true", c.name, first-1)
		}
		for v := first; v < c.from; v++ {
			if !rw.MayRewrite(c.key, v) {
				t.Fatalf("%s v%d: MayRewrite false: the answer would be streamed unread", c.name, v)
			}
			plain := encodeFrame(p, c.key, v, c.build(nil, 64))
			out, rewrote, err := rw.Rewrite(plain, c.key, v, newFakeMap())
			if err != nil || rewrote || !sameSlice(out, plain) {
				t.Fatalf("%s v%d, empty tag section: rewrote=%v same=%v err=%v", c.name, v, rewrote, sameSlice(out, plain), err)
			}
			if allocs := testing.AllocsPerRun(20, func() { _, _, _ = rw.Rewrite(plain, c.key, v, benchMap{}) }); allocs != 0 {
				t.Fatalf("%s v%d: %v allocs checking an answer with an empty tag section", c.name, v, allocs)
			}
			resp := c.build(nil, 64)
			switch r := resp.(type) {
			case *kmsg.ProduceResponse:
				r.UnknownTags.Set(0, []byte("b1.upstream.internal:9092"))
			case *kmsg.FetchResponse:
				r.UnknownTags.Set(0, []byte("b1.upstream.internal:9092"))
			}
			frame := encodeFrame(p, c.key, v, resp)
			if out, _, err := rw.Rewrite(frame, c.key, v, newFakeMap()); err == nil || out != nil {
				t.Fatalf("%s v%d: undecodable tag 0 passed (err=%v)", c.name, v, err)
			}
		}
	}
}
