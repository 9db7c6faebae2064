package bench

import (
	"context"
	"fmt"
	"io"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/kproxy/kproxy/internal/loopback"
)

// The version bridge's cost: the same produce and consume workloads through
// kproxy by a modern client and by one held to Kafka 0.10.1's versions
// (Produce v2 with message format v1, Fetch v3), which kproxy translates up
// to versions the broker accepts and back down. A legacy client has no
// direct path to compare with: the broker closes its connection.

// OnlyBridge is the Only value that runs the version bridge rows alone.
const OnlyBridge = "bridge"

const (
	wBridgeProduce   = "produce 1 KiB records (kgo)"
	wBridgeConsume   = "consume 1 MiB batches of 100 B records (kgo)"
	wBridgeConsume1K = "consume 1 MiB batches of 1 KiB records (kgo)"
)

// bridgeClients are the two clients of the bridge rows, in column order.
var bridgeClients = [2]string{"modern kgo", "kgo held to 0.10.1"}

func legacyOpts() []kgo.Opt { return []kgo.Opt{kgo.MaxVersions(kversion.V0_10_1())} }

// bridgeResults are the bridge rows: per workload, modern then legacy.
type bridgeResults struct {
	order []string
	by    map[string]*[2]agg
}

func (b *bridgeResults) add(name string, client int, s sample) {
	if b.by == nil {
		b.by = map[string]*[2]agg{}
	}
	a, ok := b.by[name]
	if !ok {
		a = new([2]agg)
		b.by[name] = a
		b.order = append(b.order, name)
	}
	a[client].add(s)
}

// measureBridge runs the bridge rows through the run's kproxy, modern and
// legacy alternating, Rounds times.
func (e *env) measureBridge(ctx context.Context, res *Results) error {
	produce := func(ctx context.Context, p path) (sample, error) { return e.produce(ctx, p, 1024) }
	if err := e.bridgeRows(ctx, res, e.paths[2], workload{wBridgeProduce, produce}, workload{wBridgeConsume, e.consume}); err != nil {
		return err
	}
	// The legacy format costs per message (a CRC and a header each), so
	// record size matters: the same batches, of 1 KiB values, from a
	// cluster of their own.
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic),
		kfake.SyntheticFetch(kfake.SyntheticBatch{RecordBytes: 1024}))
	if err != nil {
		return fmt.Errorf("kfake: %w", err)
	}
	defer cluster.Close()
	srv, err := startProxy(loopback.Config(cluster.ListenAddrs()))
	if err != nil {
		return err
	}
	defer stopProxy(srv)
	via := path{name: "kproxy", seeds: []string{srv.BootstrapAddr()}}
	return e.bridgeRows(ctx, res, via, workload{wBridgeConsume1K, e.consume})
}

// bridgeRows runs each workload through via, by a modern client and by a
// legacy one in turn, Rounds times.
func (e *env) bridgeRows(ctx context.Context, res *Results, via path, runs ...workload) error {
	legacy := via
	legacy.opts = append(append([]kgo.Opt(nil), via.opts...), legacyOpts()...)
	for _, w := range runs {
		e.logf("version bridge: %s", w.name)
		for round := range e.opts.Rounds {
			for i, p := range [2]path{via, legacy} {
				before := readUsage()
				s, err := w.run(ctx, p)
				if err != nil {
					return fmt.Errorf("version bridge, %s, %s, round %d: %w", w.name, bridgeClients[i], round+1, err)
				}
				s.usage = readUsage().sub(before)
				res.bridge.add(w.name, i, s)
			}
		}
	}
	return nil
}

// writeBridge prints the bridge rows: throughput and the whole process's
// CPU per GB (client, kproxy and kfake alike in both columns).
func (b *bridgeResults) write(w io.Writer) {
	if len(b.order) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "| version bridge, through kproxy | unit | %s | %s | legacy ÷ modern |\n", bridgeClients[0], bridgeClients[1])
	fmt.Fprintln(w, "|---|---|---:|---:|---:|")
	for _, name := range b.order {
		a := b.by[name]
		mbps := func(g *agg) float64 { return float64(g.bytes) / 1e6 / g.elapsed.Seconds() }
		cpu := func(g *agg) float64 { return g.usage.cpu.Seconds() / (float64(g.bytes) / 1e9) }
		for _, row := range []struct {
			unit string
			f    func(*agg) float64
		}{{"MB/s", mbps}, {"CPU s/GB (whole process)", cpu}} {
			m, l := row.f(&a[0]), row.f(&a[1])
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", name, row.unit, num(m), num(l), ratio(l, m))
		}
	}
}
