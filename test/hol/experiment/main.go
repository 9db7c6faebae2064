// Command experiment measures what head-of-line blocking costs a client on
// one socket, and what kproxy's ordering modes give back: an in-process
// kfake broker, three kproxy instances (strict, strict with the fetch wait
// budget, relaxed) and, on each path, a raw strict single-socket consumer,
// a raw id-matching one and an IBM/sarama consumer group, all at once. It
// prints one Markdown table, and with -chart draws the Heartbeat timings
// over the run (and, with -bench, a `kproxy-dev bench` table's ratios against
// the relay) as an SVG chart. -record saves what the chart is drawn from;
// -from redraws the chart from such a recording without running anything.
//
//	go run ./test/hol/experiment [-duration 30s] [-bench BENCH.md] [-record RUN.json] [-chart CHART.svg]
//	go run ./test/hol/experiment -from test/hol/testdata/run.json -chart docs/hol.svg
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/listener"
	"github.com/kproxy/kproxy/internal/loopback"
	"github.com/kproxy/kproxy/internal/metrics"
	"github.com/kproxy/kproxy/test/hol"
)

type path struct {
	name              string
	bootstrap, broker string // sarama's bootstrap; the raw clients' broker
}

type row struct {
	client, path string
	hb, commit   []time.Duration
	hbAnswered   []time.Time
	gap          time.Duration
	rebalances   string
	err          error
	skip         string
}

func main() {
	duration := flag.Duration("duration", 30*time.Second, "how long each client runs (all run at once)")
	rawWait := flag.Duration("raw-max-wait", 5*time.Second, "MaxWaitMillis of the raw clients' fetches")
	record := flag.String("record", "", "write the Heartbeat timings (and bench ratios) the chart is drawn from to this JSON file")
	chart := flag.String("chart", "", "draw the SVG chart to this file")
	from := flag.String("from", "", "draw the chart from this recording instead of running the clients")
	benchTable := flag.String("bench", "", "a `kproxy-dev bench` output whose kproxy ÷ relay ratios go on the chart")
	flag.Parse()
	if err := main1(*duration, *rawWait, *record, *chart, *from, *benchTable); err != nil {
		fmt.Fprintln(os.Stderr, "experiment:", err)
		os.Exit(1)
	}
}

func main1(duration, rawWait time.Duration, record, chart, from, benchTable string) error {
	var rec hol.Recording
	var err error
	if from != "" {
		rec, err = hol.ReadRecording(from)
	} else {
		rec, err = run(duration, rawWait)
	}
	if err != nil {
		return err
	}
	if benchTable != "" {
		f, err := os.Open(benchTable)
		if err != nil {
			return err
		}
		rec.Bench, err = hol.ParseBenchTable(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", benchTable, err)
		}
	}
	if record != "" {
		if err := hol.WriteRecording(record, rec); err != nil {
			return err
		}
	}
	if chart != "" {
		f, err := os.Create(chart)
		if err != nil {
			return err
		}
		if err := hol.WriteSVG(f, rec); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	return nil
}

func run(duration, rawWait time.Duration) (hol.Recording, error) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "idle"))
	if err != nil {
		return hol.Recording{}, err
	}
	defer cluster.Close()
	direct := cluster.ListenAddrs()[0]
	paths := []path{{name: "direct", bootstrap: direct, broker: direct}}
	for _, p := range []struct {
		name     string
		ordering string
		budget   time.Duration
	}{
		{"kproxy strict", config.OrderingStrict, 0},
		{"kproxy strict + budget 200ms", config.OrderingStrict, 200 * time.Millisecond},
		{"kproxy relaxed", config.OrderingRelaxed, 0},
	} {
		cfg := loopback.Config(cluster.ListenAddrs())
		cfg.Routing.Ordering, cfg.Routing.FetchWaitBudget = p.ordering, p.budget
		srv, err := startProxy(cfg)
		if err != nil {
			return hol.Recording{}, fmt.Errorf("%s: %w", p.name, err)
		}
		defer srv.Shutdown(context.Background())
		paths = append(paths, path{name: p.name, bootstrap: srv.BootstrapAddr(), broker: srv.BrokerAddrs()[0]})
	}

	ctx := context.Background()
	start := time.Now()
	var wg sync.WaitGroup
	var rows []*row
	add := func(r *row, f func(*row)) {
		rows = append(rows, r)
		if r.skip != "" {
			return
		}
		wg.Add(1)
		go func() { defer wg.Done(); f(r) }()
	}
	for _, strict := range []bool{true, false} {
		kind := "raw id-matching"
		if strict {
			kind = "raw strict"
		}
		for _, p := range paths {
			r := &row{client: kind, path: p.name, rebalances: "–"}
			if strict && p.name == "kproxy relaxed" {
				r.skip = "not run: answers out of order break a strict client"
			}
			add(r, func(r *row) {
				res, err := hol.RunRaw(ctx, hol.RawOptions{Addr: p.broker, Topic: "idle", MaxWait: rawWait, Duration: duration, Strict: strict})
				r.hb, r.commit, r.hbAnswered, r.err = res.HeartbeatLatencies, res.CommitLatencies, res.HeartbeatAnswered, err
			})
		}
	}
	for i, p := range paths {
		r := &row{client: "sarama", path: p.name}
		add(r, func(r *row) {
			res, err := hol.RunSaramaGroup(ctx, hol.SaramaGroupOptions{
				Bootstrap: p.bootstrap, Broker: direct, Group: fmt.Sprintf("sarama-%d", i), Topic: "idle", Duration: duration, Commit: true,
			})
			r.hb, r.commit, r.gap, r.hbAnswered, r.err = res.HeartbeatLatencies, res.CommitLatencies, res.MaxHeartbeatGap, res.HeartbeatAnswered, err
			r.rebalances = fmt.Sprint(res.Rebalances)
		})
	}
	wg.Wait()

	note := fmt.Sprintf("%d s per client, all at once; raw fetches MaxWait %v, sarama MaxWaitTime %v with a %v session and %v heartbeats; one kfake broker, idle partition.",
		int(duration.Seconds()), rawWait, hol.SaramaMaxWait, hol.SaramaSessionTimeout, hol.SaramaHeartbeat)
	rec := hol.Recording{Note: note, DurationS: duration.Seconds()}
	for _, r := range rows {
		switch {
		case r.skip != "" || r.err != nil:
		case r.client == "raw id-matching":
			rec.Series = append(rec.Series, hol.LatencySeries(r.client, r.path, start, r.hbAnswered, r.hb))
		case r.client == "sarama":
			rec.Series = append(rec.Series, hol.GapSeries(r.client, r.path, start, r.hbAnswered))
		}
	}
	fmt.Println(note + "\n")
	fmt.Println("| client | path | Heartbeat p50 | Heartbeat p99 | OffsetCommit p50 | OffsetCommit p99 | longest Heartbeat gap | rebalances |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		switch {
		case r.skip != "":
			fmt.Printf("| %s | %s | %s | | | | | |\n", r.client, r.path, r.skip)
		case r.err != nil:
			fmt.Printf("| %s | %s | error: %v | | | | | |\n", r.client, r.path, r.err)
		default:
			gap := "–"
			if r.gap > 0 {
				gap = ms(r.gap)
			}
			fmt.Printf("| %s | %s | %s | %s | %s | %s | %s | %s |\n", r.client, r.path,
				ms(hol.Percentile(r.hb, 50)), ms(hol.Percentile(r.hb, 99)),
				ms(hol.Percentile(r.commit, 50)), ms(hol.Percentile(r.commit, 99)), gap, r.rebalances)
		}
	}
	return rec, nil
}

func ms(d time.Duration) string {
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%d ms", d.Milliseconds())
}

func startProxy(cfg config.Config) (*listener.Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	srv, err := listener.New(cfg, zap.NewNop(), metrics.NewNop())
	if err != nil {
		return nil, err
	}
	if err := srv.Start(context.Background()); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(10 * time.Second); !srv.Ready(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no upstream metadata after 10s")
		}
	}
	return srv, nil
}
