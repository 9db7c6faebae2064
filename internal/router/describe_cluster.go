// DescribeCluster (key 60), v0–v2: Brokers[].Host/Port. From v1 the request
// may ask for controllers (EndpointType 2, KIP-919); the answer then lists
// controllers in the same array, and they are advertised as controllers,
// on ports of their own, so admin clients that talk to the controllers
// reach them through the proxy too, and never through a broker's port.

package router

import "github.com/twmb/franz-go/pkg/kmsg"

// endpointTypeController is DescribeCluster's EndpointType for controllers.
const endpointTypeController = 2

func rewriteDescribeCluster(resp kmsg.Response, am AddressMap) (bool, error) {
	d := resp.(*kmsg.DescribeClusterResponse)
	if d.Version >= 1 && d.EndpointType == endpointTypeController {
		am = controllerMap{am}
	}
	return advertiseAll(am, d.Brokers, func(b *kmsg.DescribeClusterResponseBroker) endpoint {
		return endpoint{b.NodeID, &b.Host, &b.Port}
	})
}

// controllerMap advertises the nodes of an answer that lists controllers.
type controllerMap struct{ AddressMap }

func (m controllerMap) Advertise(nodeID int32, host string, port int32) (string, int32, error) {
	return m.AdvertiseController(nodeID, host, port)
}
