package listener_test

import (
	"crypto/tls"
	"os"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/proxytest"
)

// TestFailedCertificateReloadIsVisible: a garbage certificate, then a
// deleted key, keep the last good pair in service, each with one warning
// and one count however many handshakes see it; a good rotation then takes
// over without another count.
func TestFailedCertificateReloadIsVisible(t *testing.T) {
	ca := proxytest.NewCA(t, "client-facing-ca")
	_, certFile, keyFile := ca.Issue(t, "kproxy-one")
	log, logs := observed(t, zap.WarnLevel)
	env := proxytest.Start(t, proxytest.Options{
		Config: func(c *config.Config) { c.Listen.TLS = config.ListenTLS{CertFile: certFile, KeyFile: keyFile} },
		Logger: log,
	})
	failures := env.Metrics.TLSReloadFailures.WithLabelValues("listen.tls.cert_file")
	served := func() string {
		t.Helper()
		c, err := tls.Dial("tcp", env.Bootstrap(), &tls.Config{RootCAs: ca.Pool, ServerName: "localhost"})
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	check := func(step, wantCert string, wantFailures float64) {
		t.Helper()
		for range 3 {
			if got := served(); got != wantCert {
				t.Fatalf("%s: served %q, want %q", step, got, wantCert)
			}
		}
		if got := testutil.ToFloat64(failures); got != wantFailures {
			t.Fatalf("%s: kproxy_tls_reload_failures_total %v, want %v", step, got, wantFailures)
		}
		if got := logs.FilterMessage("tls files changed but did not load").Len(); float64(got) != wantFailures {
			t.Fatalf("%s: %d warnings, want %v", step, got, wantFailures)
		}
	}
	check("start", "kproxy-one", 0)

	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	check("garbage certificate", "kproxy-one", 1)

	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	check("key deleted", "kproxy-one", 2)

	_, newCert, newKey := ca.Issue(t, "kproxy-rotated")
	for _, f := range [][2]string{{newKey, keyFile}, {newCert, certFile}} {
		if err := os.Rename(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	check("good rotation", "kproxy-rotated", 2)
}
