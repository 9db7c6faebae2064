package listener_test

import (
	"net"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/internal/proxytest"
)

// TestDescribeClusterControllersOwnPorts: in combined KRaft mode node 0 is
// both a broker and a controller, at two upstream addresses. A
// DescribeCluster that asks for controllers (EndpointType 2) must name a
// client port of the controller's own that leads to the controller, and the
// broker's port must keep leading to the broker.
func TestDescribeClusterControllersOwnPorts(t *testing.T) {
	env := proxytest.Start(t, proxytest.Options{Brokers: 1})
	controller, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { controller.Close() })
	reached := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := controller.Accept()
			if err != nil {
				return
			}
			reached <- c
		}
	}()
	ctrlPort := int32(controller.Addr().(*net.TCPAddr).Port)
	env.Cluster.ControlKey(int16(kmsg.DescribeCluster), func(req kmsg.Request) (kmsg.Response, error, bool) {
		r := req.(*kmsg.DescribeClusterRequest)
		resp := r.ResponseKind().(*kmsg.DescribeClusterResponse)
		resp.EndpointType = r.EndpointType
		b := kmsg.NewDescribeClusterResponseBroker()
		b.NodeID, b.Host, b.Port = 0, "127.0.0.1", ctrlPort
		resp.Brokers = append(resp.Brokers, b)
		return resp, nil, true
	})

	c := dialRaw(t, env.Bootstrap(), "admin")
	req := kmsg.NewPtrDescribeClusterRequest()
	req.SetVersion(1)
	req.EndpointType = 2
	if _, err := c.Send(req); err != nil {
		t.Fatal(err)
	}
	r, err := c.Read()
	if err != nil {
		t.Fatal(err)
	}
	resp := r.Msg.(*kmsg.DescribeClusterResponse)
	if len(resp.Brokers) != 1 || resp.Brokers[0].Port == ctrlPort {
		t.Fatalf("controllers not rewritten: %+v", resp.Brokers)
	}
	ctrlAddr := net.JoinHostPort(resp.Brokers[0].Host, strconv.Itoa(int(resp.Brokers[0].Port)))
	brokerAddr := env.Proxy.BrokerAddrs()[0]
	if ctrlAddr == brokerAddr {
		t.Fatalf("controller 0 advertised at broker 0's port %s", brokerAddr)
	}

	// The controller's port leads to the controller.
	cc := dialRaw(t, ctrlAddr, "admin")
	if _, err := cc.Send(kmsg.NewPtrApiVersionsRequest()); err != nil {
		t.Fatal(err)
	}
	// Closing it answers nothing: the session ends, as with a broker that
	// hangs up.
	(<-reached).Close()

	// The broker's port still leads to the broker.
	bc := dialRaw(t, brokerAddr, "client")
	meta := kmsg.NewPtrMetadataRequest()
	meta.SetVersion(9)
	if _, err := bc.Send(meta); err != nil {
		t.Fatal(err)
	}
	mr, err := bc.Read()
	if err != nil {
		t.Fatalf("broker 0 through its port after the controller was advertised: %v", err)
	}
	if brokers := mr.Msg.(*kmsg.MetadataResponse).Brokers; len(brokers) != 1 || net.JoinHostPort(brokers[0].Host, strconv.Itoa(int(brokers[0].Port))) != brokerAddr {
		t.Fatalf("metadata through broker 0: %+v, want broker 0 at %s", brokers, brokerAddr)
	}
}
