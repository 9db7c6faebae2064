// Package kafka4 makes a kfake cluster answer old protocol versions the way
// a Kafka 4.x broker does (KIP-896, KIP-724): it closes the connection on a
// request of a removed version, and its ApiVersions answer lists the raised
// minimums. kfake serves many of the removed versions; tests of clients
// that send them need a broker that does not. It is its own package, not
// part of proxytest, so that the standalone kfake process
// (test/compat/kfakeserver) does not link kproxy.
package kafka4

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Floor is the lowest version of key a Kafka 4.0 broker accepts; 0 for keys
// 4.0 did not raise.
func Floor(key int16) int16 {
	switch kmsg.Key(key) {
	case kmsg.Produce:
		return 3
	case kmsg.Fetch:
		return 4
	case kmsg.OffsetCommit, kmsg.JoinGroup, kmsg.CreateTopics, kmsg.OffsetForLeaderEpoch:
		return 2
	case kmsg.ListOffsets, kmsg.OffsetFetch, kmsg.DeleteTopics,
		kmsg.DescribeACLs, kmsg.CreateACLs, kmsg.DeleteACLs, kmsg.DescribeConfigs,
		kmsg.AlterReplicaLogDirs, kmsg.DescribeLogDirs:
		return 1
	}
	return 0
}

// Request is one API key at one version.
type Request struct {
	Key, Version int16
}

func (r Request) String() string {
	return fmt.Sprintf("%s v%d", kmsg.NameForKey(r.Key), r.Version)
}

// Broker counts the requests a cluster received, by key and version, and
// how many it rejected.
type Broker struct {
	enforce bool

	mu       sync.Mutex
	requests map[Request]int
	rejected map[Request]int
}

// Floors makes every broker of c close the connection on a request below
// Kafka 4.0's floor and list 4.0's minimums in ApiVersions. The cluster's
// maximums stay as they are (kfake.MaxVersions caps them).
func Floors(c *kfake.Cluster) (*Broker, error) {
	keys, err := advertised(c.ListenAddrs()[0])
	if err != nil {
		return nil, fmt.Errorf("asking kfake for its api versions: %w", err)
	}
	for i := range keys.ApiKeys {
		k := &keys.ApiKeys[i]
		if k.ApiKey == int16(kmsg.Produce) {
			// 4.x still lists Produce from version 0, a workaround
			// for librdkafka, while rejecting 0-2.
			k.MinVersion = 0
			continue
		}
		k.MinVersion = max(k.MinVersion, Floor(k.ApiKey))
	}
	b := newBroker(true)
	c.ControlKey(int16(kmsg.ApiVersions), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if req.GetVersion() > keys.Version {
			// kfake answers v0 with UNSUPPORTED_VERSION, as a broker
			// does; the control installed below counts it.
			return nil, nil, false
		}
		b.count(req, false)
		resp := *keys
		resp.ApiKeys = slices.Clone(keys.ApiKeys)
		resp.Version = req.GetVersion()
		return &resp, nil, true
	})
	listEveryTopicForMetadataV0(c)
	b.install(c)
	return b, nil
}

// listEveryTopicForMetadataV0 makes kfake read an empty topic list in
// Metadata v0 as Kafka does: every topic (v0 has no null list; from v1 on,
// null is every topic and empty none). kfake reads it as none, and
// librdkafka pinned to 0.9, which asks v0 with an empty list, then takes
// its subscribed topic for gone and its consumer stops. The control only
// edits the request kfake is about to answer; the count control still
// sees it.
func listEveryTopicForMetadataV0(c *kfake.Cluster) {
	c.ControlKey(int16(kmsg.Metadata), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if m := req.(*kmsg.MetadataRequest); m.Version == 0 && len(m.Topics) == 0 {
			m.Topics = nil
		}
		return nil, nil, false
	})
}

// Observe counts the requests c receives without changing how it answers.
func Observe(c *kfake.Cluster) *Broker {
	b := newBroker(false)
	b.install(c)
	return b
}

func newBroker(enforce bool) *Broker {
	return &Broker{enforce: enforce, requests: map[Request]int{}, rejected: map[Request]int{}}
}

// install runs after any key-specific control (kfake tries those first), so
// it sees every request that no other control answered.
func (b *Broker) install(c *kfake.Cluster) {
	c.Control(func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		reject := b.enforce && req.GetVersion() < Floor(req.Key())
		b.count(req, reject)
		if reject {
			return nil, fmt.Errorf("%s v%d was removed in Kafka 4.0", kmsg.NameForKey(req.Key()), req.GetVersion()), true
		}
		return nil, nil, false
	})
}

func (b *Broker) count(req kmsg.Request, rejected bool) {
	r := Request{req.Key(), req.GetVersion()}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.requests[r]++
	if rejected {
		b.rejected[r]++
	}
}

// Rejected is how many requests the broker closed the connection on.
func (b *Broker) Rejected() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, c := range b.rejected {
		n += c
	}
	return n
}

// Requests is how many requests of each key and version arrived, rejected
// ones included.
func (b *Broker) Requests() map[Request]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.requests)
}

// RejectedRequests is how many requests of each key and version the broker
// closed the connection on.
func (b *Broker) RejectedRequests() map[Request]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.rejected)
}

// Summary lists the requests by key and version, "Produce v2 ×3
// (rejected 3)", in key order: what the clients sent on the wire.
func (b *Broker) Summary() string {
	return summary(b.Requests(), b.RejectedRequests())
}

// RejectedSummary lists the rejected requests by key and version,
// "Produce v2 ×3", in key order.
func (b *Broker) RejectedSummary() string {
	return summary(b.RejectedRequests(), nil)
}

func summary(reqs, rejected map[Request]int) string {
	keys := slices.SortedFunc(maps.Keys(reqs), func(a, b Request) int {
		return cmp.Or(cmp.Compare(a.Key, b.Key), cmp.Compare(a.Version, b.Version))
	})
	parts := make([]string, 0, len(keys))
	for _, r := range keys {
		s := fmt.Sprintf("%s ×%d", r, reqs[r])
		if n := rejected[r]; n > 0 {
			s += fmt.Sprintf(" (rejected %d)", n)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// advertised is what kfake lists in ApiVersions, asked at the highest
// version kmsg knows so the answer carries features too.
func advertised(addr string) (*kmsg.ApiVersionsResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)

	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 3 // flexible, with features; every kfake serves it
	req.ClientSoftwareName, req.ClientSoftwareVersion = "kproxy-kafka4", "1"
	frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID("kproxy-kafka4")).AppendRequest(nil, req, 1)
	if _, err := conn.Write(frame); err != nil {
		return nil, err
	}
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		return nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(conn, body); err != nil {
		return nil, err
	}
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	// ApiVersions answers always carry response header v0: the
	// correlation id alone.
	if len(body) < 4 {
		return nil, fmt.Errorf("api versions answer of %d bytes", len(body))
	}
	if err := resp.ReadFrom(body[4:]); err != nil {
		return nil, err
	}
	if resp.ErrorCode != 0 {
		return nil, fmt.Errorf("api versions error code %d", resp.ErrorCode)
	}
	return resp, nil
}
