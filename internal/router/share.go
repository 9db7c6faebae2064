// ShareFetch (key 78) and ShareAcknowledge (key 79), v0–v2 (KIP-932):
// NodeEndpoints is a regular field, not a tag, and is filled when a
// partition's leader moved. Share groups are rare enough that these
// responses are always decoded rather than walked.

package router

import "github.com/twmb/franz-go/pkg/kmsg"

func rewriteShareFetch(resp kmsg.Response, am AddressMap) (bool, error) {
	s := resp.(*kmsg.ShareFetchResponse)
	return advertiseAll(am, s.NodeEndpoints, func(n *kmsg.ShareFetchResponseNodeEndpoint) endpoint {
		return endpoint{n.NodeID, &n.Host, &n.Port}
	})
}

func rewriteShareAcknowledge(resp kmsg.Response, am AddressMap) (bool, error) {
	s := resp.(*kmsg.ShareAcknowledgeResponse)
	return advertiseAll(am, s.NodeEndpoints, func(n *kmsg.ShareAcknowledgeResponseNodeEndpoint) endpoint {
		return endpoint{n.NodeID, &n.Host, &n.Port}
	})
}
