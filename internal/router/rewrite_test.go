package router

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// addressCase is one API whose responses name brokers.
type addressCase struct {
	key   int16
	build func(addrFunc) kmsg.Response
	// from is the first version whose addresses the proxy rewrites; older
	// versions must pass untouched.
	from int16
	// nodes are the node ids a version's response must have advertised.
	nodes func(version int16) []int32
}

func fixedNodes(ns ...int32) func(int16) []int32 { return func(int16) []int32 { return ns } }

func addressCases() []addressCase {
	return []addressCase{
		{key: KeyMetadata, build: metadataResponse, nodes: fixedNodes(1, 2, 3)},
		{key: KeyFindCoordinator, build: findCoordinatorResponse, nodes: func(v int16) []int32 {
			if v < 4 {
				return []int32{2}
			}
			return []int32{1, 2} // the error entry is left alone
		}},
		{key: KeyDescribeCluster, build: describeClusterResponse, nodes: fixedNodes(1, 4)},
		{key: KeyShareFetch, build: shareFetchResponse, nodes: fixedNodes(3, 5)},
		{key: KeyShareAcknowledge, build: shareAcknowledgeResponse, nodes: fixedNodes(3)},
		{
			key:   KeyProduce,
			build: func(a addrFunc) kmsg.Response { return produceResponse(a) },
			from:  produceTags, nodes: fixedNodes(3, 4),
		},
		{
			key:   KeyFetch,
			build: func(a addrFunc) kmsg.Response { return fetchResponse(a, 4096) },
			from:  fetchTags, nodes: fixedNodes(3, 6),
		},
	}
}

// TestRewriteAddresses runs every address-carrying API at every version kmsg
// knows: the output must be exactly the response built with advertised
// addresses, and the AddressMap must have been asked for exactly the nodes
// that response names.
func TestRewriteAddresses(t *testing.T) {
	p := NewProtocol()
	rw := NewRewriter(p)
	for _, c := range addressCases() {
		for v := range p.MaxVersion(c.key) + 1 {
			t.Run(fmt.Sprintf("%s/v%d", p.Name(c.key), v), func(t *testing.T) {
				frame := encodeFrame(p, c.key, v, c.build(upstream))
				am := newFakeMap()
				out, rewrote, err := rw.Rewrite(frame, c.key, v, am)
				if err != nil {
					t.Fatal(err)
				}
				if v < c.from {
					if rewrote || !sameSlice(out, frame) || len(am.asked) != 0 {
						t.Fatalf("below v%d: rewrote=%v same=%v asked=%v", c.from, rewrote, sameSlice(out, frame), am.asked)
					}
					return
				}
				if !rewrote {
					t.Fatal("not rewritten")
				}
				if bytes.Contains(out, []byte(upstreamMark)) {
					t.Fatalf("upstream address leaked: %q", out)
				}
				want := encodeFrame(p, c.key, v, c.build(advertised))
				if !bytes.Equal(out, want) {
					t.Fatalf("rewritten frame\n got %x\nwant %x", out, want)
				}
				if got, want := am.nodes(), c.nodes(v); !slices.Equal(got, want) {
					t.Fatalf("advertised nodes %v, want %v", got, want)
				}
				for n, hp := range am.asked {
					if h, port := upstream(n); hp != h+":9092" || port != 9092 {
						t.Fatalf("node %d asked with %s", n, hp)
					}
				}
				assertDecodes(t, p, c.key, v, out)
			})
		}
	}
}

// assertDecodes checks that a client at key/version can read out.
func assertDecodes(t *testing.T, p *Protocol, key, version int16, out []byte) {
	t.Helper()
	body, err := responseBody(out, p.FlexibleResponseHeader(key, version))
	if err != nil {
		t.Fatal(err)
	}
	resp := kmsg.ResponseForKey(key)
	resp.SetVersion(version)
	if err := resp.ReadFrom(body); err != nil {
		t.Fatalf("client cannot decode the rewritten frame: %v", err)
	}
}

// TestRewriteUnchanged: when every address is already the one to advertise,
// the upstream frame itself goes out.
func TestRewriteUnchanged(t *testing.T) {
	p := NewProtocol()
	rw := NewRewriter(p)
	for _, c := range addressCases() {
		for v := range p.MaxVersion(c.key) + 1 {
			frame := encodeFrame(p, c.key, v, c.build(upstream))
			out, rewrote, err := rw.Rewrite(frame, c.key, v, identityMap{})
			if err != nil || rewrote || !sameSlice(out, frame) {
				t.Fatalf("%s v%d: rewrote=%v same=%v err=%v", p.Name(c.key), v, rewrote, sameSlice(out, frame), err)
			}
		}
	}
}

// TestRewriteOtherKeys: keys without addresses are not even looked at, so
// even garbage passes, without allocating.
func TestRewriteOtherKeys(t *testing.T) {
	rw := NewRewriter(NewProtocol())
	frame := []byte("not a kafka frame at all")
	for _, key := range []int16{-1, 2, 8, 19, 77, 127, 128, 1000} {
		if rw.NeedsRewrite(key) || rw.Decoded(key) {
			t.Fatalf("key %d needs rewrite", key)
		}
		out, rewrote, err := rw.Rewrite(frame, key, 3, newFakeMap())
		if err != nil || rewrote || !sameSlice(out, frame) {
			t.Fatalf("key %d: rewrote=%v err=%v", key, rewrote, err)
		}
	}
	allocs := testing.AllocsPerRun(100, func() { _, _, _ = rw.Rewrite(frame, 2, 3, benchMap{}) })
	if allocs != 0 {
		t.Fatalf("%v allocs forwarding an untouched key", allocs)
	}
}

func TestNeedsRewriteKeys(t *testing.T) {
	rw := NewRewriter(NewProtocol())
	var got []int16
	for k := range int16(keySpan) {
		if rw.NeedsRewrite(k) {
			got = append(got, k)
		}
	}
	want := []int16{KeyProduce, KeyFetch, KeyMetadata, KeyFindCoordinator, KeyApiVersions, KeyDescribeCluster, KeyShareFetch, KeyShareAcknowledge}
	if !slices.Equal(got, want) {
		t.Fatalf("NeedsRewrite keys %v, want %v", got, want)
	}
}

// TestRewriteHeaderTags: a flexible response header with tags is read past,
// and the rewritten frame carries an empty tag section.
func TestRewriteHeaderTags(t *testing.T) {
	p := NewProtocol()
	rw := NewRewriter(p)
	const v = 12
	plain := encodeFrame(p, KeyMetadata, v, metadataResponse(upstream))
	tagged := append(append(append([]byte{}, plain[:8]...), 1, 5, 2, 'h', 'i'), plain[9:]...)
	binary.BigEndian.PutUint32(tagged, uint32(len(tagged)-4))
	out, rewrote, err := rw.Rewrite(tagged, KeyMetadata, v, newFakeMap())
	if err != nil || !rewrote {
		t.Fatalf("rewrote=%v err=%v", rewrote, err)
	}
	if want := encodeFrame(p, KeyMetadata, v, metadataResponse(advertised)); !bytes.Equal(out, want) {
		t.Fatalf("got %x\nwant %x", out, want)
	}
}

func TestRewriteAddressMapError(t *testing.T) {
	p := NewProtocol()
	rw := NewRewriter(p)
	boom := errors.New("no port for node")
	for _, c := range addressCases() {
		v := p.MaxVersion(c.key)
		frame := encodeFrame(p, c.key, v, c.build(upstream))
		out, _, err := rw.Rewrite(frame, c.key, v, &fakeMap{err: boom})
		if !errors.Is(err, boom) || out != nil {
			t.Fatalf("%s: err=%v out=%d bytes", p.Name(c.key), err, len(out))
		}
	}
}

func TestRewriteVersionAboveMax(t *testing.T) {
	p := NewProtocol()
	rw := NewRewriter(p)
	for _, c := range addressCases() {
		v := p.MaxVersion(c.key)
		frame := encodeFrame(p, c.key, v, c.build(upstream))
		if _, _, err := rw.Rewrite(frame, c.key, v+1, newFakeMap()); err == nil {
			t.Fatalf("%s v%d accepted", p.Name(c.key), v+1)
		}
	}
}

// TestDescribeClusterControllers: an answer listing controllers (KIP-919,
// EndpointType 2) advertises them as controllers, never at a broker's
// port, even when a node id is also a broker's (combined KRaft mode).
func TestDescribeClusterControllers(t *testing.T) {
	p := NewProtocol()
	rw := NewRewriter(p)
	for v := int16(1); v <= p.MaxVersion(KeyDescribeCluster); v++ {
		resp := describeClusterResponse(upstream).(*kmsg.DescribeClusterResponse)
		resp.EndpointType = endpointTypeController
		am := newFakeMap()
		out, rewrote, err := rw.Rewrite(encodeFrame(p, KeyDescribeCluster, v, resp), KeyDescribeCluster, v, am)
		if err != nil || !rewrote {
			t.Fatalf("v%d: rewrote=%v err=%v", v, rewrote, err)
		}
		if len(am.asked) != 0 || len(am.controllers) != len(resp.Brokers) {
			t.Fatalf("v%d: brokers asked %v, controllers asked %v", v, am.asked, am.controllers)
		}
		want := describeClusterResponse(advertisedController).(*kmsg.DescribeClusterResponse)
		want.EndpointType = endpointTypeController
		if !bytes.Equal(out, encodeFrame(p, KeyDescribeCluster, v, want)) {
			t.Fatalf("v%d: controllers not at their own ports", v)
		}
	}
}
