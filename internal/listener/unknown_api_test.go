package listener_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/loopback"
	"github.com/kproxy/kproxy/internal/proxytest"
	"github.com/kproxy/kproxy/internal/rawclient"
	"github.com/kproxy/kproxy/internal/router"
)

// Keys kmsg does not know: the next one Kafka may add, and a vendor's.
var (
	futureKey = int16(kmsg.MaxKey + 1)
	vendorKey = int16(10007)
)

func brokerVersions() []kmsg.ApiVersionsResponseApiKey {
	return []kmsg.ApiVersionsResponseApiKey{
		{ApiKey: int16(kmsg.Metadata), MinVersion: 0, MaxVersion: 12},
		{ApiKey: int16(kmsg.Heartbeat), MinVersion: 0, MaxVersion: 4},
		{ApiKey: int16(kmsg.ApiVersions), MinVersion: 0, MaxVersion: 3},
		{ApiKey: int16(kmsg.StreamsGroupHeartbeat), MinVersion: 0, MaxVersion: 0},
		{ApiKey: futureKey, MinVersion: 0, MaxVersion: 1},
		{ApiKey: vendorKey, MinVersion: 0, MaxVersion: 0},
	}
}

func startOnFakeBroker(t *testing.T, unknownAPIs string, log *zap.Logger) (*fakeBroker, *proxytest.Env) {
	t.Helper()
	b := startFakeBroker(t, brokerVersions()...)
	cfg := loopback.Config([]string{b.addr()})
	cfg.Routing.UnknownAPIs = unknownAPIs
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if log == nil {
		log = zap.NewNop()
	}
	return b, proxytest.StartProxy(t, cfg, log)
}

func advertisedKeys(t *testing.T, addr string) []int16 {
	t.Helper()
	c := dialRaw(t, addr, "client")
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(3)
	req.ClientSoftwareName, req.ClientSoftwareVersion = "test", "1"
	if _, err := c.Send(req); err != nil {
		t.Fatal(err)
	}
	r, err := c.Read()
	if err != nil {
		t.Fatal(err)
	}
	var keys []int16
	for _, k := range r.Msg.(*kmsg.ApiVersionsResponse).ApiKeys {
		keys = append(keys, k.ApiKey)
	}
	return keys
}

// TestUnknownAPIsHidden: by default, keys kmsg does not know leave the
// ApiVersions answer, and a client that sends one anyway is disconnected
// with a log line naming the key; the broker never sees it.
func TestUnknownAPIsHidden(t *testing.T) {
	log, logs := observed(t, zap.InfoLevel)
	b, env := startOnFakeBroker(t, config.UnknownAPIsHide, log)
	keys := advertisedKeys(t, env.Bootstrap())
	if slices.Contains(keys, futureKey) || slices.Contains(keys, vendorKey) {
		t.Errorf("ApiVersions lists unknown keys: %v", keys)
	}
	if !slices.Contains(keys, int16(kmsg.StreamsGroupHeartbeat)) || !slices.Contains(keys, int16(kmsg.Metadata)) {
		t.Errorf("ApiVersions lost known keys: %v", keys)
	}

	for _, key := range []int16{futureKey, vendorKey, -3} {
		c := dialRaw(t, env.Bootstrap(), "client")
		if _, err := c.Conn.Write(rawFrame(key, 0, 1, "client", []byte("payload"))); err != nil {
			t.Fatal(err)
		}
		if _, err := readRawFrame(c.Conn); !errors.Is(err, io.EOF) {
			t.Fatalf("key %d: read %v, want the connection closed", key, err)
		}
	}
	// A known API at a version newer than kproxy knows: refused too.
	c := dialRaw(t, env.Bootstrap(), "client")
	tooNew := int16(kmsg.NewPtrStreamsGroupHeartbeatRequest().MaxVersion() + 1)
	if _, err := c.Conn.Write(rawFrame(int16(kmsg.StreamsGroupHeartbeat), tooNew, 1, "client", []byte("payload"))); err != nil {
		t.Fatal(err)
	}
	if _, err := readRawFrame(c.Conn); !errors.Is(err, io.EOF) {
		t.Fatalf("StreamsGroupHeartbeat v%d: read %v, want the connection closed", tooNew, err)
	}
	for _, r := range b.requests() {
		if r.key == futureKey || r.key == vendorKey || r.key < 0 || r.key == int16(kmsg.StreamsGroupHeartbeat) {
			t.Fatalf("key %d reached the broker", r.key)
		}
	}
	if got := testutil.ToFloat64(env.Metrics.SessionCloses.WithLabelValues("unknown_api")); got != 3 {
		t.Errorf("sessions closed for unknown_api = %v, want 3", got)
	}
	// The warning is once per burst of one close reason: the first session
	// logs it.
	closed := logs.FilterMessage("session closed").FilterField(zap.String("reason", "unknown_api"))
	if closed.Len() == 0 {
		t.Fatalf("no session closed for unknown_api logged: %v", logs.All())
	}
	if err := closed.All()[0].ContextMap()["error"]; err == nil || !bytes.Contains([]byte(err.(string)), []byte("routing.unknown_apis")) {
		t.Errorf("log line does not say why: %v", closed.All()[0].ContextMap())
	}
	if got := testutil.ToFloat64(env.Metrics.FrameErrors.WithLabelValues("unknown_api")); got != 3 {
		t.Errorf("frame errors unknown_api = %v, want 3", got)
	}
}

// TestUnknownAPIsForward: with forward, unknown keys are listed as the
// broker lists them and forwarded; the answer comes back unread.
func TestUnknownAPIsForward(t *testing.T) {
	b, env := startOnFakeBroker(t, config.UnknownAPIsForward, nil)
	keys := advertisedKeys(t, env.Bootstrap())
	if !slices.Contains(keys, futureKey) || !slices.Contains(keys, vendorKey) {
		t.Errorf("ApiVersions does not list the broker's unknown keys: %v", keys)
	}
	c := dialRaw(t, env.Bootstrap(), "client")
	sent := rawFrame(vendorKey, 0, 42, "client", []byte("payload"))
	if _, err := c.Conn.Write(sent); err != nil {
		t.Fatal(err)
	}
	answer, err := readRawFrame(c.Conn)
	if err != nil {
		t.Fatal(err)
	}
	if corr := answer[4:8]; !bytes.Equal(corr, sent[8:12]) || !bytes.Equal(answer[8:], unknownAnswer) {
		t.Fatalf("answer %q, want correlation id 42 and %q", answer, unknownAnswer)
	}
	forwarded := false
	for _, r := range b.requests() {
		forwarded = forwarded || r.key == vendorKey && bytes.Equal(r.frame, sent)
	}
	if !forwarded {
		t.Fatal("the broker did not receive the frame as sent")
	}
}

// TestStreamsGroupHeartbeatForwarded: KIP-1071's heartbeat, which kfake
// does not serve, travels on the coordination lane (with Heartbeat, not
// with Metadata), reaches the broker byte for byte, and its answer comes
// back.
func TestStreamsGroupHeartbeatForwarded(t *testing.T) {
	b, env := startOnFakeBroker(t, config.UnknownAPIsHide, nil)
	c := dialRaw(t, env.Bootstrap(), "streams-app")
	send := func(req kmsg.Request) []byte {
		corr, err := c.Send(req)
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.Read()
		if err != nil {
			t.Fatalf("%s: %v", kmsg.NameForKey(req.Key()), err)
		}
		if r.CorrelationID != corr {
			t.Fatalf("answer %d, want %d", r.CorrelationID, corr)
		}
		return rawclient.EncodeRequest(req, corr, c.ClientID)
	}
	meta := kmsg.NewPtrMetadataRequest()
	meta.SetVersion(9)
	send(meta)
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.SetVersion(4)
	hb.Group, hb.MemberID, hb.Generation = "app", "m", 1
	send(hb)
	shb := kmsg.NewPtrStreamsGroupHeartbeatRequest()
	shb.SetVersion(0)
	shb.Group, shb.MemberID, shb.MemberEpoch, shb.RebalanceTimeoutMillis = "app", "m", 0, 30000
	sentFrame := send(shb)

	conn := map[int16]int{}
	var got []byte
	for _, r := range b.requests() {
		conn[r.key] = r.conn
		if r.key == int16(kmsg.StreamsGroupHeartbeat) {
			got = r.frame
		}
	}
	if !bytes.Equal(got, sentFrame) {
		t.Fatalf("StreamsGroupHeartbeat reached the broker as %x, sent %x", got, sentFrame)
	}
	if conn[int16(kmsg.StreamsGroupHeartbeat)] != conn[int16(kmsg.Heartbeat)] || conn[int16(kmsg.StreamsGroupHeartbeat)] == conn[int16(kmsg.Metadata)] {
		t.Fatalf("upstream connections by key: %v; StreamsGroupHeartbeat must share Heartbeat's (coordination), not Metadata's (default)", conn)
	}
	if got := testutil.ToFloat64(env.Metrics.Requests.WithLabelValues("coordination", "StreamsGroupHeartbeat")); got != 1 {
		t.Errorf("requests{coordination, StreamsGroupHeartbeat} = %v, want 1", got)
	}
}

// TestStreamsGroupHeartbeatArmsFetchWaitBudget: on a strict session, a
// StreamsGroupHeartbeat is a group member's request like the other
// heartbeats, so the session's following long polls are capped at
// routing.fetch_wait_budget.
func TestStreamsGroupHeartbeatArmsFetchWaitBudget(t *testing.T) {
	b, env := startOnFakeBroker(t, config.UnknownAPIsHide, nil)
	c := dialRaw(t, env.Bootstrap(), "streams-app") // strict: nothing says relaxed
	shb := kmsg.NewPtrStreamsGroupHeartbeatRequest()
	shb.Group, shb.MemberID, shb.RebalanceTimeoutMillis = "app", "m", 30000
	fetch := rawFetch("t", 5*time.Second)
	for _, req := range []kmsg.Request{shb, fetch} {
		if _, err := c.Send(req); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(); err != nil {
			t.Fatalf("%s: %v", kmsg.NameForKey(req.Key()), err)
		}
	}
	p := router.NewProtocol()
	for _, r := range b.requests() {
		if r.key != int16(kmsg.Fetch) {
			continue
		}
		q, err := p.ParseRequest(r.frame[4:])
		if err != nil {
			t.Fatal(err)
		}
		off, err := p.FetchMaxWaitOffset(&q)
		if err != nil {
			t.Fatal(err)
		}
		budget := env.Config.Routing.FetchWaitBudget
		if got := time.Duration(binary.BigEndian.Uint32(r.frame[4+off:])) * time.Millisecond; got != budget {
			t.Fatalf("the broker got MaxWaitMillis %v after a StreamsGroupHeartbeat, want the budget %v", got, budget)
		}
		return
	}
	t.Fatal("no Fetch reached the broker")
}
