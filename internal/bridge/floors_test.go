package bridge

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// kafka40Keys is what a Kafka 4.0 broker lists in ApiVersions for the keys
// it raised (and two it did not): Produce still lists min 0, for
// librdkafka's sake, though it refuses v0–2.
func kafka40Keys() []kmsg.ApiVersionsResponseApiKey {
	return []kmsg.ApiVersionsResponseApiKey{
		{ApiKey: 0, MinVersion: 0, MaxVersion: 12}, // Produce
		{ApiKey: 1, MinVersion: 4, MaxVersion: 17}, // Fetch
		{ApiKey: 2, MinVersion: 1, MaxVersion: 10}, // ListOffsets
		{ApiKey: 3, MinVersion: 0, MaxVersion: 13}, // Metadata
		{ApiKey: 8, MinVersion: 2, MaxVersion: 9},  // OffsetCommit
		{ApiKey: 9, MinVersion: 1, MaxVersion: 9},  // OffsetFetch
		{ApiKey: 11, MinVersion: 2, MaxVersion: 9}, // JoinGroup
		{ApiKey: 17, MinVersion: 0, MaxVersion: 1}, // SaslHandshake
		{ApiKey: 18, MinVersion: 0, MaxVersion: 4}, // ApiVersions
		{ApiKey: 19, MinVersion: 2, MaxVersion: 7}, // CreateTopics
		{ApiKey: 20, MinVersion: 1, MaxVersion: 6}, // DeleteTopics
		{ApiKey: 23, MinVersion: 2, MaxVersion: 4}, // OffsetForLeaderEpoch
		{ApiKey: 29, MinVersion: 1, MaxVersion: 3}, // DescribeAcls
		{ApiKey: 30, MinVersion: 1, MaxVersion: 3}, // CreateAcls
		{ApiKey: 31, MinVersion: 1, MaxVersion: 3}, // DeleteAcls
		{ApiKey: 32, MinVersion: 1, MaxVersion: 4}, // DescribeConfigs
		{ApiKey: 34, MinVersion: 1, MaxVersion: 2}, // AlterReplicaLogDirs
		{ApiKey: 35, MinVersion: 1, MaxVersion: 4}, // DescribeLogDirs
	}
}

func TestFloor(t *testing.T) {
	for _, c := range []struct {
		key   kmsg.Key
		floor int16
	}{
		{kmsg.Produce, 3}, {kmsg.Fetch, 4}, {kmsg.ListOffsets, 1}, {kmsg.OffsetCommit, 2},
		{kmsg.OffsetFetch, 1}, {kmsg.JoinGroup, 2}, {kmsg.CreateTopics, 2}, {kmsg.DeleteTopics, 1},
		{kmsg.OffsetForLeaderEpoch, 2}, {kmsg.DescribeACLs, 1}, {kmsg.CreateACLs, 1}, {kmsg.DeleteACLs, 1},
		{kmsg.DescribeConfigs, 1}, {kmsg.AlterReplicaLogDirs, 1}, {kmsg.DescribeLogDirs, 1},
		{kmsg.Metadata, 0}, {kmsg.ApiVersions, 0}, {kmsg.SyncGroup, 0},
	} {
		if got := Floor(int16(c.key)); got != c.floor {
			t.Errorf("Floor(%s) = %d, want %d", kmsg.NameForKey(int16(c.key)), got, c.floor)
		}
	}
}

func TestTargetKafka40(t *testing.T) {
	b := NewBroker(kafka40Keys())
	for _, c := range []struct {
		key         kmsg.Key
		from, to    int16
		bridged, ok bool
	}{
		{kmsg.Produce, 0, 3, true, true}, // listed min 0, enforced floor 3
		{kmsg.Produce, 2, 3, true, true},
		{kmsg.Produce, 3, 3, false, true},
		{kmsg.Produce, 9, 9, false, true},
		{kmsg.Fetch, 0, 4, true, true},
		{kmsg.Fetch, 3, 4, true, true},
		{kmsg.Fetch, 4, 4, false, true},
		{kmsg.ListOffsets, 0, 1, true, true},
		{kmsg.OffsetCommit, 0, 2, true, true},
		{kmsg.OffsetCommit, 1, 2, true, true},
		{kmsg.OffsetFetch, 0, 1, true, true},
		{kmsg.JoinGroup, 1, 2, true, true},
		{kmsg.CreateTopics, 1, 2, true, true},
		{kmsg.DeleteTopics, 0, 1, true, true},
		{kmsg.OffsetForLeaderEpoch, 1, 2, true, true},
		{kmsg.DescribeACLs, 0, 1, true, true},
		{kmsg.DescribeLogDirs, 0, 1, true, true},
		{kmsg.Metadata, 0, 0, false, true},    // not raised
		{kmsg.SyncGroup, 0, 0, false, true},   // not listed: the broker answers as it would
		{kmsg.ApiVersions, 0, 0, false, true}, // not raised
	} {
		to, bridged, ok := b.Target(int16(c.key), c.from)
		if to != c.to || bridged != c.bridged || ok != c.ok {
			t.Errorf("Target(%s v%d) = v%d bridged %v ok %v, want v%d %v %v", kmsg.NameForKey(int16(c.key)), c.from, to, bridged, ok, c.to, c.bridged, c.ok)
		}
	}
}

// A Kafka 3.x broker lists every key from v0 and accepts them all: nothing
// is bridged, Produce v0 included.
func TestTargetKafka3NothingBridged(t *testing.T) {
	keys := kafka40Keys()
	for i := range keys {
		keys[i].MinVersion = 0
	}
	b := NewBroker(keys)
	for _, k := range keys {
		for v := int16(0); v <= k.MaxVersion; v++ {
			if to, bridged, ok := b.Target(k.ApiKey, v); to != v || bridged || !ok {
				t.Errorf("Target(%s v%d) = v%d bridged %v ok %v, want as is", kmsg.NameForKey(k.ApiKey), v, to, bridged, ok)
			}
		}
	}
}

func TestTargetCannotBridge(t *testing.T) {
	keys := kafka40Keys()
	for i := range keys {
		switch keys[i].ApiKey {
		case 17: // SaslHandshake v1 only, as kfake: not a key the bridge translates
			keys[i].MinVersion = 1
		case 9: // OffsetFetch from v8: per-group requests, past what up produces
			keys[i].MinVersion = 8
		case 32: // DescribeConfigs lowest above its highest
			keys[i].MinVersion, keys[i].MaxVersion = 1, 0
		}
	}
	b := NewBroker(keys)
	for _, c := range []struct {
		key  kmsg.Key
		from int16
	}{{kmsg.SASLHandshake, 0}, {kmsg.OffsetFetch, 0}, {kmsg.DescribeConfigs, 0}} {
		if _, bridged, ok := b.Target(int16(c.key), c.from); bridged || ok {
			t.Errorf("Target(%s v%d): bridged %v ok %v, want not ok", kmsg.NameForKey(int16(c.key)), c.from, bridged, ok)
		}
	}
}
