package router

import (
	"encoding/binary"
	"errors"
)

// Fetch (1) v0–v18 and ShareFetch (78) v0–v2: MaxWaitMillis, the long-poll
// bound, patched in place in the request frame. A broker may always answer
// a fetch before MaxWaitMillis; clients simply fetch again, so lowering it
// is invisible to them except as more, shorter polls.
//
// Layout in front of MaxWaitMillis, after the request header:
//   Fetch v0–v14:  ReplicaID int32
//   Fetch v15+:    nothing (ReplicaID moved into the ReplicaState tag)
//   ShareFetch:    GroupID, MemberID (compact nullable strings),
//                  ShareSessionEpoch int32

// errNotFetch is returned for frames whose MaxWaitMillis cannot be located.
var errNotFetch = errors.New("not a Fetch or ShareFetch request of a known version")

// FetchMaxWaitOffset returns where MaxWaitMillis starts in the frame of a
// Fetch or ShareFetch request.
func (p *Protocol) FetchMaxWaitOffset(q *Request) (int, error) {
	if (q.Key != KeyFetch && q.Key != KeyShareFetch) || q.Version < 0 || q.Version > p.MaxVersion(q.Key) {
		return 0, errNotFetch
	}
	r, err := q.body()
	if err != nil {
		return 0, err
	}
	switch {
	case q.Key == KeyShareFetch:
		r.compactNullableString() // GroupID
		r.compactNullableString() // MemberID
		r.skip(4)                 // ShareSessionEpoch
	case q.Version < 15:
		r.skip(4) // ReplicaID
	}
	r.skip(4) // MaxWaitMillis itself must be there
	if r.bad {
		return 0, ErrTruncated
	}
	return r.off - 4, nil
}

// CapFetchWait lowers the MaxWaitMillis of a Fetch or ShareFetch request
// in place, in its frame, to at most maxMillis, without decoding or
// allocating. It returns the value the client asked for and whether it was
// lowered.
func (p *Protocol) CapFetchWait(q *Request, maxMillis int32) (was int32, capped bool, err error) {
	off, err := p.FetchMaxWaitOffset(q)
	if err != nil {
		return 0, false, err
	}
	was = int32(binary.BigEndian.Uint32(q.Frame[off:]))
	if was <= maxMillis {
		return was, false, nil
	}
	binary.BigEndian.PutUint32(q.Frame[off:], uint32(maxMillis))
	return was, true, nil
}
