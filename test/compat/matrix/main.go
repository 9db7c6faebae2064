// Command matrix runs the real-client compatibility suite through kproxy and
// prints the compatibility matrix as a markdown table.
//
// For every row (client × Kafka version emulated × ordering mode) it starts a
// fresh in-process kfake cluster (3 brokers, kfake.MaxVersions for older
// Kafka versions) and a fresh in-process kproxy in front of it (ephemeral
// ports), then runs the client against kproxy's bootstrap address. Every
// client does the same thing: create a 3-partition topic, produce COUNT
// records with acks=all, consume them all in a group, commit, close; then a
// second member of the group must receive nothing. Counts are exact: any
// loss, duplicate or redelivery fails the row.
//
// The non-Go clients are the scripts next to this directory (see
// test/compat/README.md); the Go clients (IBM/sarama, franz-go kgo,
// segmentio/kafka-go) run in this process.
//
// Ordering modes come from -orderings. A mode the configuration of this
// build rejects (config.Validate) is recorded as "not run", never as a pass.
// Modes other than strict only run for clients that match responses by
// correlation id (docs/CONFIGURATION.md, "Answer ordering").
//
// Legacy clients (pinned to Kafka 0.8-0.10 protocol; -clients legacy names
// them all) meet Kafka 4.0 with its version floors enforced: their direct
// row must fail ("fails as expected", with the requests the broker closed
// the connection on); through kproxy, whose version bridge translates
// their requests, they must pass the usual exact counts with the broker
// rejecting nothing kproxy sent.
//
// Exit status: 0 when every row that ran passed (or failed as expected),
// 1 when any failed, 2 on bad usage.
//
//	go run ./test/compat/matrix [-out FILE] [-clients LIST] [-kafka-versions LIST]
//	                            [-orderings LIST] [-count N] [-parallel N] [-direct]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

func main() {
	os.Exit(run())
}

type options struct {
	clients       []string
	kafkaVersions []string
	nonGoVersions []string
	orderings     []string
	count         int
	parallel      int
	rowTimeout    time.Duration
	secondPoll    time.Duration
	scripts       string
	out           string
	logDir        string
	direct        bool
}

func run() int {
	var o options
	var clients, versions, nonGo, orderings string
	flag.StringVar(&clients, "clients", strings.Join(clientNames(), ","), `clients to run; "legacy" names every legacy client`)
	flag.StringVar(&versions, "kafka-versions", "2.8,3.9,latest", "Kafka versions kfake emulates, for the Go clients")
	flag.StringVar(&nonGo, "non-go-kafka-versions", "2.8,3.9,latest", "Kafka versions for the non-Go clients (a subset of -kafka-versions keeps CI short)")
	flag.StringVar(&orderings, "orderings", "strict,relaxed", "kproxy routing.ordering modes to run each client in (where valid for it)")
	flag.IntVar(&o.count, "count", 1000, "records per client")
	flag.IntVar(&o.parallel, "parallel", 1, "rows run at once")
	flag.DurationVar(&o.rowTimeout, "row-timeout", 150*time.Second, "bound on one row")
	flag.DurationVar(&o.secondPoll, "second-poll", 3*time.Second, "how long the second group member polls after its assignment (Go clients)")
	flag.StringVar(&o.scripts, "scripts", "test/compat", "directory of the non-Go client scripts")
	flag.StringVar(&o.out, "out", "", "also write the markdown table to this file")
	flag.StringVar(&o.logDir, "logs", "", "directory for per-row logs (default: a temporary directory, kept when a row fails)")
	flag.BoolVar(&o.direct, "direct", false, "run the clients directly against kfake (no kproxy): the baseline")
	flag.Parse()
	o.clients, o.kafkaVersions, o.nonGoVersions, o.orderings = expandClients(split(clients)), split(versions), split(nonGo), split(orderings)

	rows, err := plan(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "matrix:", err)
		return 2
	}
	tempLogs := o.logDir == ""
	if tempLogs {
		if o.logDir, err = os.MkdirTemp("", "kproxy-compat-"); err != nil {
			fmt.Fprintln(os.Stderr, "matrix:", err)
			return 2
		}
	} else if err := os.MkdirAll(o.logDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "matrix:", err)
		return 2
	}
	fmt.Fprintf(os.Stderr, "matrix: %d rows, logs in %s\n", len(rows), o.logDir)

	start := time.Now()
	runRows(o, rows)
	table := markdown(rows)
	fmt.Print(table)
	failed := 0
	for _, r := range rows {
		if r.status == statusFail {
			failed++
			fmt.Fprintf(os.Stderr, "matrix: FAIL %s: %s (log: %s)\n", r.name(), r.detail, r.logPath(o.logDir))
		}
	}
	fmt.Fprintf(os.Stderr, "matrix: %d rows in %s, %d failed\n", len(rows), time.Since(start).Round(time.Second), failed)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(table), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "matrix:", err)
			return 1
		}
	}
	if failed > 0 {
		return 1
	}
	if tempLogs {
		_ = os.RemoveAll(o.logDir)
	}
	return 0
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// plan expands the options into rows, in the order the table lists them.
func plan(o options) ([]*row, error) {
	for _, v := range append(slices.Clone(o.kafkaVersions), o.nonGoVersions...) {
		if _, err := kafkaVersion(v); err != nil {
			return nil, err
		}
	}
	if o.count < 1 {
		return nil, fmt.Errorf("-count %d: want at least 1", o.count)
	}
	var rows []*row
	for _, name := range o.clients {
		c, ok := clientByName(name)
		if !ok {
			return nil, fmt.Errorf("unknown client %q (known: %s, %s)", name, strings.Join(clientNames(), ", "), legacyAlias)
		}
		if c.legacy {
			rows = append(rows, legacyRows(o, c)...)
			continue
		}
		versions := o.kafkaVersions
		if !c.goClient {
			versions = o.nonGoVersions
		}
		for _, v := range versions {
			if o.direct {
				rows = append(rows, &row{client: c, kafka: v, ordering: orderingDirect})
				continue
			}
			for _, ord := range o.orderings {
				if !validFor(ord, c) {
					continue // the client needs answers in request order
				}
				rows = append(rows, &row{client: c, kafka: v, ordering: ord})
			}
		}
	}
	return rows, nil
}

func runRows(o options, rows []*row) {
	sem := make(chan struct{}, max(o.parallel, 1))
	var wg sync.WaitGroup
	for _, r := range rows {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fmt.Fprintf(os.Stderr, "matrix: run  %s\n", r.name())
			ctx, cancel := context.WithTimeout(context.Background(), o.rowTimeout)
			defer cancel()
			runRow(ctx, o, r)
			fmt.Fprintf(os.Stderr, "matrix: %-4s %s (%ds) %s\n", r.status, r.name(), r.seconds, r.detail)
		}()
	}
	wg.Wait()
}

func (r *row) logPath(dir string) string {
	name := strings.NewReplacer(" ", "_", "/", "_", "(", "", ")", "").Replace(r.name())
	return filepath.Join(dir, name+".log")
}
