package upstream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// clientID names the proxy's own requests in broker logs.
const clientID = "kproxy"

// metadataVersion is old enough for every broker since Kafka 1.0 and new
// enough to carry what discovery needs (node ids, hosts, ports).
const metadataVersion = 4

// Discovery is what a seed tells kproxy of the cluster: its brokers, and
// the API versions it accepts (nil when it cannot say: a broker older than
// Kafka 0.10 has no ApiVersions).
type Discovery struct {
	Brokers []kmsg.MetadataResponseBroker
	APIs    []kmsg.ApiVersionsResponseApiKey
}

// FetchBrokers asks the seeds, in order, for the cluster's brokers and the
// API versions they accept, and returns the first answer. It is the proxy's
// own request, never a client's.
func (d *Dialer) FetchBrokers(ctx context.Context, seeds []string) (Discovery, error) {
	var errs []error
	for _, seed := range seeds {
		found, err := d.fetchBrokers(ctx, seed)
		if err == nil {
			return found, nil
		}
		errs = append(errs, fmt.Errorf("seed %s: %w", seed, err))
	}
	return Discovery{}, errors.Join(errs...)
}

func (d *Dialer) fetchBrokers(ctx context.Context, seed string) (Discovery, error) {
	conn, err := d.Dial(ctx, seed)
	if err != nil {
		return Discovery{}, err
	}
	defer conn.Close()
	req := kmsg.NewPtrMetadataRequest()
	req.SetVersion(metadataVersion)
	req.Topics = []kmsg.MetadataRequestTopic{} // brokers only
	resp := kmsg.NewPtrMetadataResponse()
	if err := roundTrip(ctx, conn, req, resp, d.Timeout); err != nil {
		return Discovery{}, err
	}
	found := Discovery{Brokers: resp.Brokers}
	// ApiVersions v0, which every broker since 0.10 answers, Kafka 4
	// included. Asked second: a broker that cannot answer it (or closes
	// the connection on it) still gave its brokers, and kproxy then knows
	// nothing of its versions, so it bridges none.
	versions := kmsg.NewPtrApiVersionsRequest()
	versionsResp := kmsg.NewPtrApiVersionsResponse()
	if roundTrip(ctx, conn, versions, versionsResp, d.Timeout) == nil && versionsResp.ErrorCode == 0 {
		found.APIs = versionsResp.ApiKeys
	}
	return found, nil
}

// roundTrip sends one request and reads its answer on a connection that has
// nothing else in flight.
func roundTrip(ctx context.Context, conn net.Conn, req kmsg.Request, resp kmsg.Response, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline)
	defer conn.SetDeadline(time.Time{})

	const corr = 1
	if _, err := conn.Write(AppendRequest(make([]byte, 0, 64), req, corr, clientID)); err != nil {
		return fmt.Errorf("send %s: %w", kmsg.NameForKey(req.Key()), err)
	}

	var hdr [8]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return fmt.Errorf("read %s answer: %w", kmsg.NameForKey(req.Key()), err)
	}
	size := binary.BigEndian.Uint32(hdr[:4])
	if size < 4 || size > 64<<20 {
		return fmt.Errorf("read %s answer: size %d out of range", kmsg.NameForKey(req.Key()), size)
	}
	if got := int32(binary.BigEndian.Uint32(hdr[4:])); got != corr {
		return fmt.Errorf("read %s answer: correlation id %d, want %d", kmsg.NameForKey(req.Key()), got, corr)
	}
	body := make([]byte, size-4)
	if _, err := io.ReadFull(conn, body); err != nil {
		return fmt.Errorf("read %s answer: %w", kmsg.NameForKey(req.Key()), err)
	}
	return DecodeResponse(body, req, resp)
}

// ApiVersions asks the broker at addr which API versions it accepts, on the
// connection kept for kproxy's own questions to it (ownConns).
func (d *Dialer) ApiVersions(ctx context.Context, addr string) ([]kmsg.ApiVersionsResponseApiKey, error) {
	req := kmsg.NewPtrApiVersionsRequest() // v0: every broker since 0.10 answers it
	resp := kmsg.NewPtrApiVersionsResponse()
	if err := d.own.ask(ctx, d, addr, req, resp); err != nil {
		return nil, err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, fmt.Errorf("api versions of %s: %w", addr, err)
	}
	return resp.ApiKeys, nil
}

// FindCoordinator asks the broker at addr which broker coordinates group,
// on the connection kept for kproxy's own questions to it (ownConns): for
// the old OffsetCommit and OffsetFetch versions whose clients send them to
// any broker (the version bridge sends them on to the coordinator). It is
// the proxy's own request.
func (d *Dialer) FindCoordinator(ctx context.Context, addr, group string) (int32, error) {
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorKey = group
	resp := kmsg.NewPtrFindCoordinatorResponse()
	if err := d.own.ask(ctx, d, addr, req, resp); err != nil {
		return 0, err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return 0, fmt.Errorf("find the coordinator of group %q: %w", group, err)
	}
	return resp.NodeID, nil
}
