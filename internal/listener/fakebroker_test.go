package listener_test

import (
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/internal/router"
)

// fakeBroker is a one-node Kafka upstream for APIs kfake does not serve
// (an unknown key takes a whole kfake cluster down) and for misbehaviour
// kfake is not capable of: it answers Metadata with itself as node 0,
// ApiVersions with a fixed list that includes keys kmsg does not know,
// StreamsGroupHeartbeat, Heartbeat and Fetch with an empty answer, Produce
// with no error for the partitions it names (acks=0 gets no answer, unless
// lateAcks0Answers), and any key kmsg does not know with a fixed body. It
// records every request frame and the upstream connection it came on.
type fakeBroker struct {
	ln       net.Listener
	protocol *router.Protocol
	versions []kmsg.ApiVersionsResponseApiKey
	// lateAcks0Answers: an acks=0 Produce is answered too, as some
	// non-Kafka servers do, and late: after the answer to the request that
	// follows it, just before the next answer on its connection.
	lateAcks0Answers atomic.Bool
	// resetAfter, when set, makes the broker reset a connection once it
	// has read that many bytes of a larger frame: a broker dying mid-frame.
	resetAfter atomic.Int64

	mu    sync.Mutex
	conns []net.Conn
	seen  []fakeRequest
}

type fakeRequest struct {
	conn  int // which upstream connection, counted from 1
	key   int16
	frame []byte // as received, size prefix included
}

// unknownAnswer is the body the fake broker answers unknown keys with.
var unknownAnswer = []byte("opaque answer")

func startFakeBroker(t *testing.T, versions ...kmsg.ApiVersionsResponseApiKey) *fakeBroker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &fakeBroker{ln: ln, protocol: router.NewProtocol(), versions: versions}
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, c := range b.conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns = append(b.conns, c)
			id := len(b.conns)
			b.mu.Unlock()
			go b.serve(c, id)
		}
	}()
	return b
}

func (b *fakeBroker) addr() string { return b.ln.Addr().String() }

func (b *fakeBroker) serve(c net.Conn, id int) {
	var held, late []byte // acks=0 Produce answers: owed, and due before the next answer
	for {
		var size [4]byte
		if _, err := io.ReadFull(c, size[:]); err != nil {
			return
		}
		frame := make([]byte, 4+binary.BigEndian.Uint32(size[:]))
		copy(frame, size[:])
		if cut := b.resetAfter.Load(); cut > 0 && int64(len(frame)) > cut {
			_, _ = io.ReadFull(c, frame[4:cut])
			_ = c.(*net.TCPConn).SetLinger(0)
			c.Close()
			return
		}
		if _, err := io.ReadFull(c, frame[4:]); err != nil {
			return
		}
		q, err := b.protocol.ParseRequest(frame[4:])
		if err != nil {
			return
		}
		h := q.RequestHeader
		req := fakeRequest{conn: id, key: h.Key, frame: frame}
		b.mu.Lock()
		b.seen = append(b.seen, req)
		b.mu.Unlock()
		out := b.answer(&q)
		if acks, err := router.ProduceAcks(&q); h.Key == int16(kmsg.Produce) && err == nil && acks == 0 {
			if b.lateAcks0Answers.Load() {
				held = append(held, out...)
			}
			continue
		}
		if _, err := c.Write(append(late, out...)); err != nil {
			return
		}
		late, held = held, nil
	}
}

func (b *fakeBroker) answer(q *router.Request) []byte {
	h := q.RequestHeader
	var resp kmsg.Response
	switch kmsg.Key(h.Key) {
	case kmsg.Metadata:
		m := kmsg.NewPtrMetadataResponse()
		host, port, _ := net.SplitHostPort(b.addr())
		br := kmsg.NewMetadataResponseBroker()
		br.Host = host
		p, _ := strconv.Atoi(port)
		br.Port = int32(p)
		m.Brokers = append(m.Brokers, br)
		resp = m
	case kmsg.ApiVersions:
		a := kmsg.NewPtrApiVersionsResponse()
		a.ApiKeys = b.versions
		resp = a
	case kmsg.StreamsGroupHeartbeat:
		s := kmsg.NewPtrStreamsGroupHeartbeatResponse()
		s.MemberEpoch = 7
		s.HeartbeatIntervalMillis = 1000
		resp = s
	case kmsg.Heartbeat:
		resp = kmsg.NewPtrHeartbeatResponse()
	case kmsg.Fetch:
		resp = kmsg.NewPtrFetchResponse() // nothing to fetch, at once
	case kmsg.Produce:
		resp = produced(q)
	default:
		if b.protocol.Known(h.Key) {
			return nil // not served: the test that sends it fails on the timeout
		}
		out := binary.BigEndian.AppendUint32(nil, uint32(4+len(unknownAnswer)))
		out = binary.BigEndian.AppendUint32(out, uint32(h.CorrelationID))
		return append(out, unknownAnswer...)
	}
	resp.SetVersion(min(h.Version, resp.MaxVersion()))
	out := binary.BigEndian.AppendUint32(make([]byte, 4), uint32(h.CorrelationID))
	if b.protocol.FlexibleResponseHeader(h.Key, h.Version) {
		out = append(out, 0)
	}
	out = resp.AppendTo(out)
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	return out
}

// produced answers a Produce request: every partition it names, no error.
func produced(q *router.Request) kmsg.Response {
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(q.Version)
	resp := kmsg.NewPtrProduceResponse()
	at, err := q.BodyOffset()
	if err != nil || req.ReadFrom(q.Frame[at:]) != nil {
		return resp
	}
	for _, t := range req.Topics {
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewProduceResponseTopicPartition()
			rp.Partition = p.Partition
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// requests returns what the broker received so far.
func (b *fakeBroker) requests() []fakeRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]fakeRequest(nil), b.seen...)
}

// rawFrame is a request frame of any key, known or not: size, key,
// version, correlation id, client id, body (header v1).
func rawFrame(key, version int16, corr int32, clientID string, body []byte) []byte {
	out := make([]byte, 4, 32+len(body))
	out = binary.BigEndian.AppendUint16(out, uint16(key))
	out = binary.BigEndian.AppendUint16(out, uint16(version))
	out = binary.BigEndian.AppendUint32(out, uint32(corr))
	out = binary.BigEndian.AppendUint16(out, uint16(len(clientID)))
	out = append(out, clientID...)
	out = append(out, body...)
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	return out
}

// readRawFrame reads one answer frame, size prefix included.
func readRawFrame(c net.Conn) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		return nil, err
	}
	frame := make([]byte, 4+binary.BigEndian.Uint32(size[:]))
	copy(frame, size[:])
	_, err := io.ReadFull(c, frame[4:])
	return frame, err
}
