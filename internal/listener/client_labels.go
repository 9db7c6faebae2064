package listener

import (
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kproxy/kproxy/internal/metrics"
	"github.com/kproxy/kproxy/internal/router"
)

// Per-client figures (metrics.client_id_label): each distinct client.id
// gets its own children of the kproxy_client_* metrics, resolved once when
// a session learns its client id, so the forward path only adds to
// counters. The first metrics.max_client_ids ids keep their label for the
// life of the process; a session of any later id counts as "other".

const (
	clientIDOther   = "other"
	clientIDNone    = "none" // a null or empty client.id
	clientIDMaxLen  = 64     // bytes of a client.id kept in a label
	clientIDOverlay = "…"
)

// clientInstruments are one client_id's children.
type clientInstruments struct {
	requests []prometheus.Counter  // by group
	duration []prometheus.Observer // by group
	in, out  prometheus.Counter
}

// clientLabels resolves client ids to children for one set of routing
// groups; a reload of routing.groups makes another over the same ids.
type clientLabels struct {
	m       *metrics.Metrics
	ids     *clientIDs
	groups  []string
	mu      sync.Mutex
	byLabel map[string]*clientInstruments
}

// clientIDs are the label values given out, for the life of the process.
type clientIDs struct {
	max      int
	overflow prometheus.Counter
	mu       sync.Mutex
	given    map[string]bool
}

// newClientLabels returns nil when per-client figures are off.
func newClientLabels(m *metrics.Metrics, c *router.Classifier, enabled bool, max int) *clientLabels {
	if !enabled {
		return nil
	}
	ids := &clientIDs{max: max, overflow: m.ClientIDOverflow, given: map[string]bool{}}
	return ids.labels(m, c)
}

// forClassifier is the same ids' children under other routing groups; nil
// stays nil.
func (cl *clientLabels) forClassifier(c *router.Classifier) *clientLabels {
	if cl == nil {
		return nil
	}
	return cl.ids.labels(cl.m, c)
}

func (ids *clientIDs) labels(m *metrics.Metrics, c *router.Classifier) *clientLabels {
	cl := &clientLabels{m: m, ids: ids, byLabel: map[string]*clientInstruments{}}
	for g := range c.Len() {
		cl.groups = append(cl.groups, c.Name(router.Group(g)))
	}
	return cl
}

// admit returns label while the first max labels last, and "other" after.
func (ids *clientIDs) admit(label string) string {
	ids.mu.Lock()
	defer ids.mu.Unlock()
	if ids.given[label] {
		return label
	}
	if len(ids.given) >= ids.max {
		ids.overflow.Inc()
		return clientIDOther
	}
	ids.given[label] = true
	return label
}

// forID returns the children of a session's client id, making them for a
// new id while there is room.
func (cl *clientLabels) forID(id string) *clientInstruments {
	label := cl.ids.admit(clientIDLabel(id))
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if ci, ok := cl.byLabel[label]; ok {
		return ci
	}
	ci := cl.children(label)
	cl.byLabel[label] = ci
	return ci
}

func (cl *clientLabels) children(label string) *clientInstruments {
	ci := &clientInstruments{
		in:  cl.m.ClientBytes.WithLabelValues(label, metrics.ClientIn),
		out: cl.m.ClientBytes.WithLabelValues(label, metrics.ClientOut),
	}
	for _, g := range cl.groups {
		ci.requests = append(ci.requests, cl.m.ClientRequests.WithLabelValues(label, g))
		ci.duration = append(ci.duration, cl.m.ClientRequestDuration.WithLabelValues(label, g))
	}
	return ci
}

// clientIDLabel makes a client id fit for a label value and a JSON field:
// valid UTF-8, at most clientIDMaxLen bytes, never empty.
func clientIDLabel(id string) string {
	if id == "" {
		return clientIDNone
	}
	id = strings.ToValidUTF8(id, "\uFFFD")
	if len(id) <= clientIDMaxLen {
		return id
	}
	cut := clientIDMaxLen - len(clientIDOverlay)
	for cut > 0 && !utf8.RuneStart(id[cut]) {
		cut--
	}
	return id[:cut] + clientIDOverlay
}
