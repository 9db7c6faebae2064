// Command kfakeserver runs an in-process kfake Kafka cluster for the
// compatibility suite. The non-Go clients (kafka-python, confluent-kafka,
// kcat, KafkaJS) cannot embed kfake, so this binary hosts it and prints the
// bootstrap list on stdout:
//
//	BOOTSTRAP 127.0.0.1:40001,127.0.0.1:40002,127.0.0.1:40003
//
// It serves until SIGTERM/SIGINT, or until stdin reaches EOF (so a harness
// that dies without signalling does not leak a broker).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/kproxy/kproxy/internal/proxytest/kafka4"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "kfakeserver:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		brokers     = flag.Int("brokers", 3, "number of brokers")
		version     = flag.String("kafka-version", "latest", `Kafka version to emulate: "latest" (everything kfake implements), or e.g. "2.8", "3.9", "4.0"`)
		autoCreate  = flag.Bool("auto-create-topics", false, "allow topic auto-creation on Metadata requests")
		partitions  = flag.Int("default-partitions", 3, "partitions for auto-created topics")
		watchStdin  = flag.Bool("watch-stdin", true, "exit when stdin reaches EOF")
		seedTopics  = flag.String("seed-topics", "", "comma-separated topics to create at start, with -default-partitions partitions")
		logRequests = flag.Bool("v", false, "log kfake debug output to stderr")
		logAPIVers  = flag.Bool("log-api-versions", false, "log every ApiVersions request (version, KIP-511 ClientSoftwareName/Version) to stderr")
		floors      = flag.Bool("kafka4-floors", false, "close the connection on request versions Kafka 4.0 removed and list 4.0's minimums in ApiVersions; print the requests received, by key and version, on exit")
		countReqs   = flag.Bool("count-requests", false, "print the requests received, by key and version, on exit (implied by -kafka4-floors)")
	)
	flag.Parse()

	if *brokers < 1 {
		return fmt.Errorf("-brokers %d: need at least 1", *brokers)
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(*brokers),
		kfake.DefaultNumPartitions(*partitions),
	}
	if *version != "latest" {
		v := kversion.FromString(*version)
		if v == nil {
			return fmt.Errorf("-kafka-version %q: unknown (known: latest, %s)", *version, strings.Join(kversion.VersionStrings(), ", "))
		}
		opts = append(opts, kfake.MaxVersions(v))
	}
	if *autoCreate {
		opts = append(opts, kfake.AllowAutoTopicCreation())
	}
	if *seedTopics != "" {
		opts = append(opts, kfake.SeedTopics(int32(*partitions), strings.Split(*seedTopics, ",")...))
	}
	if *logRequests {
		opts = append(opts, kfake.WithLogger(kfake.BasicLogger(os.Stderr, kfake.LogLevelDebug)))
	}

	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("starting kfake cluster: %w", err)
	}
	defer c.Close()
	// A control that answers ApiVersions (the floors) hides the request
	// from controls added after it: the logger goes first.
	if *logAPIVers {
		logAPIVersions(c)
	}
	var counted *kafka4.Broker
	switch {
	case *floors:
		if counted, err = kafka4.Floors(c); err != nil {
			return err
		}
	case *countReqs:
		counted = kafka4.Observe(c)
	}
	if counted != nil {
		defer func() {
			fmt.Fprintf(os.Stderr, "kfakeserver: requests: %s\n", counted.Summary())
			fmt.Fprintf(os.Stderr, "kfakeserver: rejected %d requests\n", counted.Rejected())
		}()
	}

	// One line, flushed, so a harness can read it with a plain line read.
	w := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(w, "BOOTSTRAP %s\n", strings.Join(c.ListenAddrs(), ","))
	if err := w.Flush(); err != nil {
		return fmt.Errorf("writing bootstrap line: %w", err)
	}

	done := make(chan string, 2)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() { done <- (<-sigs).String() }()
	if *watchStdin {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			done <- "stdin closed"
		}()
	}
	fmt.Fprintf(os.Stderr, "kfakeserver: stopping (%s)\n", <-done)
	return nil
}

// logAPIVersions observes ApiVersions requests without handling them, so the
// suite can record what each client announces (KIP-511, ApiVersions v3+);
// kproxy's "auto" ordering mode keys off ClientSoftwareName.
func logAPIVersions(c *kfake.Cluster) {
	c.ControlKey(int16(kmsg.ApiVersions), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		r := req.(*kmsg.ApiVersionsRequest)
		fmt.Fprintf(os.Stderr, "api_versions broker=%d version=%d client_software_name=%q client_software_version=%q\n",
			c.CurrentNode(), r.Version, r.ClientSoftwareName, r.ClientSoftwareVersion)
		return nil, nil, false
	})
}
