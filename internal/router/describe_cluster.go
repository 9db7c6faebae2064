// DescribeCluster (key 60), v0–v2: Brokers[].Host/Port. From v1 the request
// may ask for controllers (EndpointType 2); they are listed in the same
// array and are advertised like brokers, so admin clients that talk to the
// controllers reach them through the proxy too.

package router

import "github.com/twmb/franz-go/pkg/kmsg"

func rewriteDescribeCluster(resp kmsg.Response, am AddressMap) (bool, error) {
	d := resp.(*kmsg.DescribeClusterResponse)
	return advertiseAll(am, d.Brokers, func(b *kmsg.DescribeClusterResponseBroker) endpoint {
		return endpoint{b.NodeID, &b.Host, &b.Port}
	})
}
