package router

import (
	"testing"
	"time"

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
		h, _ := ParseRequestHeader(body)
		req := decodeAnyRequest(p, body, h)
		if req == nil {
			t.Fatalf("%s v%d seed does not decode", p.Name(h.Key), h.Version)
		}
		want := wantTimeout(req)
		if got := p.RequestTimeout(body, h); got != want {
			t.Fatalf("%s v%d: timeout %v, want %v", p.Name(h.Key), h.Version, got, want)
		}
		if want == seedTimeout {
			checked++
		}
		if h.Key == KeyProduce {
			if acks, err := p.ProduceAcks(body, h); err != nil || acks != -1 {
				t.Fatalf("Produce v%d: acks %d, %v", h.Version, acks, err)
			}
		}
	}
	if checked < 50 {
		t.Fatalf("only %d seeds carried a timeout", checked)
	}
}

// decodeRequest decodes a frame body with kmsg, or returns nil.
func decodeAnyRequest(p *Protocol, body []byte, h RequestHeader) kmsg.Request {
	if !p.Known(h.Key) || h.Version < 0 || h.Version > p.MaxVersion(h.Key) {
		return nil
	}
	off, err := p.RequestBodyOffset(body, h)
	if err != nil {
		return nil
	}
	req := kmsg.RequestForKey(h.Key)
	req.SetVersion(h.Version)
	if req.ReadFrom(body[off:]) != nil {
		return nil
	}
	return req
}

// FuzzRequestHeader feeds arbitrary request bodies to everything the
// session reads from a client frame: the fixed header, the client id, the
// body offset, Produce acks and the request timeout. None may panic or read
// out of bounds; where kmsg decodes the same bytes, the walkers must agree
// with it.
func FuzzRequestHeader(f *testing.F) {
	p := NewProtocol()
	for _, s := range requestSeeds(p) {
		f.Add(s)
	}
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 9, 0, 0, 0, 1, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, body []byte) {
		h, err := ParseRequestHeader(body)
		if err != nil {
			if len(body) >= 8 {
				t.Fatal("8 bytes refused")
			}
			return
		}
		_, _ = ClientID(body)
		off, err := p.RequestBodyOffset(body, h)
		if err == nil && (off < 8 || off > len(body)) {
			t.Fatalf("body offset %d outside 8..%d", off, len(body))
		}
		acks, acksErr := p.ProduceAcks(body, h)
		timeout := p.RequestTimeout(body, h)
		if timeout < 0 {
			t.Fatalf("negative timeout %v", timeout)
		}
		req := decodeAnyRequest(p, body, h)
		if req == nil {
			return
		}
		if want := wantTimeout(req); timeout != want {
			t.Fatalf("%s v%d: timeout %v, kmsg reads %v", p.Name(h.Key), h.Version, timeout, want)
		}
		if pr, ok := req.(*kmsg.ProduceRequest); ok && (acksErr != nil || acks != pr.Acks) {
			t.Fatalf("Produce v%d: acks %d (%v), kmsg reads %d", h.Version, acks, acksErr, pr.Acks)
		}
	})
}
