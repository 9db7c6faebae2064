package metrics

import "github.com/prometheus/client_golang/prometheus"

func (m *Metrics) newReload(f factory) {
	m.TLSReloadFailures = f.counterVec(prometheus.CounterOpts{
		Name: "kproxy_tls_reload_failures_total", Help: "Changed certificate, key or CA files that could not be loaded (the previous version stays in service), by setting: listen.tls.cert_file, listen.tls.client_ca_file, upstream.tls.cert_file, upstream.tls.ca_file."},
		"setting")
}
