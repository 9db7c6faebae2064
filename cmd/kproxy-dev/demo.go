package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/cli"
	"github.com/kproxy/kproxy/internal/listener"
	"github.com/kproxy/kproxy/internal/sidecar"
)

// demoOptions are the flags of `kproxy-dev demo`.
type demoOptions struct {
	bootstrap      string
	brokerPortBase int
	admin          string
	logLevel       string
	workload       bool
	fetchWait      time.Duration
	reportEvery    time.Duration // the workload's report interval; tests shorten it
}

func parseDemoFlags(args []string, stdout, stderr io.Writer) (demoOptions, error) {
	def := config.Defaults()
	o := demoOptions{reportEvery: time.Second}
	fs := cli.NewFlagSet("kproxy-dev demo [flags]", "Runs an embedded 3-broker Kafka cluster (kfake) with kproxy in front of it, and prints where to connect.")
	fs.StringVar(&o.bootstrap, "bootstrap", def.Listen.Bootstrap, "client bootstrap address, host:port (port 0: any free port)")
	fs.IntVar(&o.brokerPortBase, "broker-port-base", def.Listen.BrokerPortBase, "broker N listens on this + N (0: any free port)")
	fs.StringVar(&o.admin, "admin", def.Admin.Listen, "admin HTTP address (/metrics, /healthz, /readyz), host:port")
	fs.StringVar(&o.logLevel, "log-level", "warn", "log level: debug, info, warn, error")
	fs.BoolVar(&o.workload, "workload", false, "also run a legacy single-socket client (a long-poll Fetch with a Heartbeat behind it) directly and through kproxy, and print the heartbeat latency on each path every second")
	fs.DurationVar(&o.fetchWait, "fetch-wait", 3*time.Second, "with --workload: the Fetch's MaxWaitMillis (its long poll)")
	if err := cli.Parse(fs, args, stdout, stderr); err != nil {
		return o, err
	}
	if o.fetchWait <= 0 {
		return o, fmt.Errorf("--fetch-wait %v: must be positive", o.fetchWait)
	}
	return o, nil
}

// runDemo is `kproxy-dev demo`: it serves until SIGINT or SIGTERM.
func runDemo(args []string, stdout, stderr io.Writer) error {
	o, err := parseDemoFlags(args, stdout, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first Ctrl-C a second one kills the process at once.
	context.AfterFunc(ctx, stop)
	return demo(ctx, o, stdout)
}

// demo starts an embedded 3-broker kfake cluster and kproxy in front of it,
// prints where to connect, and serves until ctx ends.
func demo(ctx context.Context, o demoOptions, stdout io.Writer) error {
	kopts := []kfake.Opt{kfake.NumBrokers(3), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(3)}
	if o.workload {
		kopts = append(kopts, kfake.SeedTopics(1, workloadTopic))
	}
	cluster, err := kfake.NewCluster(kopts...)
	if err != nil {
		return fmt.Errorf("start embedded cluster: %w", err)
	}
	defer cluster.Close()

	cfg := config.Defaults()
	cfg.Upstream.BootstrapServers = cluster.ListenAddrs()
	cfg.Listen.Bootstrap = o.bootstrap
	cfg.Listen.BrokerPortBase = o.brokerPortBase
	cfg.Admin.Listen = o.admin
	cfg.Log.Level = o.logLevel
	cfg.Log.Format = "console"
	cfg.ShutdownTimeout = 5 * time.Second
	if err := cfg.Validate(); err != nil {
		return err
	}
	log, err := sidecar.NewLogger(cfg.Log)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // nothing to do about a failed flush at exit
	p, err := sidecar.Start(ctx, cfg, log, prometheus.NewRegistry(), version)
	if err != nil {
		return err
	}
	srv := p.Server
	defer func() {
		_ = p.Shutdown(cfg.ShutdownTimeout)
		fmt.Fprintln(stdout, "kproxy demo stopped")
	}()
	if err := waitReady(ctx, srv, 10*time.Second); err != nil || ctx.Err() != nil {
		return err
	}
	printBanner(stdout, p, cluster.ListenAddrs())

	if o.workload {
		w, err := newWorkload(cluster, srv, workloadOptions{
			FetchWait:   o.fetchWait,
			ReportEvery: o.reportEvery,
			Ordering:    cfg.Routing.Ordering,
		})
		if err != nil {
			return err
		}
		w.Start(ctx, stdout)
		defer w.Stop() // before the proxy shuts down: its fetches are in flight
	}
	<-ctx.Done()
	fmt.Fprintln(stdout, "stopping")
	return nil
}

// waitReady waits, bounded, until the proxy has the cluster's metadata and
// a listener for every broker.
func waitReady(ctx context.Context, srv *listener.Server, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !srv.Ready() {
		if time.Now().After(deadline) {
			return errors.New("the embedded cluster's metadata did not arrive within " + timeout.String())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

func printBanner(w io.Writer, p *sidecar.Proxy, upstream []string) {
	srv := p.Server
	bootstrap := srv.BootstrapAddr()
	fmt.Fprintf(w, "kproxy %s demo: an embedded 3-broker Kafka cluster (kfake) behind kproxy\n\n", version)
	fmt.Fprintf(w, "  bootstrap  %s\n", bootstrap)
	brokers := srv.BrokerAddrs()
	ids := make([]int, 0, len(brokers))
	for id := range brokers {
		ids = append(ids, int(id))
	}
	sort.Ints(ids)
	for _, id := range ids {
		up := "?"
		if id < len(upstream) {
			up = upstream[id]
		}
		fmt.Fprintf(w, "  broker %d   %s  -> kfake %s\n", id, brokers[int32(id)], up)
	}
	fmt.Fprintf(w, "  admin      %s  (/metrics, /healthz, /readyz)\n\n", adminURL(p.Admin.Addr()))
	fmt.Fprintf(w, "Try it (topics are created on first use):\n")
	fmt.Fprintf(w, "  kcat -b %s -L\n", bootstrap)
	fmt.Fprintf(w, "  echo hello | kcat -b %s -t demo -P && kcat -b %s -t demo -C -e\n\n", bootstrap, bootstrap)
	fmt.Fprintf(w, "Ctrl-C to stop.\n")
}

// adminURL turns admin.listen into a URL a browser on this machine opens.
func adminURL(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://" + listen
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}
