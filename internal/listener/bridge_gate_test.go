package listener

import (
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/bridge"
)

// kafka40 is what a Kafka 4.0 broker lists in ApiVersions for the keys
// these tests use: the removed versions gone, except Produce, which it
// still lists from v0 (and rejects v0-2).
func kafka40() *atomic.Pointer[bridge.Broker] {
	keys := []kmsg.ApiVersionsResponseApiKey{
		{ApiKey: 0, MinVersion: 0, MaxVersion: 12}, // Produce
		{ApiKey: 1, MinVersion: 4, MaxVersion: 17}, // Fetch
		{ApiKey: 2, MinVersion: 1, MaxVersion: 9},  // ListOffsets
		{ApiKey: 8, MinVersion: 2, MaxVersion: 9},  // OffsetCommit
		{ApiKey: 12, MinVersion: 1, MaxVersion: 4}, // Heartbeat: a floor no bridge covers (not Kafka 4.0s)
		{ApiKey: 18, MinVersion: 0, MaxVersion: 4}, // ApiVersions
		{ApiKey: 3, MinVersion: 0, MaxVersion: 12}, // Metadata
	}
	p := new(atomic.Pointer[bridge.Broker])
	p.Store(bridge.NewBroker(keys))
	return p
}

func TestGateBridgesRemovedVersions(t *testing.T) {
	e := newGateEnv(t, nil)
	e.gate.brokerAPIs = kafka40()

	produce := kmsg.NewPtrProduceRequest()
	produce.SetVersion(2)
	produce.Acks = -1
	produce.TimeoutMillis = 1000
	if v := e.gate.decide(e.frame(t, produce)); v.err != nil || v.answer != nil || v.bridgeTo != 3 || !v.expect {
		t.Errorf("Produce v2 to a Kafka 4.0 broker: %+v, want bridged to v3", v)
	}
	offsets := kmsg.NewPtrListOffsetsRequest()
	offsets.SetVersion(0)
	if v := e.gate.decide(e.frame(t, offsets)); v.bridgeTo != 1 {
		t.Errorf("ListOffsets v0: bridged to v%d, want v1", v.bridgeTo)
	}
	current := kmsg.NewPtrProduceRequest()
	current.SetVersion(9)
	current.Acks = -1
	if v := e.gate.decide(e.frame(t, current)); v.bridgeTo != 0 {
		t.Errorf("Produce v9: bridged to v%d, want forwarded as sent", v.bridgeTo)
	}
}

// An old version that nothing translates is answered UNSUPPORTED_VERSION,
// in the client's own version, never forwarded to a broker that closes the
// connection on it.
func TestGateAnswersUntranslatableVersion(t *testing.T) {
	e := newGateEnv(t, nil)
	e.gate.brokerAPIs = kafka40()
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.SetVersion(0)
	hb.Group, hb.MemberID, hb.Generation = "g", "m", 1
	v := e.gate.decide(e.frame(t, hb))
	if v.err != nil || v.answer == nil {
		t.Fatalf("Heartbeat v0 to a broker from v1: %+v, want an answer from kproxy", v)
	}
	resp := kmsg.NewPtrHeartbeatResponse()
	resp.SetVersion(0)
	if err := resp.ReadFrom(v.answer[8:]); err != nil {
		t.Fatalf("the answer does not decode at the client's v0: %v", err)
	}
	if resp.ErrorCode != 35 {
		t.Fatalf("answer error %d, want UNSUPPORTED_VERSION (35)", resp.ErrorCode)
	}
}

func TestGateBridgeOff(t *testing.T) {
	e := newGateEnv(t, func(c *config.Config) { c.Compat.VersionBridge = config.VersionBridgeOff })
	e.gate.brokerAPIs = kafka40()
	produce := kmsg.NewPtrProduceRequest()
	produce.SetVersion(2)
	produce.Acks = -1
	if v := e.gate.decide(e.frame(t, produce)); v.bridgeTo != 0 || v.answer != nil {
		t.Errorf("Produce v2 with compat.version_bridge off: %+v, want forwarded as sent", v)
	}
}
