package listener

import (
	"fmt"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/auth"
	"github.com/kproxy/kproxy/internal/metrics"
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
	// bridge: compat.version_bridge auto; requests of versions the brokers
	// removed are translated (bridge.go).
	bridge bool
}

// newRequestPolicy builds the policy of a validated configuration; users are
// listen.sasl.mode terminate's, or nil.
func newRequestPolicy(cfg config.Config, m *metrics.Metrics, users *auth.Users) (*requestPolicy, error) {
	protocol := router.NewProtocol()
	classifier, err := router.NewClassifier(protocol, cfg.Routing.Groups)
	if err != nil {
		return nil, fmt.Errorf("routing.groups: %w", err)
	}
	rewriter := router.NewRewriter(protocol)
	if users != nil {
		rewriter.AdvertiseSASL()
	}
	if cfg.Routing.UnknownAPIs != config.UnknownAPIsForward {
		rewriter.HideUnknownAPIs()
	}
	bridging := cfg.Compat.VersionBridge != config.VersionBridgeOff
	if bridging {
		rewriter.AdvertiseBridged(bridgedKeys())
	}
	return &requestPolicy{
		protocol:   protocol,
		rewriter:   rewriter,
		classifier: classifier,
		barriers:   router.NewBarriers(classifier),
		users:      users,
		instr:      newInstruments(m, protocol, classifier),
		clients:    newClientLabels(m, classifier, cfg.Metrics.ClientIDLabel, cfg.Metrics.MaxClientIDs),
		bridge:     bridging,
	}, nil
}
