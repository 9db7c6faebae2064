// Package bridge lets clients of protocol versions Kafka 4.0 removed
// (KIP-896, KIP-724) talk to a 4.x broker: a request of a removed version is
// decoded at the client's version, translated to the lowest version the
// broker accepts, and its answer translated back to the client's version
// with the same meaning. Where a field has no counterpart (a record format,
// an error code the old client never knew), the translation is documented
// per API in its file and in docs/BRIDGE.md.
package bridge

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"
)

var (
	// ErrTooLarge is returned when an input or output exceeds maxOut.
	ErrTooLarge = errors.New("bridge: frame exceeds the size limit")
	// ErrMalformed is returned for a frame that does not decode.
	ErrMalformed = errors.New("bridge: malformed frame")
	// ErrNotBridged is returned for a key or pair of versions this package
	// does not translate.
	ErrNotBridged = errors.New("bridge: no translation for this api key and version")
)

// Exchange is one bridged request: what its answer needs to go back down.
type Exchange struct {
	Key, From, To int16

	// asked is the request's partitions in its order: an answer that carries
	// an error only at a level the old version lacks gives it to each.
	asked []partition
	// limit is per partition what the old version asked for and the new one
	// has no field for: Fetch's PartitionMaxBytes (the bound of the message
	// set it gets back), ListOffsets v0's MaxNumOffsets.
	limit map[partition]int32
	// corrupt is the Produce partitions whose records did not convert
	// because they are corrupt, left out of the request and answered
	// CORRUPT_MESSAGE, as a broker answers them; corruptErr says why the
	// first did not convert.
	corrupt    []partition
	corruptErr error
	// alloc lends the translation memory for what it builds on the way
	// (message sets, record batches), as for the frame.
	alloc Allocator
}

// Corrupt is how many partitions of a bridged Produce were answered
// CORRUPT_MESSAGE instead of sent on, and why the first was.
func (x *Exchange) Corrupt() (int, error) { return len(x.corrupt), x.corruptErr }

type partition struct {
	topic string
	index int32
}

// translation is one API's field mapping between an old version and a newer
// one; kmsg does the encoding at each version.
type translation interface {
	// highestTo is the highest version up can produce (later versions name
	// topics by id, which the old request does not carry).
	highestTo() int16
	// up adjusts req, decoded at x.From, to mean the same at x.To.
	up(req kmsg.Request, x *Exchange, maxOut int) error
	// down adjusts resp, decoded at x.To, to mean the same at x.From.
	down(resp kmsg.Response, x *Exchange, maxOut int) error
	// refuse shapes resp, at the version of req, after req: one entry per
	// topic, partition or resource asked for, so the error codes that
	// UnsupportedVersion sets reach every one of them.
	refuse(req kmsg.Request, resp kmsg.Response)
}

// answerWriter is a translation that writes its answer itself, after down,
// in pieces that are sent in order (fetch: message sets converted each in a
// buffer of its own); false: kmsg encodes it, in one piece.
type answerWriter interface {
	writeAnswer(resp kmsg.Response, x *Exchange, correlation uint32, maxOut int) (frame [][]byte, ok bool, err error)
}

func translationFor(key int16) translation {
	switch kmsg.Key(key) {
	case kmsg.Produce:
		return produce{}
	case kmsg.Fetch:
		return fetch{}
	case kmsg.ListOffsets:
		return listOffsets{}
	case kmsg.OffsetCommit:
		return offsetCommit{}
	case kmsg.OffsetFetch:
		return offsetFetch{}
	case kmsg.JoinGroup:
		return joinGroup{}
	case kmsg.CreateTopics:
		return createTopics{}
	case kmsg.DeleteTopics:
		return deleteTopics{}
	case kmsg.OffsetForLeaderEpoch:
		return offsetForLeaderEpoch{}
	case kmsg.DescribeACLs:
		return describeACLs{}
	case kmsg.CreateACLs:
		return createACLs{}
	case kmsg.DeleteACLs:
		return deleteACLs{}
	case kmsg.DescribeConfigs:
		return describeConfigs{}
	case kmsg.AlterReplicaLogDirs:
		return alterReplicaLogDirs{}
	case kmsg.DescribeLogDirs:
		return describeLogDirs{}
	}
	return nil
}

// Up translates a request. req is what follows the 4-byte size prefix: the
// request header (v1, or v2 when from is a flexible version) and body at
// version from. It returns a whole frame, size prefix included, with the
// header for version to (same correlation id and client id) and the body
// translated to version to.
func Up(req []byte, key, from, to int16, maxOut int) (frame []byte, x *Exchange, err error) {
	return UpAlloc(Allocator{}, req, key, from, to, maxOut)
}

// Allocator supplies the memory a translation writes into, from a caller's
// pool, say, which may charge it to a budget: Get returns a slice of length
// 0 and capacity at least n; Free takes back one Get returned that the
// translation no longer uses (a buffer it outgrew, records it decompressed
// and has written out). A nil Get is make; a nil Free does nothing. Both
// may be called from several goroutines at once (a Fetch answer's
// partitions convert in parallel).
type Allocator struct {
	Get  func(n int) []byte
	Free func(b []byte)
}

func (a Allocator) get(n int) []byte {
	if a.Get == nil {
		return make([]byte, 0, n)
	}
	return a.Get(n)
}

func (a Allocator) free(b []byte) {
	if a.Free != nil && cap(b) > 0 {
		a.Free(b)
	}
}

// UpAlloc is Up writing the frame into memory from alloc.
func UpAlloc(alloc Allocator, req []byte, key, from, to int16, maxOut int) (frame []byte, x *Exchange, err error) {
	if len(req) > maxOut {
		return nil, nil, ErrTooLarge
	}
	t := translationFor(key)
	r := kmsg.RequestForKey(key)
	if t == nil || r == nil || from < 0 || from >= to || to > t.highestTo() || to > r.MaxVersion() {
		return nil, nil, fmt.Errorf("%w: key %d v%d to v%d", ErrNotBridged, key, from, to)
	}
	r.SetVersion(from)
	h, body, err := readRequestHeader(req, key, from, r.IsFlexible())
	if err != nil {
		return nil, nil, err
	}
	if err := r.ReadFrom(body); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	x = &Exchange{Key: key, From: from, To: to, alloc: alloc}
	err = t.up(r, x, maxOut)
	x.alloc = Allocator{} // the caller's pool, for this call only
	if err != nil {
		return nil, nil, err
	}
	r.SetVersion(to)
	frame = appendRequestHeader(alloc.get(len(req) + 16)[:4], h, key, to, r.IsFlexible())
	frame = r.AppendTo(frame)
	if len(frame)-4 > maxOut {
		return nil, nil, ErrTooLarge
	}
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	return frame, x, nil
}

// Down translates the broker's answer, a whole frame with its size prefix
// and the response header of version x.To, to a whole frame at version
// x.From with its header.
func (x *Exchange) Down(resp []byte, maxOut int) ([]byte, error) {
	pieces, err := x.DownAlloc(Allocator{}, resp, maxOut)
	if err != nil {
		return nil, err
	}
	return slices.Concat(pieces...), nil
}

// DownAlloc is Down writing the frame into memory from alloc, in pieces to
// be sent in order: the first holds the size prefix and the header.
func (x *Exchange) DownAlloc(alloc Allocator, resp []byte, maxOut int) ([][]byte, error) {
	if len(resp)-4 > maxOut {
		return nil, ErrTooLarge
	}
	if len(resp) < 8 || int(binary.BigEndian.Uint32(resp)) != len(resp)-4 {
		return nil, ErrMalformed
	}
	t := translationFor(x.Key)
	r := kmsg.ResponseForKey(x.Key)
	if t == nil || r == nil {
		return nil, ErrNotBridged
	}
	correlation := binary.BigEndian.Uint32(resp[4:])
	r.SetVersion(x.To)
	body := resp[8:]
	if flexibleResponseHeader(r) {
		var ok bool
		if body, ok = skipTags(body); !ok {
			return nil, ErrMalformed
		}
	}
	if err := r.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	x.alloc = alloc
	defer func() { x.alloc = Allocator{} }() // the caller's pool, for this call only
	if err := t.down(r, x, maxOut); err != nil {
		return nil, err
	}
	if w, ok := t.(answerWriter); ok {
		if frame, ok, err := w.writeAnswer(r, x, correlation, maxOut); ok || err != nil {
			return frame, err
		}
	}
	frame, err := encodeResponse(alloc, r, x.From, correlation, maxOut, len(resp))
	if err != nil {
		return nil, err
	}
	return [][]byte{frame}, nil
}

// UnsupportedVersion is the answer to a request of an old version that
// kproxy cannot translate: UNSUPPORTED_VERSION in every error code of the
// response, encoded in the client's own version, so the client gets an
// answer it can read instead of a closed connection. For an API this package
// translates, the answer lists what the request asked for, each with the
// error. A Produce with acks=0 is owed no answer: the frame is nil.
func UnsupportedVersion(req []byte, key, version int16) ([]byte, error) {
	r := kmsg.RequestForKey(key)
	if r == nil || version < 0 || version > r.MaxVersion() {
		return nil, fmt.Errorf("%w: key %d v%d", ErrNotBridged, key, version)
	}
	r.SetVersion(version)
	h, body, err := readRequestHeader(req, key, version, r.IsFlexible())
	if err != nil {
		return nil, err
	}
	resp := r.ResponseKind()
	resp.SetVersion(version)
	if r.ReadFrom(body) == nil {
		if p, ok := r.(*kmsg.ProduceRequest); ok && p.Acks == 0 {
			return nil, nil
		}
		if t := translationFor(key); t != nil {
			t.refuse(r, resp)
		}
	}
	setErrorCodes(resp, codeUnsupportedVersion)
	return encodeResponse(Allocator{}, resp, version, uint32(h.correlation), math.MaxInt, 64)
}

// encodeResponse encodes r at version behind a response header; sizeHint is
// about how large the frame will be.
func encodeResponse(alloc Allocator, r kmsg.Response, version int16, correlation uint32, maxOut, sizeHint int) ([]byte, error) {
	r.SetVersion(version)
	out := alloc.get(max(64, min(sizeHint+64, maxOut+4)))[:8]
	binary.BigEndian.PutUint32(out[4:], correlation)
	if flexibleResponseHeader(r) {
		out = append(out, 0)
	}
	out = r.AppendTo(out)
	if len(out)-4 > maxOut {
		return nil, ErrTooLarge
	}
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	return out, nil
}

// flexibleResponseHeader: response header v1 for flexible versions, except
// ApiVersions, whose answer a client must read before it knows the version.
func flexibleResponseHeader(r kmsg.Response) bool {
	return r.IsFlexible() && r.Key() != int16(kmsg.ApiVersions)
}
