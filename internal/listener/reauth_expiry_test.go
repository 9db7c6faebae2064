package listener_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/proxytest"
)

// kip368Broker holds kfake's connections to Kafka's KIP-368 rules, which
// kfake announces (SessionLifetimeMillis) but does not enforce:
//
//   - a request other than SaslHandshake read after the session expired
//     closes the connection (SocketServer: serverAuthenticationSessionExpired;
//     a SaslHandshake is checked first and starts a re-authentication);
//   - a SaslHandshake on an authenticated connection less than a second
//     after the previous re-authentication began is refused
//     (KafkaChannel.maybeBeginServerReauthentication); kproxy also keeps
//     the second from the first authentication.
//
// The session expires one lifetime after the final SaslAuthenticate (PLAIN
// has one). Every breach is recorded.
type kip368Broker struct {
	lifetime time.Duration

	mu         sync.Mutex
	breaches   []string
	reauths    int
	minGap     time.Duration
	lateWrites int
}

var errSessionExpired = errors.New("kip368Broker: request after the session expired")

func (b *kip368Broker) listen(network, address string) (net.Listener, error) {
	ln, err := net.Listen(network, address)
	if err != nil {
		return nil, err
	}
	return &kip368Listener{Listener: ln, b: b}, nil
}

func (b *kip368Broker) breach(format string, args ...any) {
	b.mu.Lock()
	b.breaches = append(b.breaches, fmt.Sprintf(format, args...))
	b.mu.Unlock()
}

type kip368Listener struct {
	net.Listener
	b *kip368Broker
}

func (l *kip368Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &kip368Conn{Conn: c, b: l.b}, nil
}

type kip368Conn struct {
	net.Conn
	b *kip368Broker

	// The broker's reads are serial.
	pending       []byte
	authenticated bool
	expiry        time.Time
	lastHandshake time.Time
}

func (c *kip368Conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.pending = append(c.pending, p[:n]...)
	for len(c.pending) >= 6 {
		size := int(binary.BigEndian.Uint32(c.pending))
		if len(c.pending) < 4+size {
			break
		}
		key := int16(binary.BigEndian.Uint16(c.pending[4:]))
		c.pending = c.pending[4+size:]
		if !c.request(key, time.Now()) {
			_ = c.Conn.Close()
			return 0, errSessionExpired
		}
	}
	return n, err
}

// request applies the rules to one request read at now; false cuts the
// connection.
func (c *kip368Conn) request(key int16, now time.Time) bool {
	switch kmsg.Key(key) {
	case kmsg.SASLHandshake:
		if c.authenticated {
			gap := now.Sub(c.lastHandshake)
			c.b.mu.Lock()
			c.b.reauths++
			if c.b.minGap == 0 || gap < c.b.minGap {
				c.b.minGap = gap
			}
			c.b.mu.Unlock()
			if gap < time.Second {
				c.b.breach("re-authentication %v after the previous one began", gap.Round(time.Millisecond))
			}
		}
		c.lastHandshake = now
	case kmsg.SASLAuthenticate:
		c.authenticated = true
		c.expiry = now.Add(c.b.lifetime)
	default:
		if c.authenticated && now.After(c.expiry) {
			c.b.breach("%s read %v after the session expired", kmsg.NameForKey(key), now.Sub(c.expiry).Round(time.Millisecond))
			return false
		}
	}
	return true
}

// TestReauthenticationKeepsKafkasRules: at session lifetimes below, around
// and above the second Kafka requires between re-authentications, with
// Produce answers slowed down and consumers long-polling, kproxy never
// writes a request after the session expired and never starts two
// re-authentications within a second, and no client notices.
func TestReauthenticationKeepsKafkasRules(t *testing.T) {
	for _, lifetime := range []time.Duration{600 * time.Millisecond, 1500 * time.Millisecond, 2500 * time.Millisecond} {
		t.Run(lifetime.String(), func(t *testing.T) {
			rules := &kip368Broker{lifetime: lifetime}
			log, logs := observed(t, zap.InfoLevel)
			env := proxytest.Start(t, proxytest.Options{
				Brokers: 1,
				Kfake: []kfake.Opt{
					kfake.ListenFn(rules.listen),
					kfake.EnableSASL(), kfake.Superuser(config.SASLPlain, "proxy", "pw"),
					kfake.BrokerConfigs(map[string]string{"connections.max.reauth.ms": fmt.Sprint(lifetime.Milliseconds())}),
					kfake.SeedTopics(1, "t"),
				},
				Config: func(c *config.Config) {
					c.Upstream.SASL = config.UpstreamSASL{Mechanism: config.SASLPlain, Username: "proxy", Password: "pw"}
				},
				Logger: log,
			})
			// Slow Produce answers: each waits 300ms at the broker, so
			// re-authentications must drain them.
			env.Cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
				env.Cluster.KeepControl()
				env.Cluster.SleepControl(func() { time.Sleep(300 * time.Millisecond) })
				return nil, nil, false
			})

			ctx := ctxTimeout(t, 60*time.Second)
			producer := newClient(t, env.Bootstrap(), kgo.DefaultProduceTopic("t"), kgo.ProducerLinger(0))
			// Long polls: 800ms, longer than the shortest lifetime.
			consumer := newClient(t, env.Bootstrap(), kgo.ConsumeTopics("t"), kgo.ConsumerGroup("g"),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(800*time.Millisecond))
			const n = 8
			produced := make(chan error, 1)
			go func() {
				for i := range n {
					if err := producer.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "r%d", i)}).FirstErr(); err != nil {
						produced <- fmt.Errorf("produce %d: %w", i, err)
						return
					}
				}
				produced <- nil
			}()
			seen := consumeExactly(t, ctx, consumer, n)
			if err := <-produced; err != nil {
				t.Fatal(err)
			}
			for i := range n {
				if !seen[fmt.Sprintf("r%d", i)] {
					t.Fatalf("record r%d missing", i)
				}
			}

			rules.mu.Lock()
			defer rules.mu.Unlock()
			for _, b := range rules.breaches {
				t.Errorf("KIP-368 rule broken: %s", b)
			}
			if rules.reauths < 3 {
				t.Errorf("%d re-authentications seen by the broker; want several", rules.reauths)
			}
			if got := logs.FilterMessage("session closed").Len(); got > 0 {
				t.Errorf("%d client sessions closed", got)
			}
			t.Logf("lifetime %v: %d re-authentications, closest two handshakes %v apart", lifetime, rules.reauths, rules.minGap.Round(time.Millisecond))
		})
	}
}
