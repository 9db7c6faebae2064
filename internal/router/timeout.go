// Request timeouts: how long a broker may legitimately hold a request before
// answering. The proxy gives up on a broker only well past that, so it needs
// the timeout each long-waiting request carries:
//
//   - Produce (0): TimeoutMillis, after TransactionalID (v3+) and Acks.
//   - Fetch (1): MaxWaitMillis, after ReplicaID (v0–v14).
//   - ShareFetch (78): MaxWaitMillis, after GroupID, MemberID and
//     ShareSessionEpoch (fetch_wait.go finds it).
//   - JoinGroup (11): RebalanceTimeoutMillis (v1+), SessionTimeoutMillis (v0).
//   - AlterPartitionAssignments (45), ListPartitionReassignments (46),
//     UpdateFeatures (57): TimeoutMillis, the first field.
//   - CreateTopics (19), DeleteTopics (20), DeleteRecords (21),
//     CreatePartitions (37), ElectLeaders (43), ListOffsets (2) v10+,
//     AddRaftVoter (80): TimeoutMillis after other fields. These are rare
//     (admin calls, a consumer's offset reset), so they are decoded with
//     kmsg rather than walked by hand.
//
// The first four are on the hot path and are read without allocating.
// Every other request carries no timeout of its own: a broker answers it at
// once.

package router

import (
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// API keys with a timeout field.
const (
	KeyListOffsets                = int16(kmsg.ListOffsets)
	KeyJoinGroup                  = int16(kmsg.JoinGroup)
	KeySyncGroup                  = int16(kmsg.SyncGroup)
	keyCreateTopics               = int16(kmsg.CreateTopics)
	keyDeleteTopics               = int16(kmsg.DeleteTopics)
	keyDeleteRecords              = int16(kmsg.DeleteRecords)
	keyCreatePartitions           = int16(kmsg.CreatePartitions)
	keyElectLeaders               = int16(kmsg.ElectLeaders)
	keyAlterPartitionAssignments  = int16(kmsg.AlterPartitionAssignments)
	keyListPartitionReassignments = int16(kmsg.ListPartitionReassignments)
	keyUpdateFeatures             = int16(kmsg.UpdateFeatures)
)

// RequestTimeout returns how long the broker may hold the request before
// answering: 0 for requests it answers at once, and for bodies too short to
// carry their timeout (the broker will reject those quickly). Negative
// timeouts count as 0.
func (p *Protocol) RequestTimeout(q *Request) time.Duration {
	switch q.Key {
	case KeyFetch, KeyShareFetch:
		off, err := p.FetchMaxWaitOffset(q)
		if err != nil {
			return 0
		}
		r := reader{b: q.Frame, off: off}
		if ms := r.int32(); !r.bad && ms > 0 {
			return time.Duration(ms) * time.Millisecond
		}
		return 0
	case KeyProduce, KeyJoinGroup, keyAlterPartitionAssignments, keyListPartitionReassignments, keyUpdateFeatures:
	case KeyListOffsets:
		if q.Version < 10 {
			return 0
		}
		return p.decodedTimeout(q)
	case keyCreateTopics, keyDeleteTopics, keyDeleteRecords, keyCreatePartitions, keyElectLeaders, int16(kmsg.AddRaftVoter):
		return p.decodedTimeout(q)
	default:
		return 0
	}
	r, err := q.body()
	if err != nil {
		return 0
	}
	var ms int32
	switch q.Key {
	case KeyProduce:
		if q.Version >= 3 {
			q.skipString(&r) // TransactionalID
		}
		r.skip(2) // Acks
		ms = r.int32()
	case KeyJoinGroup:
		q.skipString(&r) // Group
		ms = r.int32()   // SessionTimeoutMillis
		if q.Version >= 1 {
			ms = r.int32() // RebalanceTimeoutMillis
		}
	default:
		ms = r.int32()
	}
	if r.bad || ms < 0 {
		return 0
	}
	return time.Duration(ms) * time.Millisecond
}

// decodedTimeout decodes a rare request with kmsg to find its TimeoutMillis.
func (p *Protocol) decodedTimeout(q *Request) time.Duration {
	if q.Version > p.MaxVersion(q.Key) {
		return 0
	}
	var req kmsg.Request
	if decodeBody(q, &req) != nil {
		return 0
	}
	t, ok := req.(interface{ Timeout() int32 }) // kmsg's TimeoutRequest
	if !ok {
		return 0
	}
	ms := t.Timeout()
	return time.Duration(max(ms, 0)) * time.Millisecond
}
