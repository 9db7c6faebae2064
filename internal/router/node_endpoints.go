// Produce (key 0) v10–v13 and Fetch (key 1) v16–v18: KIP-951 NodeEndpoints,
// top-level tag 0, listing the new leaders of partitions that answered
// NOT_LEADER_OR_FOLLOWER.
//
// Produce v9 and Fetch v12–v15 are flexible too, with a top-level tag
// section that defines no tag. A broker should leave it empty; one that
// put a NodeEndpoints (tag 0) there anyway would otherwise pass a broker
// address to the client unread. Those answers are walked the same way; kmsg
// reads tag 0 as NodeEndpoints at every flexible version, so it is
// rewritten like any other, and a tag 0 that does not decode fails the
// answer. Older versions have no tag section and pass untouched.
//
// Nearly every response has an empty top-level tag section, and a fetch can
// be megabytes of records, so decoding each one with kmsg would copy and
// allocate on the hottest path. Instead a walker skips over the body without
// allocating to the final tag section; only a non-empty one is decoded.

package router

import "github.com/twmb/franz-go/pkg/kmsg"

// First versions with a top-level tag section (the first flexible ones),
// where NodeEndpoints may be found.
const (
	produceTags int16 = 9
	fetchTags   int16 = 12
)

// scanProduce walks a Produce v9+ body (flexible):
// Topics[Name|TopicID, Partitions[...], tags], ThrottleMillis, tags.
func scanProduce(body []byte, version int16) (int16, bool, error) {
	if version < produceTags {
		return version, false, nil
	}
	r := reader{b: body}
	topics := r.compactLen()
	for t := 0; t < topics && !r.bad; t++ {
		skipTopicID(&r, version >= 13)
		partitions := r.compactLen()
		for p := 0; p < partitions && !r.bad; p++ {
			// Partition, ErrorCode, BaseOffset, LogAppendTime, LogStartOffset.
			r.skip(4 + 2 + 8 + 8 + 8)
			errorRecords := r.compactLen()
			for e := 0; e < errorRecords && !r.bad; e++ {
				r.skip(4) // RelativeOffset
				r.skipCompactBytes()
				r.skipTags()
			}
			r.skipCompactBytes() // ErrorMessage
			r.skipTags()         // CurrentLeader lives here, not in the top level
		}
		r.skipTags()
	}
	r.skip(4) // ThrottleMillis
	return finalTags(&r, version)
}

// scanFetch walks a Fetch v12+ body (flexible; topic IDs from v13):
// ThrottleMillis, ErrorCode, SessionID, Topics[Topic|TopicID,
// Partitions[...], tags], tags.
func scanFetch(body []byte, version int16) (int16, bool, error) {
	if version < fetchTags {
		return version, false, nil
	}
	r := reader{b: body}
	r.skip(4 + 2 + 4) // ThrottleMillis, ErrorCode, SessionID
	topics := r.compactLen()
	for t := 0; t < topics && !r.bad; t++ {
		skipTopicID(&r, version >= 13)
		partitions := r.compactLen()
		for p := 0; p < partitions && !r.bad; p++ {
			// Partition, ErrorCode, HighWatermark, LastStableOffset, LogStartOffset.
			r.skip(4 + 2 + 8 + 8 + 8)
			aborted := r.compactLen() // nullable: -1 is null
			for a := 0; a < aborted && !r.bad; a++ {
				r.skip(8 + 8) // ProducerID, FirstOffset
				r.skipTags()
			}
			r.skip(4)            // PreferredReadReplica
			r.skipCompactBytes() // RecordBatches
			r.skipTags()
		}
		r.skipTags()
	}
	return finalTags(&r, version)
}

// skipTopicID skips a topic's identity: a 16-byte UUID from Produce v13 and
// Fetch v13, a compact name before.
func skipTopicID(r *reader, uuid bool) {
	if uuid {
		r.skip(16)
	} else {
		r.skipCompactBytes()
	}
}

// finalTags skips the top-level tag section, which must end the body, and
// reports whether it holds anything. Only tag 0 matters, but a non-empty
// section is rare enough to leave reading the tags to kmsg.
func finalTags(r *reader, version int16) (int16, bool, error) {
	at := r.off
	r.skipTags()
	if !r.done() {
		return version, false, errMalformed
	}
	// A single 0 byte is the empty section; anything else has tags.
	return version, r.b[at] != 0, nil
}

func rewriteProduce(resp kmsg.Response, am AddressMap) (bool, error) {
	p := resp.(*kmsg.ProduceResponse)
	return advertiseAll(am, p.Brokers, func(b *kmsg.ProduceResponseBroker) endpoint {
		return endpoint{b.NodeID, &b.Host, &b.Port}
	})
}

func rewriteFetch(resp kmsg.Response, am AddressMap) (bool, error) {
	f := resp.(*kmsg.FetchResponse)
	return advertiseAll(am, f.Brokers, func(b *kmsg.FetchResponseBroker) endpoint {
		return endpoint{b.NodeID, &b.Host, &b.Port}
	})
}
