package router

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// produceWithRecords is a Produce request of version v carrying records
// for one partition of one topic, and where the records length starts in
// its body (for records of fewer than 127 bytes, not nil).
func produceWithRecords(p *Protocol, v int16, records []byte) (body []byte, lengthAt int) {
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(v)
	req.Acks = -1
	topic := kmsg.NewProduceRequestTopic()
	topic.Topic = "t"
	topic.TopicID = [16]byte{1}
	part := kmsg.NewProduceRequestTopicPartition()
	part.Records = records
	topic.Partitions = append(topic.Partitions, part)
	req.Topics = append(req.Topics, topic)
	body = requestBody(p, req, 1, strp("client"))
	at := bytes.Index(body, records)
	if p.FlexibleRequest(KeyProduce, v) {
		return body, at - 1 // a uvarint of one byte for these records
	}
	return body, at - 4
}

// TestCheckProduceLengths: a Produce whose records length runs past the
// end of its frame is refused, at every version; so is one whose head
// shows a records length past the frame's declared size, while a head
// whose lengths stay inside that size passes, and one too short to hold
// acks and timeout says so (ErrTruncated: read the frame whole).
func TestCheckProduceLengths(t *testing.T) {
	p := NewProtocol()
	records := bytes.Repeat([]byte("r"), 100)
	for v := range p.MaxVersion(KeyProduce) + 1 {
		good, at := produceWithRecords(p, v, records)
		if err := p.CheckRequest(parse(t, p, good), false); err != nil {
			t.Fatalf("v%d: well-formed Produce refused: %v", v, err)
		}
		bad := append([]byte(nil), good...)
		const over = 10 // more than the frame holds after the records
		if p.FlexibleRequest(KeyProduce, v) {
			bad[at] += over
		} else {
			binary.BigEndian.PutUint32(bad[at:], uint32(len(records)+over))
		}
		if err := p.CheckRequest(parse(t, p, bad), false); !errors.Is(err, ErrBadLength) {
			t.Fatalf("v%d: records length past the frame's end: err = %v, want ErrBadLength", v, err)
		}
		head := at + 10 // the records length and some records
		q, _ := p.ParseRequestHead(bad[:head], len(bad))
		if err := p.CheckRequest(&q, false); !errors.Is(err, ErrBadLength) {
			t.Fatalf("v%d: head showing a records length past the declared size: err = %v, want ErrBadLength", v, err)
		}
		q, _ = p.ParseRequestHead(good[:head], len(good))
		if err := p.CheckRequest(&q, false); err != nil {
			t.Fatalf("v%d: head of a well-formed Produce refused: %v", v, err)
		}
		q, _ = p.ParseRequestHead(bad[:head], len(bad)+over) // the records do fit a frame that size
		if err := p.CheckRequest(&q, false); err != nil {
			t.Fatalf("v%d: head whose records fit the declared size refused: %v", v, err)
		}
		bodyAt, _ := parse(t, p, good).BodyOffset()
		q, _ = p.ParseRequestHead(good[:bodyAt+1], len(good))
		if err := p.CheckRequest(&q, false); !errors.Is(err, ErrTruncated) {
			t.Fatalf("v%d: head without acks: err = %v, want ErrTruncated", v, err)
		}
	}
}

// TestCheckProduceAllocatesNothing: the check is on the forward path of
// every Produce, read whole or by its head.
func TestCheckProduceAllocatesNothing(t *testing.T) {
	p := NewProtocol()
	for _, v := range []int16{7, 9, 13} {
		body, at := produceWithRecords(p, v, bytes.Repeat([]byte("r"), 100))
		whole := parse(t, p, body)
		head, _ := p.ParseRequestHead(body[:at+10], len(body))
		if n := testing.AllocsPerRun(100, func() {
			if p.CheckRequest(whole, false) != nil || p.CheckRequest(&head, false) != nil {
				t.Fatal("refused")
			}
		}); n != 0 {
			t.Errorf("v%d: %v allocations per check", v, n)
		}
	}
}
