package listener_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/proxytest"
)

// produceConsume sends n records through a client that knows nothing of
// SASL or TLS and reads them back.
func produceConsume(t *testing.T, bootstrap, topic string, n int) {
	t.Helper()
	ctx := ctxTimeout(t, 60*time.Second)
	producer := newClient(t, bootstrap, kgo.DefaultProduceTopic(topic))
	for i := range n {
		if err := producer.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "r%d", i)}).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	consumer := newClient(t, bootstrap, kgo.ConsumeTopics(topic), kgo.ConsumerGroup("g-"+topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := consumeExactly(t, ctx, consumer, n)
	for i := range n {
		if !seen[fmt.Sprintf("r%d", i)] {
			t.Fatalf("record r%d missing", i)
		}
	}
}

func TestUpstreamSASLMechanisms(t *testing.T) {
	for _, mech := range []string{config.SASLPlain, config.SASLScram256, config.SASLScram512} {
		t.Run(mech, func(t *testing.T) {
			t.Parallel()
			pwFile := t.TempDir() + "/pw"
			if err := os.WriteFile(pwFile, []byte("proxy-secret\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			env := proxytest.Start(t, proxytest.Options{
				Kfake: []kfake.Opt{kfake.EnableSASL(), kfake.Superuser(mech, "proxy", "proxy-secret"), kfake.SeedTopics(3, "t")},
				Config: func(c *config.Config) {
					c.Upstream.SASL = config.UpstreamSASL{Mechanism: mech, Username: "proxy", PasswordFile: pwFile}
				},
			})
			if !env.Proxy.Ready() {
				t.Fatalf("not ready: %v", env.Proxy.NotReadyReason())
			}
			produceConsume(t, env.Bootstrap(), "t", 20)
		})
	}
}

func TestUpstreamTLS(t *testing.T) {
	ca := proxytest.NewCA(t, "cluster-ca")
	serverCert, _, _ := ca.Issue(t, "broker")
	proxyCA := proxytest.NewCA(t, "proxy-ca")
	_, clientCert, clientKey := proxyCA.Issue(t, "kproxy")

	t.Run("server", func(t *testing.T) {
		t.Parallel()
		env := proxytest.Start(t, proxytest.Options{
			Kfake: []kfake.Opt{kfake.TLS(&tls.Config{Certificates: []tls.Certificate{serverCert}}), kfake.SeedTopics(1, "t")},
			Config: func(c *config.Config) {
				c.Upstream.TLS = config.UpstreamTLS{Enabled: true, CAFile: ca.CAFile(t)}
			},
		})
		produceConsume(t, env.Bootstrap(), "t", 10)
	})
	t.Run("mutual", func(t *testing.T) {
		t.Parallel()
		env := proxytest.Start(t, proxytest.Options{
			Kfake: []kfake.Opt{kfake.TLS(&tls.Config{
				Certificates: []tls.Certificate{serverCert},
				ClientAuth:   tls.RequireAndVerifyClientCert,
				ClientCAs:    proxyCA.Pool,
			}), kfake.SeedTopics(1, "t")},
			Config: func(c *config.Config) {
				c.Upstream.TLS = config.UpstreamTLS{Enabled: true, CAFile: ca.CAFile(t), CertFile: clientCert, KeyFile: clientKey}
			},
		})
		produceConsume(t, env.Bootstrap(), "t", 10)
	})
	t.Run("wrong CA", func(t *testing.T) {
		t.Parallel()
		log, logs := observed(t, zap.InfoLevel)
		env := proxytest.Start(t, proxytest.Options{
			Kfake:    []kfake.Opt{kfake.TLS(&tls.Config{Certificates: []tls.Certificate{serverCert}})},
			Logger:   log,
			NotReady: true,
			Config: func(c *config.Config) {
				c.Upstream.TLS = config.UpstreamTLS{Enabled: true, CAFile: proxyCA.CAFile(t)}
			},
		})
		waitFor(t, "the tls failure to be logged", func() bool { return logs.FilterMessage("upstream tls handshake failed").Len() > 0 })
		entry := logs.FilterMessage("upstream tls handshake failed").All()[0]
		if msg := fmt.Sprint(entry.ContextMap()["error"]); !strings.Contains(msg, "certificate") {
			t.Errorf("logged error does not name the certificate problem: %s", msg)
		}
		if env.Proxy.Ready() || !strings.Contains(fmt.Sprint(env.Proxy.NotReadyReason()), "certificate") {
			t.Errorf("Ready %v, NotReadyReason %q; want not ready with the certificate error", env.Proxy.Ready(), env.Proxy.NotReadyReason())
		}
		// Not ready: the client is refused at once, never left hanging.
		if err := refusedRoundTrip(t, env.Bootstrap()); err == nil {
			t.Fatal("a client was answered by a proxy that cannot reach the cluster")
		}
	})
}

// TestUpstreamClientCertReload rotates the proxy's client certificate on
// disk: the next connection presents the new one, the old ones stay up.
func TestUpstreamClientCertReload(t *testing.T) {
	ca := proxytest.NewCA(t, "cluster-ca")
	serverCert, _, _ := ca.Issue(t, "broker")
	clientCA := proxytest.NewCA(t, "client-ca")
	_, certFile, keyFile := clientCA.Issue(t, "kproxy-one")
	pool := x509.NewCertPool()
	pool.AddCert(clientCA.Cert)
	var mu sync.Mutex
	seen := map[string]bool{}
	env := proxytest.Start(t, proxytest.Options{
		Kfake: []kfake.Opt{kfake.TLS(&tls.Config{
			Certificates: []tls.Certificate{serverCert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    pool,
			VerifyConnection: func(cs tls.ConnectionState) error {
				mu.Lock()
				seen[cs.PeerCertificates[0].Subject.CommonName] = true
				mu.Unlock()
				return nil
			},
		}), kfake.SeedTopics(1, "t")},
		Config: func(c *config.Config) {
			c.Upstream.TLS = config.UpstreamTLS{Enabled: true, CAFile: ca.CAFile(t), CertFile: certFile, KeyFile: keyFile}
		},
	})
	old := newClient(t, env.Bootstrap(), kgo.DefaultProduceTopic("t"))
	roundTripWorks(t, old, "before rotation")

	_, newCert, newKey := clientCA.Issue(t, "kproxy-rotated")
	for _, f := range [][2]string{{newCert, certFile}, {newKey, keyFile}} {
		b, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	fresh := newClient(t, env.Bootstrap(), kgo.DefaultProduceTopic("t"))
	roundTripWorks(t, fresh, "after rotation")
	roundTripWorks(t, old, "old client after rotation")
	mu.Lock()
	defer mu.Unlock()
	if !seen["kproxy-one"] || !seen["kproxy-rotated"] {
		t.Fatalf("client certificates presented: %v; want the first and then the rotated one", seen)
	}
}

// TestUpstreamWrongPassword: a broker that answers the way Kafka does
// (SASL_AUTHENTICATION_FAILED with a message) makes the failure loud: the
// log names broker, user and message; the proxy is not ready; a client is
// disconnected at once.
func TestUpstreamWrongPassword(t *testing.T) {
	const brokerMsg = "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256"
	log, logs := observed(t, zap.InfoLevel)
	env := proxytest.Start(t, proxytest.Options{
		Kfake: []kfake.Opt{kfake.EnableSASL(), kfake.Superuser(config.SASLScram256, "proxy", "right")},
		Config: func(c *config.Config) {
			c.Upstream.SASL = config.UpstreamSASL{Mechanism: config.SASLScram256, Username: "proxy", Password: "wrong-password"}
		},
		Logger:   log,
		NotReady: true,
	})
	env.Cluster.ControlKey(int16(kmsg.SASLAuthenticate), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		env.Cluster.KeepControl()
		resp := kreq.ResponseKind().(*kmsg.SASLAuthenticateResponse)
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		msg := brokerMsg
		resp.ErrorMessage = &msg
		return resp, nil, true
	})
	waitFor(t, "a failure with the broker's message to be logged", func() bool {
		for _, e := range logs.FilterMessage("upstream authentication failed").All() {
			if strings.Contains(fmt.Sprint(e.ContextMap()["error"]), brokerMsg) {
				return true
			}
		}
		return false
	})
	e := logs.FilterMessage("upstream authentication failed").All()[0]
	if e.Level != zap.ErrorLevel || e.ContextMap()["user"] != "proxy" || !strings.HasPrefix(fmt.Sprint(e.ContextMap()["upstream"]), "127.0.0.1:") {
		t.Errorf("failure log lacks level/user/broker: %v %v", e.Level, e.ContextMap())
	}
	if env.Proxy.Ready() || !strings.Contains(fmt.Sprint(env.Proxy.NotReadyReason()), "SASL_AUTHENTICATION_FAILED") {
		t.Errorf("Ready %v, NotReadyReason %q", env.Proxy.Ready(), env.Proxy.NotReadyReason())
	}
	// /readyz says why, not who: no user name, no password.
	if reason := env.Proxy.NotReadyReason(); strings.Contains(reason, "proxy") || strings.Contains(reason, "wrong-password") {
		t.Errorf("NotReadyReason names a credential: %q", reason)
	}

	start := time.Now()
	if err := refusedRoundTrip(t, env.Bootstrap()); err == nil {
		t.Fatal("a client was answered by a proxy that cannot authenticate to the cluster")
	}
	t.Logf("client refused %v after it connected", time.Since(start))
}

// TestUpstreamReauthentication: with a short broker session lifetime every
// lane re-authenticates over and over while a consumer keeps consuming.
func TestUpstreamReauthentication(t *testing.T) {
	log, logs := observed(t, zap.DebugLevel)
	env := proxytest.Start(t, proxytest.Options{
		Brokers: 1,
		Kfake: []kfake.Opt{
			kfake.EnableSASL(), kfake.Superuser(config.SASLScram256, "proxy", "pw"),
			kfake.BrokerConfigs(map[string]string{"connections.max.reauth.ms": "2000"}),
			kfake.SeedTopics(2, "t"),
		},
		Config: func(c *config.Config) {
			c.Upstream.SASL = config.UpstreamSASL{Mechanism: config.SASLScram256, Username: "proxy", Password: "pw"}
		},
		Logger: log,
	})
	var handshakes atomic.Int64
	env.Cluster.ControlKey(int16(kmsg.SASLHandshake), func(kmsg.Request) (kmsg.Response, error, bool) {
		handshakes.Add(1)
		return nil, nil, false
	})

	ctx := ctxTimeout(t, 60*time.Second)
	producer := newClient(t, env.Bootstrap(), kgo.DefaultProduceTopic("t"), kgo.ProducerLinger(0))
	consumer := newClient(t, env.Bootstrap(), kgo.ConsumeTopics("t"), kgo.ConsumerGroup("g"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(300*time.Millisecond))
	const n = 120 // one every 50ms: 6s, three session lifetimes
	go func() {
		for i := range n {
			if err := producer.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "r%d", i)}).FirstErr(); err != nil {
				t.Errorf("produce %d: %v", i, err)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	seen := map[string]bool{}
	for len(seen) < n {
		fs := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d: %v", len(seen), n, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Errorf("fetch error %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	}
	reauths := logs.FilterMessage("lane re-authenticated").Len()
	if reauths < 4 || handshakes.Load() < 4 {
		t.Fatalf("%d re-authentications logged, %d handshakes seen by the broker; want several", reauths, handshakes.Load())
	}
	if got := logs.FilterMessage("session closed").Len(); got > 0 {
		t.Errorf("%d sessions closed during re-authentication", got)
	}
	t.Logf("%d re-authentications, %d handshakes", reauths, handshakes.Load())
}
