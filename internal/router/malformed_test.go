package router

import (
	"encoding/binary"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// seedFrame is a well-formed response to one key/version.
type seedFrame struct {
	key, version int16
	frame        []byte
}

// seedFrames encodes a response of every rewritten key at every version kmsg
// knows, with addresses wherever the version can carry them.
func seedFrames(p *Protocol) []seedFrame {
	var seeds []seedFrame
	for _, c := range addressCases() {
		for v := range p.MaxVersion(c.key) + 1 {
			seeds = append(seeds, seedFrame{c.key, v, encodeFrame(p, c.key, v, c.build(upstream))})
		}
	}
	for v := range p.MaxVersion(KeyApiVersions) + 1 {
		resp := apiVersionsResponse(0, apiRange{KeyMetadata, 0, 99}, apiRange{KeyFetch, 4, 99}, apiRange{2, 0, 9})
		seeds = append(seeds, seedFrame{KeyApiVersions, v, encodeFrame(p, KeyApiVersions, v, resp)})
	}
	v0err := apiVersionsResponse(unsupportedVersion, apiRange{KeyApiVersions, 0, 9})
	return append(seeds, seedFrame{KeyApiVersions, 3, encodeFrame(p, KeyApiVersions, 0, v0err)})
}

// alwaysChecked reports whether every byte of key/version's body is read,
// so any cut must be an error. ApiVersions is not: a cut body may happen to
// be a complete v0 answer.
func alwaysChecked(key, version int16) bool {
	switch key {
	case KeyApiVersions:
		return false
	case KeyProduce:
		return version >= produceNodeEndpoints
	case KeyFetch:
		return version >= fetchNodeEndpoints
	}
	return true
}

// TestRewriteTruncated cuts every seed at every length, with the size
// prefix left stale and with it fixed to the cut.
func TestRewriteTruncated(t *testing.T) {
	p := NewProtocol()
	rw := NewRewriter(p)
	for _, s := range seedFrames(p) {
		for cut := range len(s.frame) {
			short := s.frame[:cut:cut]
			if out, _, err := rw.Rewrite(short, s.key, s.version, newFakeMap()); err == nil || out != nil {
				t.Fatalf("%s v%d cut at %d with stale size: err=%v", p.Name(s.key), s.version, cut, err)
			}
			if cut < 4 {
				continue
			}
			fixed := append([]byte(nil), short...)
			binary.BigEndian.PutUint32(fixed, uint32(cut-4))
			out, _, err := rw.Rewrite(fixed, s.key, s.version, newFakeMap())
			if alwaysChecked(s.key, s.version) && (err == nil || out != nil) {
				t.Fatalf("%s v%d cut at %d: err=%v", p.Name(s.key), s.version, cut, err)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "decode "+p.Name(s.key)+" v") {
				t.Fatalf("error does not name the API: %v", err)
			}
		}
	}
}

// TestRewriteGarbage feeds random bodies behind valid headers and random
// bytes into valid frames: every result keeps Rewrite's contract
// (checkRewrite), and garbage is refused, not passed on rewritten.
func TestRewriteGarbage(t *testing.T) {
	p := NewProtocol()
	rw := NewRewriter(p)
	rng := rand.New(rand.NewPCG(1, 2))
	refused := 0
	for _, s := range seedFrames(p) {
		for range 200 {
			frame := append([]byte(nil), s.frame...)
			for range 1 + rng.IntN(4) {
				frame[8+rng.IntN(len(frame)-8)] = byte(rng.Uint32())
			}
			checkRewrite(t, rw, frame, s.key, s.version)

			junk := make([]byte, 9+rng.IntN(64))
			for i := range junk {
				junk[i] = byte(rng.Uint32())
			}
			binary.BigEndian.PutUint32(junk, uint32(len(junk)-4))
			if _, err := checkRewrite(t, rw, junk, s.key, s.version); err != nil {
				refused++
			}
		}
	}
	// Random bytes behind a size prefix rarely decode as an answer that
	// needs rewriting; most must be refused.
	if total := 200 * len(seedFrames(p)); refused < total/2 {
		t.Errorf("only %d of %d random bodies refused", refused, total)
	}
}

func FuzzRewrite(f *testing.F) {
	p := NewProtocol()
	rw := NewRewriter(p)
	for _, s := range seedFrames(p) {
		f.Add(s.frame, s.key, s.version)
	}
	f.Fuzz(func(t *testing.T, frame []byte, key, version int16) {
		checkRewrite(t, rw, frame, key, version)
	})
}

// checkRewrite holds Rewrite to its contract on any input: an error comes
// with no frame to send; an unchanged answer is the upstream frame itself;
// a rewritten one has a true size prefix, the same correlation id, and
// reads back needing nothing more. It reports whether frame was rewritten.
func checkRewrite(t *testing.T, rw *Rewriter, frame []byte, key, version int16) (rewrote bool, err error) {
	t.Helper()
	out, rewrote, err := rw.Rewrite(frame, key, version, newFakeMap())
	switch {
	case err != nil:
		if out != nil {
			t.Fatalf("key %d v%d: error %v with a frame to send", key, version, err)
		}
		return false, err
	case !rewrote:
		if !sameSlice(out, frame) {
			t.Fatalf("key %d v%d: unchanged but not the upstream frame", key, version)
		}
		return false, nil
	}
	if len(out) < 8 || binary.BigEndian.Uint32(out) != uint32(len(out)-4) {
		t.Fatalf("key %d v%d: bad size prefix in %x", key, version, out)
	}
	if string(out[4:8]) != string(frame[4:8]) {
		t.Fatalf("key %d v%d: correlation id changed", key, version)
	}
	// What the proxy sends must read back, and need nothing more.
	again, rewroteAgain, err := rw.Rewrite(out, key, version, newFakeMap())
	if err != nil || rewroteAgain || !sameSlice(again, out) {
		t.Fatalf("key %d v%d: second pass: rewrote=%v err=%v", key, version, rewroteAgain, err)
	}
	return true, nil
}

// TestSeedFramesDecode guards the seeds: each must be what kmsg itself reads.
func TestSeedFramesDecode(t *testing.T) {
	p := NewProtocol()
	for _, s := range seedFrames(p) {
		if s.key == KeyApiVersions {
			continue // the v0 error seed is deliberately not at its version
		}
		resp := kmsg.ResponseForKey(s.key)
		resp.SetVersion(s.version)
		body, err := responseBody(s.frame, p.FlexibleResponseHeader(s.key, s.version))
		if err != nil {
			t.Fatal(err)
		}
		if err := resp.ReadFrom(body); err != nil {
			t.Fatalf("%s v%d seed: %v", p.Name(s.key), s.version, err)
		}
	}
}
