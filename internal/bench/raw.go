package bench

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/internal/rawclient"
)

// rawConn is a single-socket client that sends pre-encoded frames and reads
// answers without decoding them, so that the client costs next to nothing
// and the path is what is measured.
type rawConn struct {
	conn net.Conn
	br   *bufio.Reader
	corr int32
	want []int32 // correlation ids owed, in order, from head
	head int
	buf  []byte
}

func dialRaw(addr string) (*rawConn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute)) // a stuck path fails, never hangs
	return &rawConn{conn: c, br: bufio.NewReaderSize(c, 64<<10)}, nil
}

func (c *rawConn) close() { _ = c.conn.Close() }

// frame encodes req; send patches in a fresh correlation id each time.
func (c *rawConn) frame(req kmsg.Request) []byte {
	return rawclient.EncodeRequest(req, 0, "kproxy-bench")
}

// stamp gives the frame at b[off:] the next correlation id.
func (c *rawConn) stamp(b []byte, off int) {
	c.corr++
	binary.BigEndian.PutUint32(b[off+8:], uint32(c.corr))
	c.want = append(c.want, c.corr)
}

func (c *rawConn) send(frame []byte) error {
	c.stamp(frame, 0)
	_, err := c.conn.Write(frame)
	return err
}

// recv reads one answer and checks its correlation id; it returns the
// frame's size on the wire.
func (c *rawConn) recv() (int, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
		return 0, err
	}
	size := int(binary.BigEndian.Uint32(hdr[:4]))
	corr := int32(binary.BigEndian.Uint32(hdr[4:]))
	if c.head == len(c.want) || c.want[c.head] != corr {
		return 0, fmt.Errorf("answer with correlation id %d, want %v", corr, c.want[c.head:])
	}
	if c.head++; c.head == len(c.want) {
		c.want, c.head = c.want[:0], 0
	}
	if size < 4 {
		return 0, fmt.Errorf("answer size %d", size)
	}
	if cap(c.buf) < size-4 {
		c.buf = make([]byte, size-4)
	}
	if _, err := io.ReadFull(c.br, c.buf[:size-4]); err != nil {
		return 0, err
	}
	return 4 + size, nil
}

// exchange writes a batch of n frames in one write and reads n answers,
// appending each answer's latency to lat when lat is not nil; it returns
// the answers' bytes on the wire.
func (c *rawConn) exchange(batch []byte, n int, lat *[]time.Duration) (int64, error) {
	for off := 0; off < len(batch); off += 4 + int(binary.BigEndian.Uint32(batch[off:])) {
		c.stamp(batch, off)
	}
	start := time.Now()
	if _, err := c.conn.Write(batch); err != nil {
		return 0, err
	}
	var bytes int64
	for range n {
		size, err := c.recv()
		if err != nil {
			return 0, err
		}
		bytes += int64(size)
		if lat != nil {
			*lat = append(*lat, time.Since(start))
		}
	}
	return bytes, nil
}

func apiVersionsRequest() kmsg.Request {
	r := kmsg.NewPtrApiVersionsRequest()
	r.SetVersion(3)
	r.ClientSoftwareName, r.ClientSoftwareVersion = "kproxy-bench", "1.0"
	return r
}

func metadataRequest() kmsg.Request { return metadataRequestFor(topic) }

func metadataRequestFor(name string) kmsg.Request {
	r := kmsg.NewPtrMetadataRequest()
	r.SetVersion(12)
	t := kmsg.NewMetadataRequestTopic()
	t.Topic = kmsg.StringPtr(name)
	r.Topics = append(r.Topics, t)
	return r
}

// fetchRequest asks for one partition from offset 0, without waiting: the
// synthetic cluster answers with a 1 MiB batch at once.
func fetchRequest(partition int32) kmsg.Request {
	return rawclient.FetchRequest(topic, partition, 0)
}

// mixFetchRequest is a Fetch for a partition that does not exist: a small,
// immediate answer, so the mix measures the path rather than 1 MiB copies.
func mixFetchRequest() kmsg.Request { return fetchRequest(partitions + 100) }

func heartbeatRequest() kmsg.Request {
	r := kmsg.NewPtrHeartbeatRequest()
	r.SetVersion(4)
	r.Group, r.Generation, r.MemberID = "kproxy-bench", 1, "bench-member"
	return r
}

// offsetCommitRequest is a simple (generation -1) commit, which a
// coordinator accepts without a group membership.
func offsetCommitRequest() kmsg.Request {
	r := kmsg.NewPtrOffsetCommitRequest()
	r.SetVersion(8)
	r.Group, r.Generation = "kproxy-bench", -1
	t := kmsg.NewOffsetCommitRequestTopic()
	t.Topic = topic
	p := kmsg.NewOffsetCommitRequestTopicPartition()
	p.Partition, p.Offset, p.LeaderEpoch = 0, 1, -1
	t.Partitions = append(t.Partitions, p)
	r.Topics = append(r.Topics, t)
	return r
}
