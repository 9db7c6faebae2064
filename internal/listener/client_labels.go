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

type clientLabels struct {
	m        *metrics.Metrics
	groups   []string
	max      int
	mu       sync.Mutex
	byID     map[string]*clientInstruments
	other    *clientInstruments
	overflow prometheus.Counter
}

// newClientLabels returns nil when per-client figures are off.
func newClientLabels(m *metrics.Metrics, c *router.Classifier, enabled bool, max int) *clientLabels {
	if !enabled {
		return nil
	}
	cl := &clientLabels{m: m, max: max, byID: map[string]*clientInstruments{}, overflow: m.ClientIDOverflow}
	for g := range c.Len() {
		cl.groups = append(cl.groups, c.Name(router.Group(g)))
	}
	return cl
}

// forID returns the children of a session's client id, making them for a
// new id while there is room.
func (cl *clientLabels) forID(id string) *clientInstruments {
	label := clientIDLabel(id)
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if ci, ok := cl.byID[label]; ok {
		return ci
	}
	if len(cl.byID) >= cl.max {
		cl.overflow.Inc()
		if cl.other == nil {
			cl.other = cl.children(clientIDOther)
		}
		return cl.other
	}
	ci := cl.children(label)
	cl.byID[label] = ci
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
