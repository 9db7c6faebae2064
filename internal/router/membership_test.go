package router

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestGroupMembership: the heartbeat of every group protocol arms the fetch
// wait budget; Metadata and the long polls themselves do not.
func TestGroupMembership(t *testing.T) {
	for _, k := range []kmsg.Key{kmsg.Heartbeat, kmsg.ConsumerGroupHeartbeat, kmsg.ShareGroupHeartbeat, kmsg.StreamsGroupHeartbeat, kmsg.OffsetCommit, kmsg.JoinGroup, kmsg.SyncGroup} {
		if !GroupMembership(int16(k)) {
			t.Errorf("%s does not arm the fetch wait budget", kmsg.NameForKey(int16(k)))
		}
	}
	for _, k := range []kmsg.Key{kmsg.Metadata, kmsg.Fetch, kmsg.ShareFetch, kmsg.Produce} {
		if GroupMembership(int16(k)) {
			t.Errorf("%s arms the fetch wait budget", kmsg.NameForKey(int16(k)))
		}
	}
}
