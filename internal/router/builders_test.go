package router

import (
	"encoding/binary"
	"fmt"
	"net"
	"sort"
	"strconv"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Responses in these tests name upstream brokers "b<node>.upstream.internal";
// no byte sequence "upstream" may survive a rewrite.
const (
	upstreamMark = "upstream"
	proxyHost    = "proxy.local"
	testCorr     = 0x0badcafe
	notLeader    = 6 // NOT_LEADER_OR_FOLLOWER
)

// addrFunc gives the address a response names for a node.
type addrFunc func(node int32) (string, int32)

func upstream(node int32) (string, int32) {
	return fmt.Sprintf("b%d.upstream.internal", node), 9092
}

func advertised(node int32) (string, int32) { return proxyHost, 20000 + node }

// fakeMap advertises every node at proxyHost and records what it was asked.
type fakeMap struct {
	asked       map[int32]string
	controllers map[int32]string // AdvertiseController
	err         error
}

func newFakeMap() *fakeMap {
	return &fakeMap{asked: map[int32]string{}, controllers: map[int32]string{}}
}

// AdvertiseController puts controllers 10000 ports above brokers.
func (m *fakeMap) AdvertiseController(node int32, host string, port int32) (string, int32, error) {
	if m.err != nil {
		return "", 0, m.err
	}
	m.controllers[node] = net.JoinHostPort(host, strconv.Itoa(int(port)))
	h, p := advertisedController(node)
	return h, p, nil
}

func advertisedController(node int32) (string, int32) { return proxyHost, 30000 + node }

func (m *fakeMap) Advertise(node int32, host string, port int32) (string, int32, error) {
	if m.err != nil {
		return "", 0, m.err
	}
	m.asked[node] = net.JoinHostPort(host, strconv.Itoa(int(port)))
	h, p := advertised(node)
	return h, p, nil
}

func (m *fakeMap) nodes() []int32 {
	var ns []int32
	for n := range m.asked {
		ns = append(ns, n)
	}
	sort.Slice(ns, func(i, j int) bool { return ns[i] < ns[j] })
	return ns
}

// identityMap keeps every address: responses must come back untouched.
type identityMap struct{}

func (identityMap) Advertise(_ int32, host string, port int32) (string, int32, error) {
	return host, port, nil
}

func (identityMap) AdvertiseController(_ int32, host string, port int32) (string, int32, error) {
	return host, port, nil
}

// benchMap advertises without recording, so benchmarks count only the
// rewriter's allocations.
type benchMap struct{}

func (benchMap) Advertise(node int32, _ string, _ int32) (string, int32, error) {
	h, p := advertised(node)
	return h, p, nil
}

func (benchMap) AdvertiseController(node int32, _ string, _ int32) (string, int32, error) {
	h, p := advertisedController(node)
	return h, p, nil
}

// encodeFrame frames resp as a broker would answer a key/version request.
func encodeFrame(p *Protocol, key, version int16, resp kmsg.Response) []byte {
	resp.SetVersion(version)
	out := binary.BigEndian.AppendUint32(make([]byte, 4), testCorr)
	if p.FlexibleResponseHeader(key, version) {
		out = append(out, 0)
	}
	out = resp.AppendTo(out)
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	return out
}

// sameSlice reports whether a and b are the same bytes in memory.
func sameSlice(a, b []byte) bool {
	return len(a) == len(b) && cap(a) == cap(b) && (len(a) == 0 || &a[0] == &b[0])
}

func strp(s string) *string { return &s }

func metadataResponse(addr addrFunc) kmsg.Response {
	r := kmsg.NewPtrMetadataResponse()
	r.ClusterID = strp("cluster-1")
	r.ControllerID = 2
	for _, n := range []int32{1, 2, 3} {
		b := kmsg.NewMetadataResponseBroker()
		b.NodeID = n
		b.Host, b.Port = addr(n)
		b.Rack = strp("rack-" + strconv.Itoa(int(n)))
		r.Brokers = append(r.Brokers, b)
	}
	for i := range 3 {
		t := kmsg.NewMetadataResponseTopic()
		t.Topic = strp("topic-" + strconv.Itoa(i))
		t.TopicID = [16]byte{byte(i + 1)}
		for p := range int32(3) {
			pt := kmsg.NewMetadataResponseTopicPartition()
			pt.Partition = p
			pt.Leader = p%3 + 1
			pt.Replicas = []int32{1, 2, 3}
			pt.ISR = []int32{1, 2, 3}
			t.Partitions = append(t.Partitions, pt)
		}
		r.Topics = append(r.Topics, t)
	}
	return r
}

// findCoordinatorResponse answers node 2 at top level (v0–v3) and nodes 1, 2
// plus an error entry in Coordinators (v4+).
func findCoordinatorResponse(addr addrFunc) kmsg.Response {
	r := kmsg.NewPtrFindCoordinatorResponse()
	r.NodeID = 2
	r.Host, r.Port = addr(2)
	for _, n := range []int32{1, 2} {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key = "group-" + strconv.Itoa(int(n))
		c.NodeID = n
		c.Host, c.Port = addr(n)
		r.Coordinators = append(r.Coordinators, c)
	}
	r.Coordinators = append(r.Coordinators, coordinatorError("group-gone"))
	return r
}

// coordinatorError is the shape of a COORDINATOR_NOT_AVAILABLE entry.
func coordinatorError(key string) kmsg.FindCoordinatorResponseCoordinator {
	c := kmsg.NewFindCoordinatorResponseCoordinator()
	c.Key, c.NodeID, c.Host, c.Port = key, -1, "", -1
	c.ErrorCode = 15
	c.ErrorMessage = strp("coordinator not available")
	return c
}

func describeClusterResponse(addr addrFunc) kmsg.Response {
	r := kmsg.NewPtrDescribeClusterResponse()
	r.ClusterID = "cluster-1"
	r.ControllerID = 1
	r.EndpointType = 1 // brokers; TestDescribeClusterControllers asks for controllers
	for _, n := range []int32{1, 4} {
		b := kmsg.NewDescribeClusterResponseBroker()
		b.NodeID = n
		b.Host, b.Port = addr(n)
		b.IsFenced = n == 4
		r.Brokers = append(r.Brokers, b)
	}
	return r
}

func shareFetchResponse(addr addrFunc) kmsg.Response {
	r := kmsg.NewPtrShareFetchResponse()
	t := kmsg.NewShareFetchResponseTopic()
	t.TopicID = [16]byte{7}
	p := kmsg.NewShareFetchResponseTopicPartition()
	p.ErrorCode = notLeader
	p.CurrentLeader.LeaderID, p.CurrentLeader.LeaderEpoch = 3, 9
	p.Records = []byte("records")
	t.Partitions = append(t.Partitions, p)
	r.Topics = append(r.Topics, t)
	for _, n := range []int32{3, 5} {
		e := kmsg.NewShareFetchResponseNodeEndpoint()
		e.NodeID = n
		e.Host, e.Port = addr(n)
		e.Rack = strp("rack-a")
		r.NodeEndpoints = append(r.NodeEndpoints, e)
	}
	return r
}

func shareAcknowledgeResponse(addr addrFunc) kmsg.Response {
	r := kmsg.NewPtrShareAcknowledgeResponse()
	t := kmsg.NewShareAcknowledgeResponseTopic()
	t.TopicID = [16]byte{7}
	p := kmsg.NewShareAcknowledgeResponseTopicPartition()
	p.ErrorCode = notLeader
	t.Partitions = append(t.Partitions, p)
	r.Topics = append(r.Topics, t)
	e := kmsg.NewShareAcknowledgeResponseNodeEndpoint()
	e.NodeID = 3
	e.Host, e.Port = addr(3)
	r.NodeEndpoints = append(r.NodeEndpoints, e)
	return r
}

// produceResponse has an ok partition with error records and a
// NOT_LEADER_OR_FOLLOWER partition with CurrentLeader (a partition-level
// tag); a nil addr leaves NodeEndpoints out.
func produceResponse(addr addrFunc) *kmsg.ProduceResponse {
	r := kmsg.NewPtrProduceResponse()
	r.ThrottleMillis = 5
	for i := range 2 {
		t := kmsg.NewProduceResponseTopic()
		t.Topic = "orders-" + strconv.Itoa(i)
		t.TopicID = [16]byte{byte(i + 1), 0xff}
		ok := kmsg.NewProduceResponseTopicPartition()
		ok.BaseOffset = 1 << 40
		ok.ErrorRecords = []kmsg.ProduceResponseTopicPartitionErrorRecord{{RelativeOffset: 3, ErrorMessage: strp("bad record")}}
		ok.ErrorMessage = strp("partly failed")
		moved := kmsg.NewProduceResponseTopicPartition()
		moved.Partition = 1
		moved.ErrorCode = notLeader
		moved.CurrentLeader.LeaderID, moved.CurrentLeader.LeaderEpoch = 3, 12
		t.Partitions = append(t.Partitions, ok, moved)
		r.Topics = append(r.Topics, t)
	}
	if addr != nil {
		for _, n := range []int32{3, 4} {
			b := kmsg.NewProduceResponseBroker()
			b.NodeID = n
			b.Host, b.Port = addr(n)
			b.Rack = strp("rack-b")
			r.Brokers = append(r.Brokers, b)
		}
	}
	return r
}

// fetchResponse spreads recordBytes of records over two partitions, with
// aborted transactions and every partition-level tag; a nil addr leaves
// NodeEndpoints out.
func fetchResponse(addr addrFunc, recordBytes int) *kmsg.FetchResponse {
	r := kmsg.NewPtrFetchResponse()
	r.SessionID = 77
	records := make([]byte, recordBytes/2) // two partitions carry records
	for i := range records {
		records[i] = byte(i * 31) // never a run that looks like a short varint
	}
	for i := range 2 {
		t := kmsg.NewFetchResponseTopic()
		t.Topic = "events-" + strconv.Itoa(i)
		t.TopicID = [16]byte{byte(i + 1), 0xee}
		for p := range int32(2) {
			pt := kmsg.NewFetchResponseTopicPartition()
			pt.Partition = p
			pt.HighWatermark, pt.LastStableOffset, pt.LogStartOffset = 1000, 990, 10
			pt.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{{ProducerID: 9, FirstOffset: 995}}
			pt.RecordBatches = records
			if p == 1 {
				pt.ErrorCode = notLeader
				pt.RecordBatches = nil
				pt.AbortedTransactions = nil
				pt.CurrentLeader.LeaderID, pt.CurrentLeader.LeaderEpoch = 3, 4
				pt.DivergingEpoch.Epoch, pt.DivergingEpoch.EndOffset = 2, 900
				pt.SnapshotID.Epoch, pt.SnapshotID.EndOffset = 1, 5
				pt.UnknownTags.Set(9, []byte("future partition tag"))
			}
			t.Partitions = append(t.Partitions, pt)
		}
		r.Topics = append(r.Topics, t)
	}
	if addr != nil {
		for _, n := range []int32{3, 6} {
			b := kmsg.NewFetchResponseBroker()
			b.NodeID = n
			b.Host, b.Port = addr(n)
			r.Brokers = append(r.Brokers, b)
		}
	}
	return r
}

// requestBody is a request frame body (no size prefix) as a client sends
// it: header v1, or v2 for a flexible version, then the kmsg-encoded
// request. A nil clientID is encoded as a null string.
func requestBody(p *Protocol, req kmsg.Request, corr int32, clientID *string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	if clientID == nil {
		b = binary.BigEndian.AppendUint16(b, 0xffff)
	} else {
		b = binary.BigEndian.AppendUint16(b, uint16(len(*clientID)))
		b = append(b, *clientID...)
	}
	if p.FlexibleRequest(req.Key(), req.GetVersion()) {
		b = append(b, 0)
	}
	return req.AppendTo(b)
}
