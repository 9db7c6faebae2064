// Command kproxy is a Kafka sidecar proxy that gives every purpose (produce,
// fetch, group, coordination, admin, default) its own upstream connection,
// so a long-poll Fetch never holds up a Heartbeat or an OffsetCommit.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

const usage = `kproxy: a Kafka sidecar proxy that removes head-of-line blocking.

Usage:
  kproxy run [--config FILE]            run the proxy
  kproxy check-config [--config FILE]   print the effective configuration, or every problem in it
  kproxy sessions [--admin ADDR]        what each client session of a running kproxy waits on (--json)
  kproxy demo [--workload]              run an embedded 3-broker cluster behind kproxy (--help: ports)
  kproxy bench [--quick] [flags]        measure kproxy against a direct connection and a blind TCP relay
  kproxy soak [--duration 60s]          mixed load through kproxy while injecting faults; verifies counts
  kproxy version                        print the version

Configuration: a YAML file (see config/kproxy.yaml) and KPROXY_* environment
variables, e.g. KPROXY_UPSTREAM_BOOTSTRAP_SERVERS=kafka-0:9092,kafka-1:9092.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "run":
		err = runProxy(rest, stderr)
	case "demo":
		err = runDemo(rest, stdout, stderr)
	case "bench":
		err = runBench(rest, stdout, stderr)
	case "soak":
		err = runSoak(rest, stdout, stderr)
	case "check-config":
		err = checkConfig(rest, stdout)
	case "sessions":
		err = runSessions(rest, stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "kproxy %s\n", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "kproxy: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "kproxy %s: %v\n", cmd, err)
		}
		return 1
	}
	return 0
}

// configFlag parses the --config flag shared by the subcommands.
func configFlag(name string, args []string, out io.Writer) (string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	path := fs.String("config", "", "YAML configuration file (optional; KPROXY_* environment variables override it)")
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if fs.NArg() > 0 {
		return "", fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return *path, nil
}
