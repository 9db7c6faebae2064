package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/listener"
	"github.com/kproxy/kproxy/internal/loopback"
)

// Short-lived clients against a SCRAM-SHA-512 cluster: each connects,
// produces one record and closes, one after the other. Direct and through
// the relay the client authenticates every connection itself; through
// kproxy it speaks plain Kafka and kproxy authenticates its lanes, with the
// warm pool off and on.
const (
	shortLivedPoolSize = 4 // upstream.pool.max_idle_per_broker of the "pool on" row
	scramUser          = "bench"
	scramPass          = "bench-secret"
)

// shortLivedGap is the pause between clients of the paced rows: a job
// that runs now and then rather than back to back, so that the pool has
// refilled when the next one comes.
const shortLivedGap = 50 * time.Millisecond

func wShortLived(pool bool, gap time.Duration) string {
	name := "short-lived kgo clients back to back, SCRAM-SHA-512 upstream"
	if gap > 0 {
		name = fmt.Sprintf("short-lived kgo clients %v apart, SCRAM-SHA-512 upstream", gap)
	}
	if pool {
		return fmt.Sprintf("%s, kproxy pool on (max_idle_per_broker %d)", name, shortLivedPoolSize)
	}
	return name + ", kproxy pool off"
}

// measureShortLived runs the short-lived client rows over a cluster of
// their own.
func (e *env) measureShortLived(ctx context.Context, res *Results) error {
	cluster, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.SeedTopics(1, topic),
		kfake.BlackholeProduce(),
		kfake.EnableSASL(),
		kfake.Superuser(config.SASLScram512, scramUser, scramPass),
	)
	if err != nil {
		return fmt.Errorf("kfake: %w", err)
	}
	defer cluster.Close()
	addrs := cluster.ListenAddrs()
	r, err := newRelay(addrs)
	if err != nil {
		return err
	}
	defer r.close()
	auth := kgo.SASL(scram.Sha512(func(context.Context) (scram.Auth, error) {
		return scram.Auth{User: scramUser, Pass: scramPass}, nil
	}))
	relayAddrs := make([]string, len(addrs))
	for i, a := range addrs {
		relayAddrs[i] = r.addrs[a]
	}
	for _, pool := range []bool{false, true} {
		srv, err := startSASLProxy(addrs, pool)
		if err != nil {
			return err
		}
		paths := [3]path{
			{name: "direct", seeds: addrs, opts: []kgo.Opt{auth}},
			{name: "relay", seeds: relayAddrs, via: r.addrs, opts: []kgo.Opt{auth}},
			{name: "kproxy", seeds: []string{srv.BootstrapAddr()}},
		}
		clients := max(10, min(100, e.opts.Samples/30))
		for _, gap := range []time.Duration{0, shortLivedGap} {
			w := workload{wShortLived(pool, gap), func(ctx context.Context, p path) (sample, error) {
				return e.shortLived(ctx, p, clients, gap)
			}}
			e.logf("workload: %s", w.name)
			if err = e.alternateOver(ctx, res, w, paths); err != nil {
				err = fmt.Errorf("%s: %w", w.name, err)
				break
			}
		}
		stopProxy(srv)
		if err != nil {
			return err
		}
	}
	return nil
}

func startSASLProxy(addrs []string, pool bool) (*listener.Server, error) {
	cfg := loopback.Config(addrs)
	cfg.Upstream.SASL = config.UpstreamSASL{Mechanism: config.SASLScram512, Username: scramUser, Password: scramPass}
	cfg.Upstream.Pool.MaxIdlePerBroker = 0 // the pool is on by default
	if pool {
		cfg.Upstream.Pool.MaxIdlePerBroker = shortLivedPoolSize
	}
	return startProxy(cfg)
}

// shortLived runs n clients one after the other, gap apart; each one's
// latency is from creating it to having closed it after one acknowledged
// record.
func (e *env) shortLived(ctx context.Context, p path, n int, gap time.Duration) (sample, error) {
	s := sample{lat: make([]time.Duration, 0, n)}
	start := time.Now()
	for i := range n {
		if i > 0 && gap > 0 {
			time.Sleep(gap)
		}
		t0 := time.Now()
		cl, err := e.client(p, kgo.DefaultProduceTopic(topic))
		if err != nil {
			return sample{}, err
		}
		err = cl.ProduceSync(ctx, &kgo.Record{Value: []byte("one record")}).FirstErr()
		cl.Close()
		if err != nil {
			return sample{}, err
		}
		s.lat = append(s.lat, time.Since(t0))
		s.records++
	}
	s.elapsed = time.Since(start)
	return s, nil
}
