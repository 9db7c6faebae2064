package router

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// decodeRequest reads a request frame body back with kmsg.
func decodeRequest(t *testing.T, p *Protocol, body []byte, into kmsg.Request) {
	t.Helper()
	q := parse(t, p, body)
	off, err := q.BodyOffset()
	if err != nil {
		t.Fatal(err)
	}
	into.SetVersion(q.Version)
	if err := into.ReadFrom(body[off:]); err != nil {
		t.Fatalf("decode %s v%d: %v", kmsg.NameForKey(into.Key()), q.Version, err)
	}
}

func fetchRequest(version int16, maxWait int32) *kmsg.FetchRequest {
	r := kmsg.NewPtrFetchRequest()
	r.SetVersion(version)
	r.ReplicaID = -1
	r.MaxWaitMillis = maxWait
	r.MinBytes = 7
	r.MaxBytes = 1 << 20
	r.SessionEpoch = -1
	tp := kmsg.NewFetchRequestTopic()
	tp.Topic = "t"
	tp.TopicID = [16]byte{1, 2, 3}
	pt := kmsg.NewFetchRequestTopicPartition()
	pt.Partition = 3
	pt.FetchOffset = 99
	tp.Partitions = append(tp.Partitions, pt)
	r.Topics = append(r.Topics, tp)
	r.Rack = "rack-a"
	return r
}

func shareFetchRequest(version int16, maxWait int32) *kmsg.ShareFetchRequest {
	r := kmsg.NewPtrShareFetchRequest()
	r.SetVersion(version)
	g, m := "share-group", "member-0123456789"
	r.GroupID, r.MemberID = &g, &m
	r.ShareSessionEpoch = 5
	r.MaxWaitMillis = maxWait
	r.MinBytes = 7
	r.MaxBytes = 1 << 20
	r.MaxRecords = 500
	r.BatchSize = 100
	tp := kmsg.NewShareFetchRequestTopic()
	tp.TopicID = [16]byte{4, 5, 6}
	r.Topics = append(r.Topics, tp)
	return r
}

func TestCapFetchWaitEveryVersion(t *testing.T) {
	p := NewProtocol()
	id := "consumer-1"
	type tc struct {
		name  string
		build func(v int16, wait int32) kmsg.Request
		check func(t *testing.T, body []byte, v int16, wantWait int32)
	}
	cases := []tc{
		{"Fetch",
			func(v int16, w int32) kmsg.Request { return fetchRequest(v, w) },
			func(t *testing.T, body []byte, v int16, want int32) {
				got := kmsg.NewPtrFetchRequest()
				decodeRequest(t, p, body, got)
				orig := fetchRequest(v, want)
				if got.MaxWaitMillis != want || got.MinBytes != orig.MinBytes || got.MaxBytes != orig.MaxBytes && v >= 3 ||
					v < 15 && got.ReplicaID != -1 || got.Topics[0].Partitions[0].FetchOffset != 99 {
					t.Errorf("v%d decoded %+v, want MaxWaitMillis %d and every other field unchanged", v, got, want)
				}
			}},
		{"ShareFetch",
			func(v int16, w int32) kmsg.Request { return shareFetchRequest(v, w) },
			func(t *testing.T, body []byte, v int16, want int32) {
				got := kmsg.NewPtrShareFetchRequest()
				decodeRequest(t, p, body, got)
				if got.MaxWaitMillis != want || got.MinBytes != 7 || got.MaxBytes != 1<<20 || got.ShareSessionEpoch != 5 || *got.MemberID != "member-0123456789" {
					t.Errorf("v%d decoded %+v, want MaxWaitMillis %d and every other field unchanged", v, got, want)
				}
			}},
	}
	for _, c := range cases {
		req := c.build(0, 0)
		for v := int16(0); v <= req.MaxVersion(); v++ {
			for _, clientID := range []*string{&id, nil} {
				t.Run(fmt.Sprintf("%s/v%d/client_id=%v", c.name, v, clientID != nil), func(t *testing.T) {
					body := requestBody(p, c.build(v, 9000), 42, clientID)
					was, capped, err := p.CapFetchWait(parse(t, p, body), 200)
					if err != nil || !capped || was != 9000 {
						t.Fatalf("CapFetchWait = %d, %v, %v; want 9000, true, nil", was, capped, err)
					}
					c.check(t, body, v, 200)

					body = requestBody(p, c.build(v, 150), 42, clientID)
					was, capped, err = p.CapFetchWait(parse(t, p, body), 200)
					if err != nil || capped || was != 150 {
						t.Fatalf("below the cap: CapFetchWait = %d, %v, %v; want 150, false, nil", was, capped, err)
					}
					c.check(t, body, v, 150)
				})
			}
		}
	}
}

func TestCapFetchWaitRefuses(t *testing.T) {
	p := NewProtocol()
	id := "c"
	full := requestBody(p, fetchRequest(11, 9000), 42, &id)
	// Cut inside MaxWaitMillis and inside the client id: never a patch out
	// of bounds.
	for _, n := range []int{len(full) - len(fetchRequest(11, 0).AppendTo(nil)) + 6, 11} {
		if _, _, err := p.CapFetchWait(parse(t, p, full[:n]), 200); !errors.Is(err, ErrTruncated) {
			t.Errorf("truncated to %d bytes: err = %v, want ErrTruncated", n, err)
		}
	}
	share := requestBody(p, shareFetchRequest(1, 9000), 42, &id)
	if _, _, err := p.CapFetchWait(parse(t, p, share[:len(share)-len(shareFetchRequest(1, 0).AppendTo(nil))+20]), 200); !errors.Is(err, ErrTruncated) {
		t.Errorf("truncated ShareFetch: err = %v, want ErrTruncated", err)
	}
	for _, bad := range []RequestHeader{
		{Key: KeyProduce, Version: 7},
		{Key: KeyFetch, Version: p.MaxVersion(KeyFetch) + 1},
		{Key: KeyFetch, Version: -1},
	} {
		q := parse(t, p, full)
		q.RequestHeader = bad
		if _, _, err := p.CapFetchWait(q, 200); !errors.Is(err, errNotFetch) {
			t.Errorf("%+v: err = %v, want errNotFetch", bad, err)
		}
	}
}

func BenchmarkCapFetchWait(b *testing.B) {
	p := NewProtocol()
	id := "consumer-1"
	body := requestBody(p, fetchRequest(p.MaxVersion(KeyFetch), 9000), 42, &id)
	q := parse(b, p, body)
	off, err := p.FetchMaxWaitOffset(q)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		binary.BigEndian.PutUint32(body[off:], 9000)
		if _, _, err := p.CapFetchWait(q, 200); err != nil {
			b.Fatal(err)
		}
	}
}
