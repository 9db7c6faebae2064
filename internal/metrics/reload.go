package metrics

import "github.com/prometheus/client_golang/prometheus"

// Values of kproxy_config_reloads_total{result}.
const (
	ReloadSuccess = "success"
	ReloadFailure = "failure"
)

func (m *Metrics) newReload(f factory) {
	m.ConfigReloads = f.counterVec(prometheus.CounterOpts{
		Name: "kproxy_config_reloads_total", Help: "Configuration reloads (SIGHUP), by result: success or failure (the file or environment was refused and the running configuration kept)."},
		"result")
	m.ConfigLastReloadSuccess = f.gauge(prometheus.GaugeOpts{
		Name: "kproxy_config_last_reload_success_timestamp_seconds", Help: "Unix time of the last successful configuration load, at start-up or by reload."})
	for _, r := range []string{ReloadSuccess, ReloadFailure} {
		m.ConfigReloads.WithLabelValues(r)
	}
	m.TLSReloadFailures = f.counterVec(prometheus.CounterOpts{
		Name: "kproxy_tls_reload_failures_total", Help: "Changed certificate, key or CA files that could not be loaded (the previous version stays in service), by setting: listen.tls.cert_file, listen.tls.client_ca_file, upstream.tls.cert_file, upstream.tls.ca_file."},
		"setting")
}
