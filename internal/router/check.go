package router

import (
	"fmt"
)

// CheckRequest reports why a request that kproxy reads or patches cannot be
// parsed, so that it stops at the proxy instead of making the broker drop
// the connection, which the session would have to report as the broker's
// failure. Produce and Fetch, the hot path, are walked up to the fields the
// proxy reads (acks and timeout, the long-poll wait) without allocating;
// the other APIs the proxy reads (ApiVersions, group and admin timeouts)
// or whose answers it rewrites are decoded whole. decoded says whether the
// answer is rewritten. Versions beyond kmsg are not checked here.
func (p *Protocol) CheckRequest(q *Request, decoded bool) error {
	if !p.Known(q.Key) || q.Version < 0 || q.Version > p.MaxVersion(q.Key) {
		return nil
	}
	switch q.Key {
	case KeyProduce:
		r, err := q.body()
		if err != nil {
			return err
		}
		if q.Version >= 3 {
			q.skipString(&r) // TransactionalID
		}
		r.skip(2 + 4) // Acks, TimeoutMillis
		if r.bad {
			return fmt.Errorf("acks and timeout: %w", ErrTruncated)
		}
		return nil
	case KeyFetch, KeyShareFetch:
		if _, err := p.FetchMaxWaitOffset(q); err != nil {
			return fmt.Errorf("max wait: %w", err)
		}
		return nil
	}
	if !decoded && !readByProxy(q.Key) {
		return nil
	}
	return decodeBody(q, nil)
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
