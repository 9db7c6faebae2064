// Package bench measures kproxy against a direct connection and a blind TCP
// relay, in one process and one run, over an in-process kfake cluster that
// discards produced records and serves canned 1 MiB fetch batches. The
// paths alternate (direct, relay, kproxy, direct, …) so that drift on a
// shared machine lands on all three alike.
package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kproxy/kproxy/internal/listener"
	"github.com/kproxy/kproxy/internal/loopback"
)

// Options tune a run. Zero values take the defaults of Defaults.
type Options struct {
	Duration  time.Duration // per throughput measurement (one path, one round)
	Rounds    int           // alternations of the three paths per workload
	Samples   int           // latency round trips per path and round
	IdleConns int           // connections held open for the memory row
	Log       io.Writer     // progress lines; nil: none
	// Only runs one part of the bench: "" every row, OnlyCPU the process
	// CPU rows (relay and kproxy as processes of their own), OnlyBridge the
	// version bridge rows.
	Only string
}

// OnlyCPU is the Only value that runs the process CPU rows alone.
const OnlyCPU = "cpu"

// Defaults is a full run: a few minutes on a 2-core machine.
func Defaults() Options {
	return Options{Duration: 3 * time.Second, Rounds: 3, Samples: 3000, IdleConns: 2000}
}

// Quick is a run for CI: every row, small numbers, seconds in all.
func Quick() Options {
	return Options{Duration: 300 * time.Millisecond, Rounds: 1, Samples: 200, IdleConns: 100}
}

const (
	topic      = "bench"
	partitions = 4
)

// path is one way from the client to the cluster.
type path struct {
	name  string
	seeds []string          // kgo seed brokers
	via   map[string]string // broker address → address to dial instead
	raw   string            // address for raw single-socket clients (broker 0)
	tls   *tls.Config       // nil: plain
	proc  *child            // the relay or kproxy process, when it is one
	opts  []kgo.Opt         // more client options (SASL)
}

// env is everything a run needs: the cluster, the relay, the proxy.
type env struct {
	opts    Options
	cluster *kfake.Cluster
	relay   *relay
	proxy   *listener.Server
	paths   [3]path // direct, relay, kproxy
}

func (e *env) logf(format string, args ...any) {
	if e.opts.Log != nil {
		fmt.Fprintf(e.opts.Log, format+"\n", args...)
	}
}

func start(opts Options) (*env, error) {
	cluster, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.SeedTopics(partitions, topic),
		kfake.BlackholeProduce(),
		kfake.SyntheticFetch(kfake.SyntheticBatch{}), // 1 MiB of 100 B values
	)
	if err != nil {
		return nil, fmt.Errorf("kfake: %w", err)
	}
	e := &env{opts: opts, cluster: cluster}
	addrs := cluster.ListenAddrs()
	if e.relay, err = newRelay(addrs); err != nil {
		e.close()
		return nil, fmt.Errorf("relay: %w", err)
	}
	cfg := loopback.Config(addrs) // loopback, broker_port_base 0
	// The memory row holds IdleConns client connections open at once.
	cfg.Limits.MaxClientConnections = max(cfg.Limits.MaxClientConnections, 2*opts.IdleConns)
	if e.proxy, err = startProxy(cfg); err != nil {
		e.close()
		return nil, err
	}
	relayAddrs := make([]string, len(addrs))
	for i, a := range addrs {
		relayAddrs[i] = e.relay.addrs[a]
	}
	e.paths = [3]path{
		{name: "direct", seeds: addrs, raw: addrs[0]},
		{name: "relay", seeds: relayAddrs, via: e.relay.addrs, raw: relayAddrs[0]},
		{name: "kproxy", seeds: []string{e.proxy.BootstrapAddr()}, raw: e.proxy.BrokerAddrs()[0]},
	}
	return e, nil
}

func (e *env) close() {
	if e.proxy != nil {
		stopProxy(e.proxy)
	}
	if e.relay != nil {
		e.relay.close()
	}
	e.cluster.Close()
}

// Run measures every workload over the three paths and writes the table.
func Run(ctx context.Context, opts Options, out io.Writer) error {
	res, err := Measure(ctx, opts)
	if err != nil {
		return err
	}
	res.WriteTable(out)
	return nil
}

// Measure runs every workload and returns the results.
func Measure(ctx context.Context, opts Options) (*Results, error) {
	d := Defaults()
	if opts.Duration <= 0 {
		opts.Duration = d.Duration
	}
	if opts.Rounds <= 0 {
		opts.Rounds = d.Rounds
	}
	if opts.Samples <= 0 {
		opts.Samples = d.Samples
	}
	if opts.IdleConns <= 0 {
		opts.IdleConns = d.IdleConns
	}
	switch opts.Only {
	case "", OnlyBridge:
	case OnlyCPU:
		// The process rows start a cluster and children of their own.
		res := &Results{Opts: opts}
		if err := (&env{opts: opts}).measureProcesses(ctx, res); err != nil {
			return nil, err
		}
		return res, nil
	default:
		return nil, fmt.Errorf("unknown part %q (want %q or %q)", opts.Only, OnlyCPU, OnlyBridge)
	}
	e, err := start(opts)
	if err != nil {
		return nil, err
	}
	defer e.close()
	res := &Results{Opts: opts}
	if opts.Only == OnlyBridge {
		if err := e.measureBridge(ctx, res); err != nil {
			return nil, err
		}
		return res, nil
	}
	for _, w := range e.workloads() {
		e.logf("workload: %s", w.name)
		if err := e.alternate(ctx, res, w); err != nil {
			return nil, fmt.Errorf("%s: %w", w.name, err)
		}
	}
	if err := e.measureBridge(ctx, res); err != nil {
		return nil, err
	}
	if err := e.measureBigMetadata(ctx, res); err != nil {
		return nil, err
	}
	if err := e.measureShortLived(ctx, res); err != nil {
		return nil, err
	}
	if err := e.measureProcesses(ctx, res); err != nil {
		return nil, err
	}
	e.logf("idle connections: %d per path", opts.IdleConns)
	if err := e.idleMemory(ctx, res); err != nil {
		return nil, fmt.Errorf("idle connections: %w", err)
	}
	return res, nil
}

// workload measures one path once; the result is folded into res.
type workload struct {
	name string
	run  func(ctx context.Context, p path) (sample, error)
}

// alternate runs w over direct, relay, kproxy, direct, … for every round.
func (e *env) alternate(ctx context.Context, res *Results, w workload) error {
	return e.alternateOver(ctx, res, w, e.paths)
}

func (e *env) alternateOver(ctx context.Context, res *Results, w workload, paths [3]path) error {
	for round := range e.opts.Rounds {
		for i, p := range paths {
			if err := ctx.Err(); err != nil {
				return err
			}
			before := readUsage()
			s, err := w.run(ctx, p)
			if err != nil {
				return fmt.Errorf("%s, round %d: %w", p.name, round+1, err)
			}
			s.usage = readUsage().sub(before)
			res.add(w.name, i, s)
		}
	}
	return nil
}
