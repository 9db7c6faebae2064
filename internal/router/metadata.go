// Metadata (key 3), v0–v13: every Brokers[].Host/Port is advertised. Clients
// learn the cluster from this answer, so it is the main place an upstream
// address could leak.

package router

import (
	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// rewriteMetadata is the decode-everything rewrite: the reference
// spliceMetadata is held to, byte for byte.
func rewriteMetadata(resp kmsg.Response, am AddressMap) (bool, error) {
	m := resp.(*kmsg.MetadataResponse)
	return advertiseAll(am, m.Brokers, func(b *kmsg.MetadataResponseBroker) endpoint {
		return endpoint{b.NodeID, &b.Host, &b.Port}
	})
}

// spliceMetadata rewrites a Metadata answer at the cost of its brokers,
// not of its partitions. Brokers come first in the body (after
// ThrottleMillis), so only their hosts and ports are re-encoded; ClusterID,
// ControllerID, the topics with their partitions and the trailing fields
// are copied as bytes. The whole body is still walked, without allocating,
// so that an answer kmsg would refuse is refused here too. Bytes after the
// last field are dropped, as a decode and encode would.
func spliceMetadata(corr []byte, flexHeader bool, body []byte, version int16, am AddressMap) ([]byte, bool, error) {
	w := walker{b: body, flex: version >= 9}
	if version >= 3 {
		w.int32() // ThrottleMillis
	}
	brokerMin := int64(10)
	if version >= 1 {
		brokerMin = 11
	}
	n := w.arrayLen(brokerMin)
	at := make([]addressAt, 0, max(n, 0))
	for range n {
		a := addressAt{node: w.int32(), from: w.off}
		a.host = w.str()
		a.port = w.int32()
		a.to = w.off
		if version >= 1 {
			w.nullableStr() // Rack
		}
		w.tags()
		if w.bad {
			break
		}
		at = append(at, a)
	}
	walkMetadataRest(&w, version)
	if w.bad {
		return nil, false, kbin.ErrNotEnoughData // what kmsg's decode says
	}
	return spliceAddresses(corr, flexHeader, body, w.off, w.flex, at, am)
}

// walkMetadataRest steps over what follows the brokers, field by field as
// kmsg's MetadataResponse.ReadFrom reads it.
func walkMetadataRest(w *walker, version int16) {
	if version >= 2 {
		w.nullableStr() // ClusterID
	}
	if version >= 1 {
		w.int32() // ControllerID
	}
	topicMin, partitionMin := int64(5), int64(13)
	if version >= 10 {
		topicMin = 26
	}
	if version >= 7 {
		partitionMin = 18
	}
	topics := w.arrayLen(topicMin)
	for t := 0; t < topics && !w.bad; t++ {
		w.int16() // ErrorCode
		if version < 12 {
			w.str() // Topic
		} else {
			w.nullableStr()
		}
		if version >= 10 {
			w.span(16) // TopicID
		}
		if version >= 1 {
			w.span(1) // IsInternal (a bool)
		}
		partitions := w.arrayLen(partitionMin)
		for p := 0; p < partitions && !w.bad; p++ {
			w.span(2 + 4 + 4) // ErrorCode, Partition, Leader
			if version >= 7 {
				w.int32() // LeaderEpoch
			}
			w.int32s() // Replicas
			w.int32s() // ISR
			if version >= 5 {
				w.int32s() // OfflineReplicas
			}
			w.tags()
		}
		if version >= 8 {
			w.int32() // AuthorizedOperations
		}
		w.tags()
	}
	if version >= 8 && version <= 10 {
		w.int32() // AuthorizedOperations
	}
	if version >= 13 {
		w.int16() // ErrorCode
	}
	w.tags()
}
