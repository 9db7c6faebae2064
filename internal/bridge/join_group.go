package bridge

// JoinGroup v0 and v1 go up as v2+. v0 has no rebalance timeout; Kafka
// used the session timeout for both, and so does the bridge. The answer's
// fields are the same; v2 added only the throttle. Not exact: nothing for
// v2–3; a broker whose lowest JoinGroup is v4+ answers a first join with
// MEMBER_ID_REQUIRED, which old clients do not know (it reaches them as
// UNKNOWN_SERVER_ERROR).

import "github.com/twmb/franz-go/pkg/kmsg"

type joinGroup struct{}

func (joinGroup) highestTo() int16 { return kmsg.NewPtrJoinGroupRequest().MaxVersion() }

func (joinGroup) up(req kmsg.Request, x *Exchange, _ int) error {
	r := req.(*kmsg.JoinGroupRequest)
	if x.From == 0 {
		r.RebalanceTimeoutMillis = r.SessionTimeoutMillis
	}
	return nil
}

func (joinGroup) down(resp kmsg.Response, x *Exchange, _ int) error {
	r := resp.(*kmsg.JoinGroupResponse)
	r.ErrorCode = x.code(r.ErrorCode)
	return nil
}

func (joinGroup) refuse(_ kmsg.Request, resp kmsg.Response) {
	resp.(*kmsg.JoinGroupResponse).Generation = -1
}
