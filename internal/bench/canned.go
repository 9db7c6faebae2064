package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/internal/listener"
	"github.com/kproxy/kproxy/internal/loopback"
)

// cannedBroker answers every Metadata request with one prepared answer: a
// single broker (itself) and one topic of n partitions, encoded once per
// version asked. Building a 20,000-partition answer costs kfake far more
// than any path adds, and on a busy machine its variance would hide the
// path's cost, which is what the large-Metadata rows measure.
type cannedBroker struct {
	ln         net.Listener
	partitions int32
	wg         sync.WaitGroup

	mu      sync.Mutex
	answers map[int16][]byte // body by version
	conns   map[net.Conn]struct{}
}

func newCannedBroker(partitions int32) (*cannedBroker, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &cannedBroker{ln: ln, partitions: partitions, answers: map[int16][]byte{}, conns: map[net.Conn]struct{}{}}
	b.wg.Add(1)
	go b.serve()
	return b, nil
}

func (b *cannedBroker) addr() string { return b.ln.Addr().String() }

func (b *cannedBroker) serve() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		if b.conns == nil {
			b.mu.Unlock()
			_ = c.Close()
			return
		}
		b.conns[c] = struct{}{}
		b.mu.Unlock()
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			_ = b.answer(c)
			_ = c.Close()
			b.mu.Lock()
			delete(b.conns, c)
			b.mu.Unlock()
		}()
	}
}

// answer reads requests until the connection ends; anything but Metadata
// ends it.
func (b *cannedBroker) answer(c net.Conn) error {
	br := bufio.NewReader(c)
	var hdr [12]byte
	var req []byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return err
		}
		size := int(binary.BigEndian.Uint32(hdr[:4]))
		key := int16(binary.BigEndian.Uint16(hdr[4:]))
		version := int16(binary.BigEndian.Uint16(hdr[6:]))
		if size < 8 || size > 1<<20 || key != kmsg.Metadata.Int16() {
			return fmt.Errorf("canned broker: request key %d, size %d", key, size)
		}
		if cap(req) < size-8 {
			req = make([]byte, size-8)
		}
		if _, err := io.ReadFull(br, req[:size-8]); err != nil {
			return err
		}
		body, err := b.body(version)
		if err != nil {
			return err
		}
		out := make([]byte, 8, 9)
		binary.BigEndian.PutUint32(out, uint32(4+len(body)+flexHeaderLen(version)))
		copy(out[4:], hdr[8:12]) // correlation id
		if flexHeaderLen(version) == 1 {
			out = append(out, 0)
		}
		if _, err := (&net.Buffers{out, body}).WriteTo(c); err != nil {
			return err
		}
	}
}

// flexHeaderLen is the response header's tag section: Metadata v9+.
func flexHeaderLen(version int16) int {
	if version >= 9 {
		return 1
	}
	return 0
}

func (b *cannedBroker) body(version int16) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if body, ok := b.answers[version]; ok {
		return body, nil
	}
	host, portStr, _ := net.SplitHostPort(b.addr())
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, err
	}
	r := kmsg.NewPtrMetadataResponse()
	r.SetVersion(version)
	r.ClusterID = kmsg.StringPtr("canned")
	r.ControllerID = 0
	br := kmsg.NewMetadataResponseBroker()
	br.NodeID, br.Host, br.Port = 0, host, int32(port)
	r.Brokers = append(r.Brokers, br)
	t := kmsg.NewMetadataResponseTopic()
	t.Topic = kmsg.StringPtr(bigTopic(b.partitions))
	t.TopicID = [16]byte{1}
	for i := range b.partitions {
		p := kmsg.NewMetadataResponseTopicPartition()
		p.Partition, p.Leader, p.LeaderEpoch = i, 0, 1
		p.Replicas, p.ISR = []int32{0}, []int32{0}
		t.Partitions = append(t.Partitions, p)
	}
	r.Topics = append(r.Topics, t)
	body := r.AppendTo(nil)
	b.answers[version] = body
	return body, nil
}

func (b *cannedBroker) close() {
	_ = b.ln.Close()
	b.mu.Lock()
	conns := b.conns
	b.conns = nil
	b.mu.Unlock()
	for c := range conns {
		_ = c.Close()
	}
	b.wg.Wait()
}

// cannedEnv is a canned broker with a relay and kproxy in front of it.
type cannedEnv struct {
	broker *cannedBroker
	relay  *relay
	proxy  *listener.Server
	paths  [3]path
}

func startCannedEnv(partitions int32) (_ *cannedEnv, err error) {
	ce := &cannedEnv{}
	defer func() {
		if err != nil {
			ce.close()
		}
	}()
	if ce.broker, err = newCannedBroker(partitions); err != nil {
		return nil, err
	}
	addrs := []string{ce.broker.addr()}
	if ce.relay, err = newRelay(addrs); err != nil {
		return nil, err
	}
	if ce.proxy, err = startProxy(loopback.Config(addrs)); err != nil {
		return nil, err
	}
	ce.paths = [3]path{
		{name: "direct", raw: addrs[0]},
		{name: "relay", raw: ce.relay.addrs[addrs[0]]},
		{name: "kproxy", raw: ce.proxy.BrokerAddrs()[0]},
	}
	return ce, nil
}

func (ce *cannedEnv) close() {
	if ce.proxy != nil {
		stopProxy(ce.proxy)
	}
	if ce.relay != nil {
		ce.relay.close()
	}
	if ce.broker != nil {
		ce.broker.close()
	}
}

// measureBigMetadata runs the large-Metadata round trips, one canned
// broker per size.
func (e *env) measureBigMetadata(ctx context.Context, res *Results) error {
	for _, n := range bigTopics {
		ce, err := startCannedEnv(n)
		if err != nil {
			return err
		}
		// Fewer round trips as the answer grows, so that each row takes
		// about as long as the small Metadata row.
		samples := max(10, min(e.opts.Samples, e.opts.Samples*3000/int(n)))
		w := workload{wMetadataBig(n), func(ctx context.Context, p path) (sample, error) {
			return e.roundTripsN(ctx, p, samples, metadataRequestFor(bigTopic(n)))
		}}
		e.logf("workload: %s", w.name)
		err = e.alternateOver(ctx, res, w, ce.paths)
		ce.close()
		if err != nil {
			return fmt.Errorf("%s: %w", w.name, err)
		}
	}
	return nil
}
