package listener_test

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"go.uber.org/zap"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/proxytest"
	"github.com/kproxy/kproxy/internal/rawclient"
)

func TestClientTLSAndSASLTerminate(t *testing.T) {
	ca := proxytest.NewCA(t, "proxy-ca")
	_, certFile, keyFile := ca.Issue(t, "kproxy")
	clientCA := proxytest.NewCA(t, "client-ca")
	clientCert, _, _ := clientCA.Issue(t, "app")
	env := secureEnv(t, config.ListenTLS{CertFile: certFile, KeyFile: keyFile, ClientCAFile: clientCA.CAFile(t)})
	tlsCfg := &tls.Config{RootCAs: ca.Pool, Certificates: []tls.Certificate{clientCert}}

	for name, mech := range map[string]sasl.Mechanism{
		"scram-sha-256": scram.Auth{User: "app", Pass: "app-secret"}.AsSha256Mechanism(),
		"scram-sha-512": scram.Auth{User: "tools", Pass: "tools-secret"}.AsSha512Mechanism(),
		"plain":         plain.Auth{User: "app", Pass: "app-secret"}.AsMechanism(),
	} {
		t.Run(name, func(t *testing.T) {
			ctx := ctxTimeout(t, 30*time.Second)
			topic := "t"
			cl := newClient(t, env.Bootstrap(), kgo.DialTLSConfig(tlsCfg), kgo.SASL(mech), kgo.DefaultProduceTopic(topic),
				kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(name)}).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
			found := false
			for !found {
				fs := cl.PollFetches(ctx)
				if ctx.Err() != nil {
					t.Fatal("record not consumed")
				}
				fs.EachRecord(func(r *kgo.Record) { found = found || string(r.Value) == name })
			}
		})
	}

	t.Run("wrong password", func(t *testing.T) {
		cl := newClient(t, env.Bootstrap(), kgo.DialTLSConfig(tlsCfg), kgo.SASL(scram.Auth{User: "app", Pass: "nope"}.AsSha256Mechanism()))
		err := cl.Ping(ctxTimeout(t, 10*time.Second))
		if err == nil || !strings.Contains(err.Error(), kerr.SaslAuthenticationFailed.Message) {
			t.Fatalf("ping with a wrong password: %v, want %s", err, kerr.SaslAuthenticationFailed.Message)
		}
	})
	t.Run("no client certificate", func(t *testing.T) {
		cl := newClient(t, env.Bootstrap(), kgo.DialTLSConfig(&tls.Config{RootCAs: ca.Pool}), kgo.SASL(plain.Auth{User: "app", Pass: "app-secret"}.AsMechanism()))
		if err := cl.Ping(ctxTimeout(t, 10*time.Second)); err == nil {
			t.Fatal("a client without a certificate got through mutual TLS")
		}
	})
	t.Run("plaintext client on the TLS port", func(t *testing.T) {
		conn, err := rawclient.Dial(env.Bootstrap())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Send(kmsg.NewPtrApiVersionsRequest()); err != nil {
			t.Fatal(err)
		}
		expectClosed(t, conn.Conn)
	})
}

// TestTerminateRefusesRequestsBeforeAuth: ApiVersions is served, anything
// else before authentication closes the connection, as a broker does.
func TestTerminateRefusesRequestsBeforeAuth(t *testing.T) {
	env := secureEnv(t, config.ListenTLS{})
	conn, err := rawclient.Dial(env.Bootstrap())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Send(kmsg.NewPtrApiVersionsRequest()); err != nil {
		t.Fatal(err)
	}
	if resp, err := conn.Read(); err != nil || resp.Msg.(*kmsg.ApiVersionsResponse).ErrorCode != 0 {
		t.Fatalf("ApiVersions before auth: %v %v", resp, err)
	}
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version = 1
	hs.Mechanism = "GSSAPI"
	if _, err := conn.Send(hs); err != nil {
		t.Fatal(err)
	}
	resp, err := conn.Read()
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.Msg.(*kmsg.SASLHandshakeResponse); r.ErrorCode != kerr.UnsupportedSaslMechanism.Code || len(r.SupportedMechanisms) != 3 {
		t.Fatalf("handshake for GSSAPI: %+v", r)
	}
	if _, err := conn.Send(kmsg.NewPtrMetadataRequest()); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, conn.Conn)

	// A client that knows nothing of SASL cannot use a terminating proxy.
	cl := newClient(t, env.Bootstrap())
	if err := cl.Ping(ctxTimeout(t, 5*time.Second)); err == nil {
		t.Fatal("a client without SASL got through terminate mode")
	}
}

// TestNoSecretsInLogsOrMetrics runs SASL on both sides, with a client
// failing too, logging at debug: no password appears in any log entry or
// metric.
func TestNoSecretsInLogsOrMetrics(t *testing.T) {
	log, logs := observed(t, zap.DebugLevel)
	dir := t.TempDir()
	pw := filepath.Join(dir, "app.pw")
	if err := os.WriteFile(pw, []byte("app-secret-7f3a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := proxytest.Start(t, proxytest.Options{
		Kfake: []kfake.Opt{kfake.EnableSASL(), kfake.Superuser(config.SASLPlain, "proxy", "upstream-secret-9c1e"), kfake.SeedTopics(1, "t")},
		Config: func(c *config.Config) {
			c.Upstream.SASL = config.UpstreamSASL{Mechanism: config.SASLPlain, Username: "proxy", Password: "upstream-secret-9c1e"}
			c.Listen.SASL = config.ListenSASL{Mode: config.SASLModeTerminate, Mechanisms: []string{config.SASLPlain, config.SASLScram256}, Users: map[string]string{"app": "file:" + pw}}
		},
		Logger: log,
	})
	good := newClient(t, env.Bootstrap(), kgo.SASL(plain.Auth{User: "app", Pass: "app-secret-7f3a"}.AsMechanism()), kgo.DefaultProduceTopic("t"))
	roundTripWorks(t, good, "x")
	for _, mech := range []sasl.Mechanism{
		plain.Auth{User: "app", Pass: "wrong-secret-55aa"}.AsMechanism(),
		scram.Auth{User: "app", Pass: "wrong-secret-55aa"}.AsSha256Mechanism(),
	} {
		bad := newClient(t, env.Bootstrap(), kgo.SASL(mech))
		if err := bad.Ping(ctxTimeout(t, 10*time.Second)); err == nil {
			t.Fatal("wrong password accepted")
		}
	}
	secrets := []string{"app-secret-7f3a", "upstream-secret-9c1e", "wrong-secret-55aa"}
	if logs.Len() == 0 {
		t.Fatal("no log entries captured")
	}
	for _, e := range logs.All() {
		line := fmt.Sprintf("%s %v", e.Message, e.ContextMap())
		for _, s := range secrets {
			if strings.Contains(line, s) {
				t.Errorf("secret %q in log line: %s", s, line)
			}
		}
	}
	mfs, err := env.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	scrape := fmt.Sprint(mfs)
	for _, s := range secrets {
		if strings.Contains(scrape, s) {
			t.Errorf("secret %q in metrics", s)
		}
	}
	if logs.FilterMessage("client sasl authentication failed").Len() == 0 {
		t.Error("failed client authentication not logged")
	}
	// The authenticated sessions' close lines name their user.
	good.Close()
	waitFor(t, "an authenticated session's close line with its user", func() bool {
		for _, e := range logs.FilterMessage("session closed").All() {
			if e.ContextMap()["user"] == "app" && e.ContextMap()["reason"] == "client_closed" {
				return true
			}
		}
		return false
	})
}
