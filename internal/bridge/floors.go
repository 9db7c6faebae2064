package bridge

import "github.com/twmb/franz-go/pkg/kmsg"

// keySpan bounds the API keys a Broker records; Kafka's keys are far below.
const keySpan = 256

// Floor is Kafka 4.0's lowest accepted version of key (KIP-896, KIP-724);
// 0 for keys 4.0 did not raise.
func Floor(key int16) int16 {
	switch kmsg.Key(key) {
	case kmsg.Produce:
		return 3
	case kmsg.Fetch:
		return 4
	case kmsg.OffsetCommit, kmsg.JoinGroup, kmsg.CreateTopics, kmsg.OffsetForLeaderEpoch:
		return 2
	case kmsg.ListOffsets, kmsg.OffsetFetch, kmsg.DeleteTopics,
		kmsg.DescribeACLs, kmsg.CreateACLs, kmsg.DeleteACLs,
		kmsg.DescribeConfigs, kmsg.AlterReplicaLogDirs, kmsg.DescribeLogDirs:
		return 1
	}
	return 0
}

// Broker is what the brokers advertise in ApiVersions: per key the lowest
// and highest version, and whether the key is listed.
type Broker struct {
	min, max [keySpan]int16
	listed   [keySpan]bool
	// enforcesFloors: the broker lists a min at or above Floor for some key
	// 4.0 raised, so it is a 4.x broker that also refuses what it still lists
	// for old clients' sake (Produce min 0 for librdkafka).
	enforcesFloors bool
}

// NewBroker reads a broker's ApiVersions keys.
func NewBroker(keys []kmsg.ApiVersionsResponseApiKey) *Broker {
	b := new(Broker)
	for _, k := range keys {
		if k.ApiKey < 0 || int(k.ApiKey) >= keySpan {
			continue
		}
		b.min[k.ApiKey], b.max[k.ApiKey], b.listed[k.ApiKey] = k.MinVersion, k.MaxVersion, true
		if floor := Floor(k.ApiKey); floor > 0 && k.MinVersion >= floor {
			b.enforcesFloors = true
		}
	}
	return b
}

// EnforcesFloors reports whether b refuses what Kafka 4.0 removed.
func (b *Broker) EnforcesFloors() bool { return b.enforcesFloors }

// WithFloors is b for a cluster some broker of which refuses what Kafka
// 4.0 removed, whatever b itself lists: during a rolling upgrade to 4.x the
// broker that answered ApiVersions may be one not yet upgraded. Bridging
// for a broker that still accepts the old versions is harmless: it
// accepts the ones bridged to as well.
func (b *Broker) WithFloors() *Broker {
	c := *b
	c.enforcesFloors = true
	return &c
}

// Target is the version a request of key at version from goes upstream at,
// and whether it must be bridged at all. The broker accepts versions from
// max(its advertised min, Floor(key) when it enforces floors); a request
// below that goes up at exactly that lowest version, the one closest in
// meaning to what the client sent. bridged is false when from is accepted as
// is (including keys the broker does not list: the broker answers those as
// it would without kproxy); ok is false when the request must be bridged but
// cannot be: a key this package does not translate, or a lowest version above
// the broker's max, kmsg's max or what the key's translation can produce.
func (b *Broker) Target(key, from int16) (to int16, bridged, ok bool) {
	if key < 0 || int(key) >= keySpan || !b.listed[key] {
		return from, false, true
	}
	lowest := b.min[key]
	if b.enforcesFloors {
		lowest = max(lowest, Floor(key))
	}
	if from >= lowest {
		return from, false, true
	}
	t := translationFor(key)
	if t == nil || from < 0 || lowest > b.max[key] || lowest > t.highestTo() {
		return lowest, false, false
	}
	if req := kmsg.RequestForKey(key); req == nil || lowest > req.MaxVersion() {
		return lowest, false, false
	}
	return lowest, true, true
}
