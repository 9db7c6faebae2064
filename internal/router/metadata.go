// Metadata (key 3), v0–v13: every Brokers[].Host/Port is advertised. Clients
// learn the cluster from this answer, so it is the main place an upstream
// address could leak.

package router

import "github.com/twmb/franz-go/pkg/kmsg"

func rewriteMetadata(resp kmsg.Response, am AddressMap) (bool, error) {
	m := resp.(*kmsg.MetadataResponse)
	return advertiseAll(am, m.Brokers, func(b *kmsg.MetadataResponseBroker) endpoint {
		return endpoint{b.NodeID, &b.Host, &b.Port}
	})
}
