package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kproxy/kproxy/config"
)

// runDemo starts an embedded 3-broker kfake cluster and kproxy in front of
// it on the default ports, so a first run needs no Kafka.
func runDemo(args []string, stdout, stderr io.Writer) error {
	cfg := config.Defaults()
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Listen.Bootstrap, "bootstrap", cfg.Listen.Bootstrap, "client bootstrap address")
	fs.IntVar(&cfg.Listen.BrokerPortBase, "broker-port-base", cfg.Listen.BrokerPortBase, "broker N listens on this + N (0: any free port)")
	fs.StringVar(&cfg.Log.Level, "log-level", "warn", "log level")
	fs.StringVar(&cfg.Admin.Listen, "admin", cfg.Admin.Listen, "admin HTTP address (/metrics, /healthz, /readyz)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(3))
	if err != nil {
		return fmt.Errorf("start embedded cluster: %w", err)
	}
	defer cluster.Close()
	cfg.Upstream.BootstrapServers = cluster.ListenAddrs()
	cfg.Log.Format = "console"
	if err := cfg.Validate(); err != nil {
		return err
	}
	log, err := newLogger(cfg.Log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p, err := start(ctx, cfg, log, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	srv := p.srv
	fmt.Fprintf(stdout, "kproxy demo: embedded 3-broker cluster (kfake) behind kproxy\n")
	fmt.Fprintf(stdout, "  bootstrap: %s\n", srv.BootstrapAddr())
	brokers := srv.BrokerAddrs()
	ids := make([]int, 0, len(brokers))
	for id := range brokers {
		ids = append(ids, int(id))
	}
	sort.Ints(ids)
	for _, id := range ids {
		fmt.Fprintf(stdout, "  broker %d:  %s  (upstream %s)\n", id, brokers[int32(id)], cluster.ListenAddrs()[id])
	}
	fmt.Fprintf(stdout, "  admin:     http://%s/metrics /healthz /readyz\n", p.admin.Addr())
	fmt.Fprintf(stdout, "  try:       kcat -b %s -L\n", srv.BootstrapAddr())
	fmt.Fprintf(stdout, "Ctrl-C to stop.\n")
	<-ctx.Done()
	_ = p.shutdown(cfg.ShutdownTimeout)
	fmt.Fprintln(stdout, "kproxy demo stopped")
	return nil
}
