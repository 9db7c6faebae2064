package router

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/config"
)

func defaultBarriers(t *testing.T) (*Protocol, *Barriers) {
	t.Helper()
	p := NewProtocol()
	c, err := NewClassifier(p, config.DefaultGroups())
	if err != nil {
		t.Fatal(err)
	}
	return p, NewBarriers(c)
}

func rulesFor(b *Barriers, later kmsg.Key) map[kmsg.Key]Scope {
	out := map[kmsg.Key]Scope{}
	for _, r := range b.WaitsFor(int16(later)) {
		out[kmsg.Key(r.Earlier)] = r.Scope
	}
	return out
}

// TestBarrierTableDefaults pins the pairs the default groups keep: the
// cross-lane ones the architecture document names, and none that would put
// a long poll in front of a group member's liveness request.
func TestBarrierTableDefaults(t *testing.T) {
	_, b := defaultBarriers(t)
	for _, want := range []struct {
		earlier, later kmsg.Key
		scope          Scope
	}{
		{kmsg.OffsetCommit, kmsg.JoinGroup, ScopeGroup},
		{kmsg.OffsetCommit, kmsg.SyncGroup, ScopeGroup},
		{kmsg.TxnOffsetCommit, kmsg.JoinGroup, ScopeGroup},
		{kmsg.LeaveGroup, kmsg.JoinGroup, ScopeGroup},
		{kmsg.Produce, kmsg.EndTxn, ScopeTxn},
		{kmsg.Produce, kmsg.AddOffsetsToTxn, ScopeTxn},
		{kmsg.Produce, kmsg.TxnOffsetCommit, ScopeTxn},
		{kmsg.AddPartitionsToTxn, kmsg.Produce, ScopeTxn},
		{kmsg.CreateTopics, kmsg.Metadata, ScopeNone},
		{kmsg.DeleteTopics, kmsg.Produce, ScopeNone},
		{kmsg.CreatePartitions, kmsg.Fetch, ScopeNone},
		{kmsg.Produce, kmsg.ListOffsets, ScopeNone},
	} {
		got, ok := rulesFor(b, want.later)[want.earlier]
		if !ok || got != want.scope {
			t.Errorf("%s → %s: rule %v (present %v), want scope %v", kmsg.NameForKey(int16(want.earlier)), kmsg.NameForKey(int16(want.later)), got, ok, want.scope)
		}
	}
	// Same lane under the defaults: the lane keeps the order, no barrier.
	if _, ok := rulesFor(b, kmsg.LeaveGroup)[kmsg.OffsetCommit]; ok {
		t.Error("OffsetCommit → LeaveGroup share the coordination lane but got a barrier")
	}
	// Nothing ever waits for a long poll, and liveness never waits.
	for k := range int16(keySpan) {
		for _, r := range b.WaitsFor(k) {
			if r.Earlier == int16(kmsg.Fetch) || r.Earlier == int16(kmsg.ShareFetch) {
				t.Errorf("%s waits for a long poll (%s)", kmsg.NameForKey(k), kmsg.NameForKey(r.Earlier))
			}
		}
	}
	for _, k := range []kmsg.Key{kmsg.Heartbeat, kmsg.ShareGroupHeartbeat, kmsg.ApiVersions, kmsg.FindCoordinator} {
		if rules := b.WaitsFor(int16(k)); len(rules) != 0 {
			t.Errorf("%s waits for %v", kmsg.NameForKey(int16(k)), rules)
		}
	}
}

// TestBarrierFollowsGroups: a pair whose APIs share a configured group
// needs no barrier; split them and it gets one.
func TestBarrierFollowsGroups(t *testing.T) {
	p := NewProtocol()
	c, err := NewClassifier(p, map[string][]string{"g": {"OffsetCommit", "JoinGroup"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rulesFor(NewBarriers(c), kmsg.JoinGroup)[kmsg.OffsetCommit]; ok {
		t.Error("OffsetCommit and JoinGroup in one group still got a barrier")
	}
	c, err = NewClassifier(p, map[string][]string{"a": {"OffsetCommit"}, "b": {"LeaveGroup"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rulesFor(NewBarriers(c), kmsg.LeaveGroup)[kmsg.OffsetCommit]; !ok {
		t.Error("OffsetCommit and LeaveGroup split over lanes got no barrier")
	}
}

func scopesOf(t *testing.T, p *Protocol, req kmsg.Request) Scopes {
	t.Helper()
	return RequestScopes(parse(t, p, requestBody(p, req, 42, kmsg.StringPtr("barrier-test"))))
}

// TestRequestScopes reads groups and transactional ids at every version
// that names them, flexible or not, and matches them as the barrier does.
func TestRequestScopes(t *testing.T) {
	p, _ := defaultBarriers(t)
	for v := int16(0); v <= 9; v++ {
		commitA, commitB, join := kmsg.NewPtrOffsetCommitRequest(), kmsg.NewPtrOffsetCommitRequest(), kmsg.NewPtrJoinGroupRequest()
		commitA.SetVersion(v)
		commitB.SetVersion(v)
		join.SetVersion(min(v, join.MaxVersion()))
		commitA.Group, commitB.Group, join.Group = "a", "b", "a"
		a, b, j := scopesOf(t, p, commitA), scopesOf(t, p, commitB), scopesOf(t, p, join)
		if !ScopeGroup.Matches(a, j) || ScopeGroup.Matches(b, j) {
			t.Errorf("OffsetCommit v%d / JoinGroup v%d: same group matched %v, other group matched %v", v, join.Version, ScopeGroup.Matches(a, j), ScopeGroup.Matches(b, j))
		}
	}
	for v := int16(3); v <= 12; v++ {
		plain, txn, end := kmsg.NewPtrProduceRequest(), kmsg.NewPtrProduceRequest(), kmsg.NewPtrEndTxnRequest()
		plain.SetVersion(v)
		txn.SetVersion(v)
		end.SetVersion(min(v, end.MaxVersion()))
		txn.TransactionID, end.TransactionalID = kmsg.StringPtr("tx"), "tx"
		if e := scopesOf(t, p, end); !ScopeTxn.Matches(scopesOf(t, p, txn), e) || ScopeTxn.Matches(scopesOf(t, p, plain), e) {
			t.Errorf("Produce v%d: a transactional produce must hold its EndTxn, a plain one never", v)
		}
	}
	tc := kmsg.NewPtrTxnOffsetCommitRequest()
	tc.SetVersion(3)
	tc.TransactionalID, tc.Group = "tx", "g"
	s := scopesOf(t, p, tc)
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group = "g"
	if !ScopeGroup.Matches(s, scopesOf(t, p, join)) {
		t.Error("TxnOffsetCommit's group (its second field) was not read")
	}
	batch := kmsg.NewPtrAddPartitionsToTxnRequest()
	batch.SetVersion(4)
	if got := scopesOf(t, p, batch); got.Txn != AnyScope {
		t.Errorf("AddPartitionsToTxn v4 (a batch of transactions) scopes %v, want any", got)
	}
	// A body cut short cannot say what it names: it matches everything.
	body := requestBody(p, commitRequestFor("a"), 42, kmsg.StringPtr("barrier-test"))
	off, err := parse(t, p, body).BodyOffset()
	if err != nil {
		t.Fatal(err)
	}
	if got := RequestScopes(parse(t, p, body[:off+2])); got.Group != AnyScope { // the group's length, not the group
		t.Errorf("truncated OffsetCommit scopes %v, want any", got)
	}
}

func commitRequestFor(group string) *kmsg.OffsetCommitRequest {
	r := kmsg.NewPtrOffsetCommitRequest()
	r.SetVersion(2)
	r.Group = group
	return r
}
