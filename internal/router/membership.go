package router

import "github.com/twmb/franz-go/pkg/kmsg"

// GroupMembership reports whether key is a group member's request whose
// answer the member cannot let wait behind a long poll: its session timer
// (the heartbeats of every group protocol) and its commits and rebalances.
// Such traffic on a strict session is a reason to cap its long polls even
// when no answer was seen held: a client that serializes its own connection
// (IBM/sarama holds its broker lock for a whole round trip, broker.go
// sendAndReceive) does not even write its Heartbeat until the Fetch is
// answered.
func GroupMembership(key int16) bool {
	switch kmsg.Key(key) {
	case kmsg.OffsetCommit, kmsg.JoinGroup, kmsg.Heartbeat, kmsg.SyncGroup,
		kmsg.ConsumerGroupHeartbeat, kmsg.ShareGroupHeartbeat, kmsg.StreamsGroupHeartbeat:
		return true
	}
	return false
}
