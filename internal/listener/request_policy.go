package listener

import (
	"github.com/kproxy/kproxy/internal/auth"
	"github.com/kproxy/kproxy/internal/router"
)

// requestPolicy is what decides each request's fate, held as fields the way
// httputil.ReverseProxy holds its policy: the session's steps (SASL,
// ApiVersions and version checks, acks, the fetch wait, barriers, the lane)
// read them and carry no policy of their own. A session takes the server's
// at accept and keeps it for its life; Reload builds a new one for the
// sessions after it, so a request never changes lane mid-session.
type requestPolicy struct {
	protocol   *router.Protocol   // header layouts; the versions kproxy can read
	rewriter   *router.Rewriter   // answers rewritten, API keys hidden, versions capped
	classifier *router.Classifier // each API key's group, and so its lane
	barriers   *router.Barriers   // which earlier requests a later one waits for
	users      *auth.Users        // listen.sasl.mode terminate; nil: client SASL refused
	instr      *instruments       // the metrics, labelled with the classifier's groups
	clients    *clientLabels      // metrics.client_id_label; nil: off
}
