package kafka4

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// roundTrip sends req on a new connection and reads the answer's body (the
// correlation id and any header tags are left in).
func roundTrip(t *testing.T, addr string, req kmsg.Request) ([]byte, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(kmsg.NewRequestFormatter(kmsg.FormatterClientID("t")).AppendRequest(nil, req, 7)); err != nil {
		t.Fatal(err)
	}
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		return nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	_, err = io.ReadFull(conn, body)
	return body, err
}

// oneBroker is a kfake cluster of one broker with topic "t", closed when
// the test ends.
func oneBroker(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestFloorsCloseRemovedVersionsAndAdvertiseKafka4Minimums(t *testing.T) {
	c := oneBroker(t)
	b, err := Floors(c)
	if err != nil {
		t.Fatal(err)
	}
	addr := c.ListenAddrs()[0]

	av := kmsg.NewPtrApiVersionsRequest() // v0: what a 0.10 client asks
	body, err := roundTrip(t, addr, av)
	if err != nil {
		t.Fatalf("api versions v0: %v", err)
	}
	resp := av.ResponseKind().(*kmsg.ApiVersionsResponse)
	if err := resp.ReadFrom(body[4:]); err != nil {
		t.Fatal(err)
	}
	mins := map[kmsg.Key]int16{}
	for _, k := range resp.ApiKeys {
		mins[kmsg.Key(k.ApiKey)] = k.MinVersion
	}
	for key, want := range map[kmsg.Key]int16{
		kmsg.Produce: 0, kmsg.Fetch: 4, kmsg.ListOffsets: 1, kmsg.OffsetCommit: 2,
		kmsg.OffsetFetch: 1, kmsg.JoinGroup: 2, kmsg.CreateTopics: 2, kmsg.DeleteTopics: 1,
		kmsg.Metadata: 0, kmsg.FindCoordinator: 0,
	} {
		if got, ok := mins[key]; !ok || got != want {
			t.Errorf("ApiVersions lists %s min %d (listed %v), want %d", key.Name(), got, ok, want)
		}
	}

	// Removed versions close the connection; their successors are served.
	lo := kmsg.NewPtrListOffsetsRequest()
	lo.Version = 0
	if _, err := roundTrip(t, addr, lo); !errors.Is(err, io.EOF) {
		t.Errorf("ListOffsets v0: %v, want the connection closed", err)
	}
	prod := kmsg.NewPtrProduceRequest()
	prod.Version = 2
	if _, err := roundTrip(t, addr, prod); !errors.Is(err, io.EOF) {
		t.Errorf("Produce v2: %v, want the connection closed", err)
	}
	lo.Version = 1
	if _, err := roundTrip(t, addr, lo); err != nil {
		t.Errorf("ListOffsets v1: %v, want an answer", err)
	}

	if n := b.Rejected(); n != 2 {
		t.Errorf("rejected %d requests, want 2 (%s)", n, b.Summary())
	}
	want := map[Request]int{{18, 0}: 1, {2, 0}: 1, {0, 2}: 1, {2, 1}: 1}
	if got := b.Requests(); len(got) != len(want) {
		t.Errorf("requests %v, want %v", got, want)
	} else {
		for r, n := range want {
			if got[r] != n {
				t.Errorf("requests %v, want %v", got, want)
			}
		}
	}
	t.Log(b.Summary())
}

func TestObserveCountsWithoutRejecting(t *testing.T) {
	c := oneBroker(t)
	b := Observe(c)
	lo := kmsg.NewPtrListOffsetsRequest()
	lo.Version = 0
	if _, err := roundTrip(t, c.ListenAddrs()[0], lo); err != nil {
		t.Fatalf("ListOffsets v0 on kfake as it is: %v", err)
	}
	if got := b.Requests()[Request{2, 0}]; got != 1 || b.Rejected() != 0 {
		t.Errorf("ListOffsets v0 counted %d, rejected %d; want 1, 0", got, b.Rejected())
	}
}

// Kafka reads an empty topic list in Metadata v0 as "every topic" (v0 has
// no null list); from v1 on, empty means none. librdkafka pinned to 0.9
// asks v0 with an empty list and takes an answer without its subscribed
// topic for the topic not existing.
func TestFloorsMetadataV0EmptyListsEveryTopic(t *testing.T) {
	c := oneBroker(t)
	b, err := Floors(c)
	if err != nil {
		t.Fatal(err)
	}
	topics := func(version int16) []string {
		t.Helper()
		req := kmsg.NewPtrMetadataRequest()
		req.Version = version
		req.Topics = []kmsg.MetadataRequestTopic{}
		body, err := roundTrip(t, c.ListenAddrs()[0], req)
		if err != nil {
			t.Fatalf("metadata v%d: %v", version, err)
		}
		resp := req.ResponseKind().(*kmsg.MetadataResponse)
		resp.Version = version
		if err := resp.ReadFrom(body[4:]); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, rt := range resp.Topics {
			names = append(names, *rt.Topic)
		}
		return names
	}
	if got := topics(0); len(got) != 1 || got[0] != "t" {
		t.Errorf("metadata v0 with no topics answered topics %q, want [t]", got)
	}
	if got := topics(1); len(got) != 0 {
		t.Errorf("metadata v1 with an empty topic list answered topics %q, want none", got)
	}
	if got := b.Requests(); got[Request{3, 0}] != 1 || got[Request{3, 1}] != 1 {
		t.Errorf("requests %s, want Metadata v0 and v1 once each", b.Summary())
	}
}
