package listener

import (
	"fmt"

	"github.com/kproxy/kproxy/internal/router"
)

// routing.unknown_apis: hide. A key kmsg does not know is left out of the
// ApiVersions answer; a client that sends one anyway is disconnected, not
// forwarded, since its answer could carry a broker address in a field
// kproxy cannot read. There is no answer to give instead: kproxy does not
// know the key's response layout, and a broker closes the connection on a
// request it cannot parse, too.
const (
	reasonUnknownAPI = "unknown_api"
	frameUnknownAPI  = "unknown_api"
)

func (s *session) refuseUnknownAPI(h router.RequestHeader) (string, error) {
	s.pol.instr.frameError(frameUnknownAPI)
	return reasonUnknownAPI, fmt.Errorf("client sent API key %d v%d, which kproxy does not know: not forwarded (routing.unknown_apis is hide; its answer could carry broker addresses kproxy cannot rewrite)", h.Key, h.Version)
}
