package router

import (
	"hash/maphash"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Ordering barriers. A broker processes one connection's requests in the
// order they were sent, and a client that pipelines may rely on it. Split
// over lanes, two requests of different groups race; for the pairs below the
// race changes the outcome, so the later request waits for the earlier one's
// answer, and only while that answer is still owed. docs/ARCHITECTURE.md
// ("Barriers") gives the reason for each pair and the pairs left out.
//
// A pair may be scoped to a resource named in both requests: the consumer
// group or the transactional id. Such a pair holds only when the two name
// the same one (compared by hash: a collision costs a needless wait, never a
// reorder).

// Scope is what both requests of a barrier pair must name for it to hold.
type Scope uint8

const (
	ScopeNone  Scope = iota // any two requests of the pair
	ScopeGroup              // the same consumer group
	ScopeTxn                // the same transactional id
)

type barrierFamily struct {
	earlier, later []kmsg.Key
	scope          Scope
}

// barrierFamilies is the table of docs/ARCHITECTURE.md.
var barrierFamilies = []barrierFamily{
	// A commit, then a rejoin or a leave: the commit belongs to the
	// generation the rejoin ends.
	{
		earlier: []kmsg.Key{kmsg.OffsetCommit, kmsg.TxnOffsetCommit},
		later: []kmsg.Key{kmsg.JoinGroup, kmsg.SyncGroup, kmsg.LeaveGroup, kmsg.ConsumerGroupHeartbeat,
			kmsg.StreamsGroupHeartbeat, kmsg.OffsetFetch},
		scope: ScopeGroup,
	},
	// Leave, then join again as a new member.
	{earlier: []kmsg.Key{kmsg.LeaveGroup}, later: []kmsg.Key{kmsg.JoinGroup}, scope: ScopeGroup},
	// A transaction's steps: its records and offsets before its end, and
	// its partitions added before records are written to them.
	{
		earlier: []kmsg.Key{kmsg.Produce, kmsg.AddPartitionsToTxn, kmsg.AddOffsetsToTxn, kmsg.TxnOffsetCommit},
		later:   []kmsg.Key{kmsg.EndTxn},
		scope:   ScopeTxn,
	},
	{earlier: []kmsg.Key{kmsg.Produce}, later: []kmsg.Key{kmsg.AddOffsetsToTxn, kmsg.TxnOffsetCommit}, scope: ScopeTxn},
	{earlier: []kmsg.Key{kmsg.AddPartitionsToTxn}, later: []kmsg.Key{kmsg.Produce}, scope: ScopeTxn},
	{earlier: []kmsg.Key{kmsg.AddOffsetsToTxn}, later: []kmsg.Key{kmsg.TxnOffsetCommit}, scope: ScopeTxn},
	{earlier: []kmsg.Key{kmsg.EndTxn}, later: []kmsg.Key{kmsg.Produce, kmsg.AddPartitionsToTxn, kmsg.AddOffsetsToTxn}, scope: ScopeTxn},
	// Records, then the log end offset they moved.
	{earlier: []kmsg.Key{kmsg.Produce}, later: []kmsg.Key{kmsg.ListOffsets}},
	// Topics created, deleted, grown or truncated, then any request that
	// can name them. Not scoped: Fetch v13+ names topics by id.
	{
		earlier: []kmsg.Key{kmsg.CreateTopics, kmsg.DeleteTopics, kmsg.CreatePartitions, kmsg.DeleteRecords},
		later: []kmsg.Key{
			kmsg.Metadata, kmsg.Produce, kmsg.Fetch, kmsg.ListOffsets, kmsg.OffsetForLeaderEpoch,
			kmsg.OffsetCommit, kmsg.OffsetFetch, kmsg.TxnOffsetCommit, kmsg.AddPartitionsToTxn,
			kmsg.DescribeConfigs, kmsg.AlterConfigs, kmsg.IncrementalAlterConfigs,
			kmsg.DescribeProducers, kmsg.ShareFetch, kmsg.CreateTopics, kmsg.DeleteTopics,
			kmsg.CreatePartitions, kmsg.DeleteRecords,
		},
	},
	// Leaders or replicas moved, then read back.
	{earlier: []kmsg.Key{kmsg.ElectLeaders, kmsg.AlterPartitionAssignments}, later: []kmsg.Key{kmsg.Metadata, kmsg.ListPartitionReassignments}},
	// An admin write, then its read-back.
	{earlier: []kmsg.Key{kmsg.AlterConfigs, kmsg.IncrementalAlterConfigs}, later: []kmsg.Key{kmsg.DescribeConfigs}},
	{earlier: []kmsg.Key{kmsg.CreateACLs, kmsg.DeleteACLs}, later: []kmsg.Key{kmsg.DescribeACLs}},
	{earlier: []kmsg.Key{kmsg.AlterClientQuotas}, later: []kmsg.Key{kmsg.DescribeClientQuotas}},
	{earlier: []kmsg.Key{kmsg.AlterUserSCRAMCredentials}, later: []kmsg.Key{kmsg.DescribeUserSCRAMCredentials}},
	{earlier: []kmsg.Key{kmsg.DeleteGroups, kmsg.OffsetDelete}, later: []kmsg.Key{kmsg.OffsetFetch, kmsg.DescribeGroups, kmsg.ListGroups}},
}

// BarrierRule says that a later request waits for an unanswered earlier
// request of key Earlier. Slot numbers the earlier keys of a Barriers, so
// that a session can count what it owes of each in a small array.
type BarrierRule struct {
	Earlier int16
	Slot    int
	Scope   Scope
}

// Barriers is the barrier table reduced to the pairs whose requests travel
// on different lanes under a classifier: a lane keeps its own order. It is
// immutable and shared.
type Barriers struct {
	waitsFor [keySpan][]BarrierRule // by the later request's key
	scoped   [keySpan]bool          // an earlier key some rule scopes
	slot     [keySpan]int8          // earlier keys: index into a session's counts; -1 for others
	earlier  int                    // how many earlier keys
}

// NewBarriers keeps the pairs that cross groups under c.
func NewBarriers(c *Classifier) *Barriers {
	b := new(Barriers)
	for k := range b.slot {
		b.slot[k] = -1
	}
	for _, f := range barrierFamilies {
		for _, e := range f.earlier {
			for _, l := range f.later {
				if e == l || c.Classify(int16(e)) == c.Classify(int16(l)) {
					continue
				}
				if b.slot[e] < 0 {
					b.slot[e] = int8(b.earlier)
					b.earlier++
				}
				b.waitsFor[l] = append(b.waitsFor[l], BarrierRule{Earlier: int16(e), Slot: int(b.slot[e]), Scope: f.scope})
				if f.scope != ScopeNone {
					b.scoped[e] = true
				}
			}
		}
	}
	return b
}

// WaitsFor lists the rules a request of key must check; nil for most keys.
func (b *Barriers) WaitsFor(key int16) []BarrierRule {
	if key < 0 || key >= keySpan {
		return nil
	}
	return b.waitsFor[key]
}

// EarlierKeys is how many API keys some rule waits for.
func (b *Barriers) EarlierKeys() int { return b.earlier }

// EarlierSlot is key's index among the earlier keys, or -1 when no rule
// waits for it.
func (b *Barriers) EarlierSlot(key int16) int {
	if key < 0 || key >= keySpan {
		return -1
	}
	return int(b.slot[key])
}

// Scoped reports whether requests of key need their scope read when they
// are sent, because a later request may wait on them.
func (b *Barriers) Scoped(key int16) bool {
	return key >= 0 && key < keySpan && b.scoped[key]
}

// Scopes are the group and transactional id a request names, hashed: 0 when
// it names none, AnyScope when it names several (or the version cannot say).
type Scopes struct {
	Group, Txn uint64
}

// AnyScope matches every scope: a request that names several groups or
// transactions, or whose body could not be read.
const AnyScope = ^uint64(0)

// Matches reports whether two requests' scopes meet under s.
func (s Scope) Matches(a, b Scopes) bool {
	switch s {
	case ScopeGroup:
		return meets(a.Group, b.Group)
	case ScopeTxn:
		return meets(a.Txn, b.Txn)
	}
	return true
}

func meets(a, b uint64) bool {
	return a != 0 && b != 0 && (a == b || a == AnyScope || b == AnyScope)
}

var scopeSeed = maphash.MakeSeed()

// RequestScopes reads the group and transactional id a request names,
// without allocating. Only the APIs
// that scoped barrier pairs name are read; for them an unreadable body
// matches every scope, so that a doubt costs a wait rather than an order.
func RequestScopes(q *Request) Scopes {
	var s Scopes
	first, second := &s.Group, (*uint64)(nil)
	switch kmsg.Key(q.Key) {
	case kmsg.OffsetCommit, kmsg.JoinGroup, kmsg.SyncGroup, kmsg.LeaveGroup, kmsg.Heartbeat,
		kmsg.ConsumerGroupHeartbeat, kmsg.StreamsGroupHeartbeat, kmsg.OffsetDelete:
	case kmsg.OffsetFetch:
		if q.Version >= 8 { // a list of groups
			s.Group = AnyScope
			return s
		}
	case kmsg.TxnOffsetCommit:
		first, second = &s.Txn, &s.Group
	case kmsg.AddOffsetsToTxn, kmsg.EndTxn:
		first = &s.Txn
	case kmsg.AddPartitionsToTxn:
		if q.Version >= 4 { // a batch of transactions
			s.Txn = AnyScope
			return s
		}
		first = &s.Txn
	case kmsg.Produce:
		if q.Version < 3 { // before transactions
			return s
		}
		first = &s.Txn
	default:
		return s
	}
	r, err := q.body()
	if err != nil {
		*first = AnyScope
		return s
	}
	readScope := func() uint64 {
		var v []byte
		if q.Flexible {
			v = r.compactNullableString()
		} else {
			v = r.nullableString()
		}
		switch {
		case r.bad:
			return AnyScope
		case v == nil:
			return 0
		}
		return maphash.Bytes(scopeSeed, v) | 1 // never 0
	}
	*first = readScope()
	if second != nil {
		*second = readScope()
	}
	return s
}
