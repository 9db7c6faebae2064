// Command kproxy-dev is kproxy's developer tooling: an embedded demo
// cluster, the benchmark, the soak test. It links test clusters and client
// libraries that the production binary (cmd/kproxy) must not carry.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/kproxy/kproxy/internal/cli"
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

const usage = `kproxy-dev: developer tooling for kproxy (the sidecar itself is cmd/kproxy).

Usage:
  kproxy-dev demo [--workload]          run an embedded 3-broker cluster behind kproxy (--help: ports)
  kproxy-dev bench [--quick] [flags]    measure kproxy against a direct connection and a blind TCP relay
  kproxy-dev soak [--duration 60s]      mixed load through kproxy while injecting faults; verifies counts

Every command takes --help.
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
	case "demo":
		err = runDemo(rest, stdout, stderr)
	case "bench":
		err = runBench(rest, stdout, stderr)
	case "soak":
		err = runSoak(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "kproxy-dev: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	return cli.ExitCode(err, "kproxy-dev "+cmd, stderr)
}
