package listener

import (
	"encoding/binary"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/metrics"
	"github.com/kproxy/kproxy/internal/router"
)

// The request gate is tested here without a socket: a frame in, a verdict
// out.

type gateEnv struct {
	gate     *requestGate
	ord      sessionOrdering
	ordering atomic.Pointer[orderingPolicy]
}

func newGateEnv(t *testing.T, edit func(*config.Config)) *gateEnv {
	t.Helper()
	cfg := config.Defaults()
	if edit != nil {
		edit(&cfg)
	}
	pol, err := newRequestPolicy(cfg, metrics.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	op, err := newOrderingPolicy(cfg.Routing)
	if err != nil {
		t.Fatal(err)
	}
	e := &gateEnv{}
	e.ordering.Store(op)
	e.gate = &requestGate{pol: pol, ordering: &e.ordering, ord: &e.ord}
	return e
}

// frame encodes req as a client sends it, after the size prefix.
func (e *gateEnv) frame(t *testing.T, req kmsg.Request) *router.Request {
	t.Helper()
	b := binary.BigEndian.AppendUint16(nil, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, 7)
	b = binary.BigEndian.AppendUint16(b, 4)
	b = append(b, "gate"...)
	if req.IsFlexible() {
		b = append(b, 0)
	}
	return e.parse(t, req.AppendTo(b))
}

func (e *gateEnv) parse(t *testing.T, frame []byte) *router.Request {
	t.Helper()
	q, err := e.gate.pol.protocol.ParseRequest(frame)
	if err != nil {
		t.Fatal(err)
	}
	return &q
}

func TestGateForwards(t *testing.T) {
	e := newGateEnv(t, nil)
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.SetVersion(8)
	commit.Group = "g"
	v := e.gate.decide(e.frame(t, commit))
	if v.err != nil || v.answer != nil || !v.expect {
		t.Fatalf("OffsetCommit: %+v", v)
	}
	if name := e.gate.pol.classifier.Name(v.group); name != "coordination" {
		t.Errorf("OffsetCommit went to %s, want coordination", name)
	}
	if v.scopes.Group == 0 {
		t.Error("OffsetCommit names a group, but its verdict carries no scope for barriers")
	}

	produce := kmsg.NewPtrProduceRequest()
	produce.SetVersion(9)
	produce.Acks, produce.TimeoutMillis = 0, 1500
	if v := e.gate.decide(e.frame(t, produce)); v.err != nil || v.expect {
		t.Errorf("acks=0 Produce: %+v, want forwarded with no answer owed", v)
	}
	produce.Acks = -1
	if v := e.gate.decide(e.frame(t, produce)); !v.expect || v.wait != 1500*time.Millisecond {
		t.Errorf("acks=-1 Produce: expect %v wait %v, want an answer within its 1.5s timeout", v.expect, v.wait)
	}
	meta := kmsg.NewPtrMetadataRequest()
	if v := e.gate.decide(e.frame(t, meta)); v.scopes != (router.Scopes{}) || v.wait != 0 {
		t.Errorf("Metadata: scopes %v wait %v, want none", v.scopes, v.wait)
	}
}

// TestGateSyncGroupWait: SyncGroup has no timeout field; it waits on the
// rebalance, so it gets the rebalance timeout its member sent in JoinGroup.
func TestGateSyncGroupWait(t *testing.T) {
	e := newGateEnv(t, nil)
	join := kmsg.NewPtrJoinGroupRequest()
	join.SetVersion(5)
	join.Group, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = "g", 10000, 45000
	if v := e.gate.decide(e.frame(t, join)); v.wait != 45*time.Second {
		t.Fatalf("JoinGroup wait %v, want its rebalance timeout 45s", v.wait)
	}
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.SetVersion(3)
	sync.Group = "g"
	if v := e.gate.decide(e.frame(t, sync)); v.wait != 45*time.Second {
		t.Fatalf("SyncGroup wait %v, want the JoinGroup's rebalance timeout 45s", v.wait)
	}
}

func TestGateRefuses(t *testing.T) {
	e := newGateEnv(t, nil)
	api := kmsg.NewPtrApiVersionsResponse()
	api.SetVersion(3)
	for _, k := range []int16{router.KeyApiVersions, router.KeyMetadata} {
		api.ApiKeys = append(api.ApiKeys, kmsg.ApiVersionsResponseApiKey{ApiKey: k, MinVersion: 0, MaxVersion: 9})
	}
	answer := append(make([]byte, 8), api.AppendTo(nil)...)
	e.gate.noteAdvertised(answer, 3)

	meta := kmsg.NewPtrMetadataRequest()
	meta.SetVersion(10)
	v := e.gate.decide(e.frame(t, meta))
	if v.reason != reasonUnsupportedVersion || !strings.Contains(v.err.Error(), "offered v0-v9") {
		t.Errorf("Metadata v10 after v0-v9 was offered: %q, %v", v.reason, v.err)
	}
	fetch := kmsg.NewPtrFetchRequest()
	if v := e.gate.decide(e.frame(t, fetch)); v.reason != reasonUnsupportedVersion || !strings.Contains(v.err.Error(), "not offered") {
		t.Errorf("Fetch, not offered: %q, %v", v.reason, v.err)
	}

	e = newGateEnv(t, nil)
	produce := kmsg.NewPtrProduceRequest()
	produce.SetVersion(9)
	q := e.frame(t, produce)
	off, _ := q.BodyOffset()
	q = e.parse(t, q.Frame[:off+1]) // cut inside the transactional id
	if v := e.gate.decide(q); v.reason != reasonBadFrame || v.err == nil {
		t.Errorf("truncated Produce: %q, %v, want bad_frame", v.reason, v.err)
	}

	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.SetVersion(1)
	if v := e.gate.decide(e.frame(t, hs)); v.answer == nil || v.warn == "" || v.err != nil {
		t.Errorf("SaslHandshake with client SASL off: %+v, want a local refusal", v)
	}
	av := kmsg.NewPtrApiVersionsRequest()
	av.SetVersion(e.gate.pol.protocol.MaxVersion(router.KeyApiVersions) + 1)
	q = e.frame(t, av)
	if v := e.gate.decide(q); v.answer == nil || v.err != nil {
		t.Errorf("ApiVersions above kmsg's: %+v, want answered locally (UNSUPPORTED_VERSION)", v)
	}

	unknown := append([]byte{0x27, 0x10, 0, 1, 0, 0, 0, 7, 0xff, 0xff}, 1, 2, 3) // key 10000
	q = e.parse(t, unknown)
	if v := e.gate.decide(q); v.reason != reasonUnknownAPI {
		t.Errorf("unknown key 10000 with unknown_apis hide: %q, %v", v.reason, v.err)
	}
	e = newGateEnv(t, func(c *config.Config) { c.Routing.UnknownAPIs = config.UnknownAPIsForward })
	q = e.parse(t, unknown)
	if v := e.gate.decide(q); v.err != nil || !v.expect {
		t.Errorf("unknown key 10000 with unknown_apis forward: %+v, want forwarded", v)
	}
}

// TestGateFetchWait: inside the hold window a strict session's Fetch is
// lowered to the budget in its frame; outside it, or relaxed, it is not.
func TestGateFetchWait(t *testing.T) {
	e := newGateEnv(t, func(c *config.Config) { c.Routing.FetchWaitBudget = 200 * time.Millisecond })
	fetch := kmsg.NewPtrFetchRequest()
	fetch.SetVersion(12)
	fetch.MaxWaitMillis = 9000
	if v := e.gate.decide(e.frame(t, fetch)); v.cappedFrom != 0 || v.wait != 9*time.Second {
		t.Fatalf("Fetch before any member request: capped from %d, wait %v; want untouched", v.cappedFrom, v.wait)
	}
	if e.gate.member {
		t.Fatal("a member before any member's request")
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group = "g"
	e.gate.decide(e.frame(t, hb))
	if !e.gate.member {
		t.Fatal("a Heartbeat did not make the session a group member's (its produce splices must not wait on the broker)")
	}
	q := e.frame(t, fetch)
	v := e.gate.decide(q)
	if v.cappedFrom != 9000 || v.wait != 200*time.Millisecond {
		t.Fatalf("Fetch after a Heartbeat: capped from %d, wait %v; want 9000 lowered to 200ms", v.cappedFrom, v.wait)
	}
	got := kmsg.NewPtrFetchRequest()
	got.SetVersion(12)
	off, _ := q.BodyOffset()
	if err := got.ReadFrom(q.Frame[off:]); err != nil || got.MaxWaitMillis != 200 {
		t.Fatalf("the frame carries MaxWaitMillis %d (%v), want 200", got.MaxWaitMillis, err)
	}
	e.ord.relaxed.Store(true)
	if v := e.gate.decide(e.frame(t, fetch)); v.cappedFrom != 0 {
		t.Errorf("relaxed session's Fetch capped from %d", v.cappedFrom)
	}
}
