package router

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const seedTimeout = 12345 * time.Millisecond

// timedRequest is a request of key with its timeout, acks and
// transactional id set where it has them, so the seeds exercise every
// field the proxy reads.
func timedRequest(key int16) kmsg.Request {
	req := kmsg.RequestForKey(key)
	switch r := req.(type) {
	case *kmsg.ProduceRequest:
		r.Acks, r.TimeoutMillis, r.TransactionID = -1, 12345, strp("txn-id")
	case *kmsg.FetchRequest:
		r.MaxWaitMillis = 12345
	case *kmsg.ShareFetchRequest:
		r.GroupID, r.MemberID, r.MaxWaitMillis = strp("group"), strp("member"), 12345
	case *kmsg.JoinGroupRequest:
		r.Group, r.SessionTimeoutMillis, r.RebalanceTimeoutMillis = "group", 12345, 12345
	case interface{ SetTimeout(int32) }:
		r.SetTimeout(12345)
	}
	return req
}

// requestSeeds is a request of every key at every version kmsg knows.
func requestSeeds(p *Protocol) [][]byte {
	var seeds [][]byte
	for key := range int16(keySpan) {
		if !p.Known(key) {
			continue
		}
		for v := range p.MaxVersion(key) + 1 {
			req := timedRequest(key)
			req.SetVersion(v)
			seeds = append(seeds, requestBody(p, req, int32(v)+1, strp("client")))
		}
	}
	return seeds
}

// wantTimeout is what RequestTimeout must return for a decoded request.
func wantTimeout(req kmsg.Request) time.Duration {
	var ms int32
	switch r := req.(type) {
	case *kmsg.ProduceRequest:
		ms = r.TimeoutMillis
	case *kmsg.FetchRequest:
		ms = r.MaxWaitMillis
	case *kmsg.ShareFetchRequest:
		ms = r.MaxWaitMillis
	case *kmsg.JoinGroupRequest:
		ms = r.SessionTimeoutMillis
		if r.Version >= 1 {
			ms = r.RebalanceTimeoutMillis
		}
	case *kmsg.ListOffsetsRequest:
		if r.Version >= 10 {
			ms = r.TimeoutMillis
		}
	case *kmsg.CreateTopicsRequest, *kmsg.DeleteTopicsRequest, *kmsg.DeleteRecordsRequest, *kmsg.CreatePartitionsRequest,
		*kmsg.ElectLeadersRequest, *kmsg.AlterPartitionAssignmentsRequest, *kmsg.ListPartitionReassignmentsRequest, *kmsg.UpdateFeaturesRequest,
		*kmsg.AddRaftVoterRequest:
		ms = r.(interface{ Timeout() int32 }).Timeout()
	}
	return time.Duration(max(ms, 0)) * time.Millisecond
}

func TestRequestTimeoutEveryVersion(t *testing.T) {
	p := NewProtocol()
	checked := 0
	for _, body := range requestSeeds(p) {
		q := parse(t, p, body)
		req, _, _ := decodeAnyRequest(p, body)
		if req == nil {
			t.Fatalf("%s v%d seed does not decode", p.Name(q.Key), q.Version)
		}
		want := wantTimeout(req)
		if got := p.RequestTimeout(q); got != want {
			t.Fatalf("%s v%d: timeout %v, want %v", p.Name(q.Key), q.Version, got, want)
		}
		if want == seedTimeout {
			checked++
		}
		if q.Key == KeyProduce {
			if acks, err := ProduceAcks(q); err != nil || acks != -1 {
				t.Fatalf("Produce v%d: acks %d, %v", q.Version, acks, err)
			}
		}
	}
	if checked < 50 {
		t.Fatalf("only %d seeds carried a timeout", checked)
	}
}

// decodeAnyRequest decodes a frame body with kbin and kmsg alone, as an
// oracle for the request view: the request, its client id and where its
// body starts; nil for what kmsg cannot decode.
func decodeAnyRequest(p *Protocol, body []byte) (req kmsg.Request, clientID *string, bodyAt int) {
	if len(body) < 8 {
		return nil, nil, 0
	}
	key, version := int16(binary.BigEndian.Uint16(body)), int16(binary.BigEndian.Uint16(body[2:]))
	req = kmsg.RequestForKey(key)
	if req == nil || version < 0 || version > req.MaxVersion() {
		return nil, nil, 0
	}
	req.SetVersion(version)
	b := kbin.Reader{Src: body[8:]}
	clientID = b.NullableString()
	if req.IsFlexible() {
		kmsg.SkipTags(&b)
	}
	if !b.Ok() {
		return nil, nil, 0
	}
	bodyAt = len(body) - len(b.Src)
	if req.ReadFrom(b.Src) != nil {
		return nil, nil, 0
	}
	return req, clientID, bodyAt
}

// FuzzRequestHeader feeds arbitrary request bodies to everything the
// session reads from a client frame: the request view (fixed header,
// client id, body offset), Produce acks, the request check, the request
// timeout, the fetch wait, barrier scopes and the client's software. None
// may panic or read out of bounds; where kbin and kmsg decode the same
// bytes, the view and the walkers must agree with them, and the check of a
// Produce refuses exactly what kmsg cannot decode, and refuses its head
// (the frame's size declared, its tail unread) only if it refuses the
// whole.
func FuzzRequestHeader(f *testing.F) {
	p := NewProtocol()
	for _, s := range requestSeeds(p) {
		f.Add(s)
	}
	for v := range p.MaxVersion(KeyProduce) + 1 {
		for _, records := range [][]byte{[]byte("records"), nil} {
			body, _ := produceWithRecords(p, v, records)
			f.Add(body)
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 9, 0, 0, 0, 1, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, body []byte) {
		q, err := p.ParseRequest(body)
		if err != nil {
			if len(body) >= 8 {
				t.Fatal("8 bytes refused")
			}
			return
		}
		off, offErr := q.BodyOffset()
		if offErr == nil && (off < 8 || off > len(body)) {
			t.Fatalf("body offset %d outside 8..%d", off, len(body))
		}
		acks, acksErr := ProduceAcks(&q)
		timeout := p.RequestTimeout(&q)
		if timeout < 0 {
			t.Fatalf("negative timeout %v", timeout)
		}
		_ = RequestScopes(&q)
		_, _, _ = p.ClientSoftware(&q)
		if at, err := p.FetchMaxWaitOffset(&q); err == nil && (at < 8 || at+4 > len(body)) {
			t.Fatalf("fetch wait at %d outside 8..%d", at, len(body)-4)
		}
		checkErr := p.CheckRequest(&q, false)
		req, clientID, bodyAt := decodeAnyRequest(p, body)
		if q.Key == KeyProduce && q.Version >= 0 && q.Version <= p.MaxVersion(KeyProduce) {
			if (checkErr == nil) != (req != nil) {
				t.Fatalf("Produce v%d: check says %v, kmsg decodes: %v", q.Version, checkErr, req != nil)
			}
			checkProduceHeads(t, p, body, checkErr)
		}
		if req == nil {
			return
		}
		if offErr != nil || off != bodyAt {
			t.Fatalf("%s v%d: body at %d (%v), kbin reads %d", p.Name(q.Key), q.Version, off, offErr, bodyAt)
		}
		if (clientID == nil) != (q.ClientID == nil) || clientID != nil && *clientID != string(q.ClientID) {
			t.Fatalf("client id %q, kbin reads %v", q.ClientID, clientID)
		}
		if want := wantTimeout(req); timeout != want {
			t.Fatalf("%s v%d: timeout %v, kmsg reads %v", p.Name(q.Key), q.Version, timeout, want)
		}
		if pr, ok := req.(*kmsg.ProduceRequest); ok && (acksErr != nil || acks != pr.Acks) {
			t.Fatalf("Produce v%d: acks %d (%v), kmsg reads %d", q.Version, acks, acksErr, pr.Acks)
		}
	})
}

// checkProduceHeads checks heads of a Produce body cut at many points, the
// rest declared but unread: a head is refused as malformed (ErrBadLength)
// only when the whole body is refused too, and otherwise passes or asks
// for the whole frame (ErrTruncated).
func checkProduceHeads(t *testing.T, p *Protocol, body []byte, wholeErr error) {
	step := max(1, len(body)/16)
	for cut := 8; cut < len(body); cut += step {
		q, err := p.ParseRequestHead(body[:cut], len(body))
		if err != nil {
			t.Fatal(err)
		}
		switch err := p.CheckRequest(&q, false); {
		case err == nil, errors.Is(err, ErrTruncated):
		case !errors.Is(err, ErrBadLength):
			t.Fatalf("head of %d of %d bytes: unexpected error %v", cut, len(body), err)
		case wholeErr == nil:
			t.Fatalf("head of %d of %d bytes refused (%v), the whole body passes", cut, len(body), err)
		}
	}
}
