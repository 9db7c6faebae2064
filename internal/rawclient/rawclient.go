// Package rawclient is a legacy single-socket Kafka client built from kmsg
// frames: every request goes over one connection, pipelined, the way a
// client without per-purpose connections sends them. Tests use it to show
// head-of-line blocking; `kproxy-dev demo --workload` uses it to show it live.
package rawclient

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/internal/upstream"
)

// Conn is one client connection; it is not safe for concurrent use.
type Conn struct {
	Conn     net.Conn
	ClientID string
	corr     int32
	sent     map[int32]kmsg.Request
}

// Dial opens a raw connection.
func Dial(addr string) (*Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return Wrap(c), nil
}

// Wrap makes a raw client of an open connection (TLS, say).
func Wrap(c net.Conn) *Conn {
	return &Conn{Conn: c, ClientID: "raw-client", sent: map[int32]kmsg.Request{}}
}

// Send writes one request at the version set on it and returns its
// correlation id.
func (r *Conn) Send(req kmsg.Request) (int32, error) {
	r.corr++
	corr := r.corr
	r.sent[corr] = req
	_, err := r.Conn.Write(EncodeRequest(req, corr, r.ClientID))
	return corr, err
}

// SendAll writes the requests in one write, so that they reach the other
// end together, and returns their correlation ids.
func (r *Conn) SendAll(reqs ...kmsg.Request) ([]int32, error) {
	var frames []byte
	corrs := make([]int32, len(reqs))
	for i, req := range reqs {
		r.corr++
		corrs[i] = r.corr
		r.sent[r.corr] = req
		frames = upstream.AppendRequest(frames, req, r.corr, r.ClientID)
	}
	_, err := r.Conn.Write(frames)
	return corrs, err
}

// Response is one decoded answer.
type Response struct {
	CorrelationID int32
	Msg           kmsg.Response
	At            time.Time
}

// Read reads the next answer on the connection and decodes it as the
// response to the request with its correlation id.
func (r *Conn) Read() (Response, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r.Conn, hdr[:]); err != nil {
		return Response{}, err
	}
	at := time.Now()
	size := binary.BigEndian.Uint32(hdr[:4])
	corr := int32(binary.BigEndian.Uint32(hdr[4:]))
	body := make([]byte, size-4)
	if _, err := io.ReadFull(r.Conn, body); err != nil {
		return Response{}, err
	}
	req, ok := r.sent[corr]
	if !ok {
		return Response{}, fmt.Errorf("answer with correlation id %d matches no request", corr)
	}
	delete(r.sent, corr)
	resp := req.ResponseKind()
	if err := upstream.DecodeResponse(body, req, resp); err != nil {
		return Response{}, err
	}
	return Response{CorrelationID: corr, Msg: resp, At: at}, nil
}

// Close closes the connection.
func (r *Conn) Close() error { return r.Conn.Close() }

// EncodeRequest frames a request: size, header v1/v2, body.
func EncodeRequest(req kmsg.Request, corr int32, clientID string) []byte {
	return upstream.AppendRequest(make([]byte, 0, 256), req, corr, clientID)
}

// FetchRequest asks for one partition from offset 0 with a long poll.
func FetchRequest(topic string, partition int32, maxWait time.Duration) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(11) // topic names, no sessions needed
	req.ReplicaID = -1
	req.MaxWaitMillis = int32(maxWait / time.Millisecond)
	req.MinBytes = 1
	req.MaxBytes = 1 << 20
	t := kmsg.NewFetchRequestTopic()
	t.Topic = topic
	p := kmsg.NewFetchRequestTopicPartition()
	p.Partition = partition
	p.FetchOffset = 0
	p.PartitionMaxBytes = 1 << 20
	p.CurrentLeaderEpoch = -1
	p.LogStartOffset = -1
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	return req
}

// ProduceRequest carries one record to one partition.
func ProduceRequest(topic string, partition int32, acks int16, value []byte) *kmsg.ProduceRequest {
	return produceRequest(7, topic, partition, acks, RecordBatch(value))
}

// LegacyProduceRequest is a Produce v2 (Kafka 0.10), acks=1, of set, a
// message set of format v0 or v1 (MessageV1, GzipMessageSet): a version
// Kafka 4.0 removed.
func LegacyProduceRequest(topic string, partition int32, set []byte) *kmsg.ProduceRequest {
	return produceRequest(2, topic, partition, 1, set)
}

func produceRequest(version int16, topic string, partition int32, acks int16, records []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(version)
	req.Acks = acks
	req.TimeoutMillis = 5000
	t := kmsg.NewProduceRequestTopic()
	t.Topic = topic
	p := kmsg.NewProduceRequestTopicPartition()
	p.Partition = partition
	p.Records = records
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	return req
}

// RecordBatch encodes a v2 batch holding one record.
func RecordBatch(value []byte) []byte {
	return recordBatch(value, -1, -1, -1, 0)
}

// TxnRecordBatch encodes a transactional v2 batch holding one record, with
// sequence number seq of producer id/epoch.
func TxnRecordBatch(value []byte, producerID int64, epoch int16, seq int32) []byte {
	const transactional = 0x10
	return recordBatch(value, producerID, epoch, seq, transactional)
}

func recordBatch(value []byte, producerID int64, epoch int16, seq int32, attrs int16) []byte {
	rec := kmsg.Record{Value: value}
	rec.Length = int32(len(rec.AppendTo(nil)) - 1) // everything after the 1-byte varint 0
	recBytes := rec.AppendTo(nil)
	batch := kmsg.RecordBatch{
		FirstOffset:          0,
		PartitionLeaderEpoch: -1,
		Magic:                2,
		LastOffsetDelta:      0,
		FirstTimestamp:       time.Now().UnixMilli(),
		MaxTimestamp:         time.Now().UnixMilli(),
		Attributes:           attrs,
		ProducerID:           producerID,
		ProducerEpoch:        epoch,
		FirstSequence:        seq,
		NumRecords:           1,
		Records:              recBytes,
	}
	raw := batch.AppendTo(nil)
	batch.Length = int32(len(raw) - 12)
	raw = batch.AppendTo(nil)
	batch.CRC = int32(crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return batch.AppendTo(nil)
}

// MessageV1 appends a message of format v1 (Kafka 0.10) with its CRC.
func MessageV1(dst []byte, offset int64, attributes int8, value []byte) []byte {
	msg := kmsg.MessageV1{Offset: offset, Magic: 1, Attributes: attributes, Timestamp: 1700000000000, Value: value}
	msg.MessageSize = int32(len(msg.AppendTo(nil)) - 12)
	start := len(dst)
	dst = msg.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start+12:], crc32.ChecksumIEEE(dst[start+16:]))
	return dst
}

// GzipMessageSet is a message set of format v1 holding one gzip wrapper
// around n messages of size zero bytes each: small on the wire, n×size
// once inflated.
func GzipMessageSet(n, size int) []byte {
	var inner []byte
	for i := range n {
		inner = MessageV1(inner, int64(i), 0, make([]byte, size))
	}
	var z bytes.Buffer
	w := gzip.NewWriter(&z)
	_, _ = w.Write(inner) // a bytes.Buffer takes every write
	_ = w.Close()
	return MessageV1(nil, int64(n-1), 1, z.Bytes()) // attributes 1: gzip
}
