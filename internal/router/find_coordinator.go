// FindCoordinator (key 10): v0–v3 answer one coordinator in top-level
// NodeID/Host/Port; v4+ (KIP-699 batching) answer Coordinators[]. Error
// answers carry NodeID -1, Host "" and Port -1: they name no broker, so they
// are left as they are rather than handed to the AddressMap, which would
// otherwise be asked to create a listener for node -1.

package router

import "github.com/twmb/franz-go/pkg/kmsg"

func rewriteFindCoordinator(resp kmsg.Response, am AddressMap) (bool, error) {
	f := resp.(*kmsg.FindCoordinatorResponse)
	if f.Version < 4 {
		return advertise(am, coordinator(f.NodeID, f.ErrorCode, &f.Host, &f.Port))
	}
	return advertiseAll(am, f.Coordinators, func(c *kmsg.FindCoordinatorResponseCoordinator) endpoint {
		return coordinator(c.NodeID, c.ErrorCode, &c.Host, &c.Port)
	})
}

// coordinator is the endpoint of one answer, or none for an error answer.
func coordinator(node int32, errCode int16, host *string, port *int32) endpoint {
	if node < 0 || errCode != 0 {
		return endpoint{}
	}
	return endpoint{node, host, port}
}
