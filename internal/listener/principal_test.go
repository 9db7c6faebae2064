package listener_test

import (
	"crypto/tls"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/proxytest"
)

// TestSessionsShowPrincipalNotSecret: a client with a certificate and
// SASL shows both names in /debug/sessions, and the page holds no password.
func TestSessionsShowPrincipalNotSecret(t *testing.T) {
	ca := proxytest.NewCA(t, "proxy-ca")
	_, certFile, keyFile := ca.Issue(t, "kproxy")
	clientCA := proxytest.NewCA(t, "client-ca")
	clientCert, _, _ := clientCA.Issue(t, "app-cert")
	env := secureEnv(t, config.ListenTLS{CertFile: certFile, KeyFile: keyFile, ClientCAFile: clientCA.CAFile(t)})
	cl := newClient(t, env.Bootstrap(), kgo.ClientID("secure-app"),
		kgo.DialTLSConfig(&tls.Config{RootCAs: ca.Pool, Certificates: []tls.Certificate{clientCert}}),
		kgo.SASL(plain.Auth{User: "app", Pass: "app-secret"}.AsMechanism()))
	if err := cl.Ping(ctxTimeout(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	list, _ := env.Proxy.Sessions(100)
	page, err := json.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range list {
		if s.ClientID == "secure-app" {
			found = true
			if !strings.HasPrefix(s.Principal, "sasl:app tls:") || !strings.Contains(s.Principal, "CN=app-cert") {
				t.Errorf("principal %q, want sasl:app and the certificate's subject", s.Principal)
			}
		}
	}
	if !found {
		t.Fatalf("no session of secure-app: %s", page)
	}
	for _, secret := range []string{"app-secret", "upstream-secret", "tools-secret"} {
		if strings.Contains(string(page), secret) {
			t.Errorf("the sessions page carries the secret %q", secret)
		}
	}
}
