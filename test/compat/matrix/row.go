package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kversion"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/listener"
	"github.com/kproxy/kproxy/internal/loopback"
	"github.com/kproxy/kproxy/internal/metrics"
	"github.com/kproxy/kproxy/internal/proxytest/kafka4"
)

const (
	orderingStrict = config.OrderingStrict
	orderingAuto   = "auto"
	orderingDirect = "direct (no proxy)"

	statusPass   = "pass"
	statusFail   = "FAIL"
	statusNotRun = "not run"
)

// row is one cell of the matrix and, once run, its outcome.
type row struct {
	client   client
	kafka    string // as given: "2.8", "3.9", "latest"
	ordering string

	version string // client version, as the client reports it
	status  string
	detail  string
	seconds int
}

func (r *row) name() string {
	return fmt.Sprintf("%s kafka=%s ordering=%s", r.client.name, r.kafka, r.ordering)
}

// scenario is what a client is asked to do.
type scenario struct {
	bootstrap  string // comma-separated
	topic      string
	group      string
	count      int
	kafka      string
	secondPoll time.Duration
	log        io.Writer // the row's log file

	topicExists bool          // the harness made the topic (--no-create)
	keepGoing   bool          // run every step even after one failed
	stepTimeout time.Duration // the scripts' --timeout, when not their default
}

// result is what a client reports.
type result struct {
	version    string
	produced   int
	consumed   int // distinct expected values received by the first member
	duplicates int
	second     int // records the second member received
	err        error
}

// verdict applies the suite's exact-count rule.
func (res result) verdict(count int) error {
	var errs []error
	if res.err != nil {
		errs = append(errs, res.err)
	}
	if res.produced != count || res.consumed != count || res.duplicates != 0 || res.second != 0 {
		errs = append(errs, fmt.Errorf("produced %d, consumed %d of %d, %d duplicates, second member got %d",
			res.produced, res.consumed, count, res.duplicates, res.second))
	}
	return errors.Join(errs...)
}

// kafkaVersion maps a -kafka-versions entry to kfake's cap; nil = latest.
func kafkaVersion(v string) (*kversion.Versions, error) {
	if v == "latest" {
		return nil, nil
	}
	vs := kversion.FromString(v)
	if vs == nil {
		return nil, fmt.Errorf("kafka version %q: unknown (known: latest, %s)", v, strings.Join(kversion.VersionStrings(), ", "))
	}
	return vs, nil
}

// kafkaLabel is the table's "Kafka emulated" column.
func (r *row) kafkaLabel() string {
	if r.client.legacy {
		return r.kafka + ", floors enforced"
	}
	return kafkaLabel(r.kafka)
}

func kafkaLabel(v string) string {
	if v == "latest" {
		return "latest (" + strings.TrimPrefix(kversion.Stable().VersionGuess(), "v") + ")"
	}
	return v
}

// validFor reports whether an ordering mode may be used with a client:
// strict and auto suit every client (auto falls back to strict for clients
// it does not know); relaxed only clients that match answers by id.
func validFor(ordering string, c client) bool {
	return ordering == orderingStrict || ordering == orderingAuto || c.idMatching
}

// proxyConfig is kproxy's configuration for one row: the tests' (defaults,
// ephemeral loopback ports) with the given ordering.
func proxyConfig(seeds []string, ordering string) config.Config {
	cfg := loopback.Config(seeds)
	cfg.Routing.Ordering = ordering
	return cfg
}

// orderingAvailable asks this build's configuration whether it accepts the
// mode, so a mode still being implemented is reported, not faked.
func orderingAvailable(ordering string) error {
	return proxyConfig([]string{"127.0.0.1:9092"}, ordering).Validate()
}

func runRow(ctx context.Context, o options, r *row) {
	start := time.Now()
	defer func() { r.seconds = int(time.Since(start).Round(time.Second).Seconds()) }()
	if r.ordering != orderingDirect {
		if err := orderingAvailable(r.ordering); err != nil {
			r.status = statusNotRun
			r.detail = fmt.Sprintf("%s not available in this build", r.ordering)
			return
		}
	}
	logf, err := os.Create(r.logPath(o.logDir))
	if err != nil {
		r.status, r.detail = statusFail, err.Error()
		return
	}
	defer logf.Close()

	res, floors, err := runClient(ctx, o, r, logf)
	r.version = res.version
	if err == nil && r.client.legacy {
		fmt.Fprintf(logf, "matrix: the broker received %s\n", floors.Summary())
		r.status, r.detail = legacyVerdict(r, res, o.count, floors)
		fmt.Fprintf(logf, "matrix: %s: %s\n", r.status, r.detail)
		return
	}
	if err == nil {
		err = res.verdict(o.count)
	}
	if err != nil {
		r.status, r.detail = statusFail, oneLine(err.Error())
		fmt.Fprintf(logf, "matrix: FAIL: %v\n", err)
		return
	}
	r.status = statusPass
}

// runClient starts kfake and (unless direct) kproxy for the row and runs
// the client against them. For a legacy row it also returns what the
// broker received.
func runClient(ctx context.Context, o options, r *row, logf *os.File) (result, *kafka4.Broker, error) {
	id := fmt.Sprintf("compat-%s-%d", strings.ReplaceAll(r.client.name, "/", "-"), time.Now().UnixNano())
	sc := scenario{
		topic:      id,
		group:      id + "-g",
		count:      o.count,
		kafka:      r.kafka,
		secondPoll: o.secondPoll,
		log:        logf,
	}
	var (
		cluster *kfake.Cluster
		floors  *kafka4.Broker
		err     error
	)
	if r.client.legacy {
		cluster, floors, err = legacyCluster(ctx, r, &sc)
	} else {
		kopts := []kfake.Opt{kfake.NumBrokers(3), kfake.DefaultNumPartitions(3)}
		if vs, _ := kafkaVersion(r.kafka); vs != nil {
			kopts = append(kopts, kfake.MaxVersions(vs))
		}
		cluster, err = kfake.NewCluster(kopts...)
	}
	if err != nil {
		return result{}, nil, fmt.Errorf("kfake: %w", err)
	}
	defer cluster.Close()
	sc.bootstrap = strings.Join(cluster.ListenAddrs(), ",")

	if r.ordering != orderingDirect {
		cfg := proxyConfig(cluster.ListenAddrs(), r.ordering)
		log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(logf), zap.InfoLevel))
		srv, err := listener.New(cfg, log.With(zap.String("component", "kproxy")), metrics.New(prometheus.NewRegistry(), "compat"))
		if err != nil {
			return result{}, nil, fmt.Errorf("kproxy: %w", err)
		}
		if err := srv.Start(ctx); err != nil {
			return result{}, nil, fmt.Errorf("kproxy: %w", err)
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		for !srv.Ready() {
			if ctx.Err() != nil {
				return result{}, nil, errors.New("kproxy never fetched upstream metadata")
			}
			time.Sleep(10 * time.Millisecond)
		}
		sc.bootstrap = srv.BootstrapAddr()
	}
	fmt.Fprintf(logf, "matrix: %s via %s\n", r.name(), sc.bootstrap)

	// A Go client that ignores its context must not hang the matrix.
	done := make(chan result, 1)
	go func() { done <- r.client.run(ctx, o, sc) }()
	select {
	case res := <-done:
		return res, floors, nil
	case <-ctx.Done():
		select {
		case res := <-done: // the client noticed the deadline itself
			return res, floors, nil
		case <-time.After(5 * time.Second):
			return result{}, nil, fmt.Errorf("row timed out after %s", o.rowTimeout)
		}
	}
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}

// markdown renders the matrix. A row that did not run takes its client
// version from another row of the same client.
func markdown(rows []*row) string {
	versions := map[string]string{}
	for _, r := range rows {
		if r.version != "" {
			versions[r.client.name] = r.version
		}
	}
	var b strings.Builder
	b.WriteString("| client | client version | Kafka emulated | ordering | result | seconds |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, r := range rows {
		v := r.version
		if v == "" {
			v = versions[r.client.name]
		}
		res := r.status
		if r.detail != "" {
			res += ": " + strings.ReplaceAll(r.detail, "|", `\|`)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %d |\n", r.client.name, v, r.kafkaLabel(), r.ordering, res, r.seconds)
	}
	return b.String()
}
