package router

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// CheckRequest reports why a request that kproxy reads or patches cannot be
// parsed, so that it stops at the proxy instead of making the broker drop
// the connection, which the session would have to report as the broker's
// failure. Produce and Fetch, the hot path, are walked up to the fields the
// proxy reads (acks and timeout, the long-poll wait) without allocating;
// the other APIs the proxy reads (ApiVersions, group and admin timeouts)
// or whose answers it rewrites are decoded whole. decoded says whether the
// answer is rewritten. Versions beyond kmsg are not checked here.
func (p *Protocol) CheckRequest(body []byte, h RequestHeader, decoded bool) error {
	if !p.Known(h.Key) || h.Version < 0 || h.Version > p.MaxVersion(h.Key) {
		return nil
	}
	switch h.Key {
	case KeyProduce:
		off, err := p.RequestBodyOffset(body, h)
		if err != nil {
			return err
		}
		r := reader{b: body, off: off}
		if h.Version >= 3 {
			skipString(&r, p.FlexibleRequest(h.Key, h.Version)) // TransactionalID
		}
		r.skip(2 + 4) // Acks, TimeoutMillis
		if r.bad {
			return fmt.Errorf("acks and timeout: %w", ErrTruncated)
		}
		return nil
	case KeyFetch, KeyShareFetch:
		if _, err := p.FetchMaxWaitOffset(body, h); err != nil {
			return fmt.Errorf("max wait: %w", err)
		}
		return nil
	}
	if !decoded && !readByProxy(h.Key) {
		return nil
	}
	off, err := p.RequestBodyOffset(body, h)
	if err != nil {
		return err
	}
	req := kmsg.RequestForKey(h.Key)
	req.SetVersion(h.Version)
	return req.ReadFrom(body[off:])
}

// readByProxy are the APIs, beside Produce and Fetch, whose requests the
// proxy reads: the client's software name, and request timeouts.
func readByProxy(key int16) bool {
	switch key {
	case KeyApiVersions, KeyJoinGroup, KeySyncGroup, KeyListOffsets, keyCreateTopics, keyDeleteTopics, keyDeleteRecords,
		keyCreatePartitions, keyElectLeaders, keyAlterPartitionAssignments, keyListPartitionReassignments, keyUpdateFeatures:
		return true
	}
	return false
}
