package bridge

// DescribeAcls, CreateAcls and DeleteAcls v0 go up as v1+ with pattern type
// LITERAL, which is what v0 meant (KIP-290). Not exact: an answer naming an
// ACL of another pattern type (PREFIXED) cannot be said at v0; it is left
// out of DescribeAcls and DeleteAcls v0 answers. The literal filter the
// bridge sends matches only literal ACLs, so such an entry comes only from a
// broker that answers more than it was asked.

import "github.com/twmb/franz-go/pkg/kmsg"

type (
	describeACLs struct{}
	createACLs   struct{}
	deleteACLs   struct{}
)

func (describeACLs) highestTo() int16 { return kmsg.NewPtrDescribeACLsRequest().MaxVersion() }
func (createACLs) highestTo() int16   { return kmsg.NewPtrCreateACLsRequest().MaxVersion() }
func (deleteACLs) highestTo() int16   { return kmsg.NewPtrDeleteACLsRequest().MaxVersion() }

func (describeACLs) up(req kmsg.Request, _ *Exchange, _ int) error {
	req.(*kmsg.DescribeACLsRequest).ResourcePatternType = kmsg.ACLResourcePatternTypeLiteral
	return nil
}

func (createACLs) up(req kmsg.Request, _ *Exchange, _ int) error {
	r := req.(*kmsg.CreateACLsRequest)
	for i := range r.Creations {
		r.Creations[i].ResourcePatternType = kmsg.ACLResourcePatternTypeLiteral
	}
	return nil
}

func (deleteACLs) up(req kmsg.Request, _ *Exchange, _ int) error {
	r := req.(*kmsg.DeleteACLsRequest)
	for i := range r.Filters {
		r.Filters[i].ResourcePatternType = kmsg.ACLResourcePatternTypeLiteral
	}
	return nil
}

func (describeACLs) down(resp kmsg.Response, x *Exchange, _ int) error {
	r := resp.(*kmsg.DescribeACLsResponse)
	r.ErrorCode = x.code(r.ErrorCode)
	if x.From == 0 {
		r.Resources = keepLiteral(r.Resources, func(r kmsg.DescribeACLsResponseResource) kmsg.ACLResourcePatternType {
			return r.ResourcePatternType
		})
	}
	return nil
}

func (createACLs) down(resp kmsg.Response, x *Exchange, _ int) error {
	r := resp.(*kmsg.CreateACLsResponse)
	for i := range r.Results {
		r.Results[i].ErrorCode = x.code(r.Results[i].ErrorCode)
	}
	return nil
}

func (deleteACLs) down(resp kmsg.Response, x *Exchange, _ int) error {
	r := resp.(*kmsg.DeleteACLsResponse)
	for i := range r.Results {
		res := &r.Results[i]
		res.ErrorCode = x.code(res.ErrorCode)
		if x.From == 0 {
			res.MatchingACLs = keepLiteral(res.MatchingACLs, func(a kmsg.DeleteACLsResponseResultMatchingACL) kmsg.ACLResourcePatternType {
				return a.ResourcePatternType
			})
		}
		for j := range res.MatchingACLs {
			res.MatchingACLs[j].ErrorCode = x.code(res.MatchingACLs[j].ErrorCode)
		}
	}
	return nil
}

// keepLiteral keeps, in place, the entries of literal pattern type.
func keepLiteral[T any](entries []T, pattern func(T) kmsg.ACLResourcePatternType) []T {
	kept := entries[:0]
	for _, e := range entries {
		if pattern(e) == kmsg.ACLResourcePatternTypeLiteral {
			kept = append(kept, e)
		}
	}
	return kept
}

func (describeACLs) refuse(kmsg.Request, kmsg.Response) {}

func (createACLs) refuse(req kmsg.Request, resp kmsg.Response) {
	q, r := req.(*kmsg.CreateACLsRequest), resp.(*kmsg.CreateACLsResponse)
	for range q.Creations {
		r.Results = append(r.Results, kmsg.NewCreateACLsResponseResult())
	}
}

func (deleteACLs) refuse(req kmsg.Request, resp kmsg.Response) {
	q, r := req.(*kmsg.DeleteACLsRequest), resp.(*kmsg.DeleteACLsResponse)
	for range q.Filters {
		r.Results = append(r.Results, kmsg.NewDeleteACLsResponseResult())
	}
}
