// Command kproxy is a Kafka sidecar proxy that gives every purpose (produce,
// fetch, group, coordination, admin, default) its own upstream connection,
// so a long-poll Fetch never holds up a Heartbeat or an OffsetCommit.
//
// This is the production binary: it links no test cluster and no client
// library (TestBinaryLinksOnlyTheSidecar). The demo, benchmark and soak
// live in cmd/kproxy-dev.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/kproxy/kproxy/internal/cli"
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

const usage = `kproxy: a Kafka sidecar proxy that removes head-of-line blocking.

Usage:
  kproxy run [--config FILE]            run the proxy
  kproxy check-config [--config FILE]   print the effective configuration, or every problem in it
  kproxy sessions [--admin ADDR]        what each client session of a running kproxy waits on (--json)
  kproxy version                        print the version

Every command takes --help. The demo, benchmark and soak are developer
tools: go run ./cmd/kproxy-dev --help.

Configuration: a YAML file (see config/kproxy.yaml) and KPROXY_* environment
variables, e.g. KPROXY_UPSTREAM_BOOTSTRAP_SERVERS=kafka-0:9092,kafka-1:9092.
Every key: ` + cli.ConfigReference + `
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return cli.ExitUsage
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "run":
		err = runProxy(rest, stdout, stderr)
	case "check-config":
		err = checkConfig(rest, stdout, stderr)
	case "sessions":
		err = runSessions(rest, stdout, stderr)
	case "version":
		err = printVersion(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "kproxy: unknown command %q\n\n%s", cmd, usage)
		return cli.ExitUsage
	}
	return cli.ExitCode(err, "kproxy "+cmd, stderr)
}

func printVersion(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("kproxy version", "Prints the version.")
	if err := cli.Parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "kproxy %s\n", version)
	return nil
}

// configFlag parses the --config flag shared by run and check-config.
func configFlag(synopsis, about string, args []string, stdout, stderr io.Writer) (string, error) {
	fs := cli.NewFlagSet(synopsis, about+"\n\nConfiguration: the file, then KPROXY_* environment variables over it\n(KPROXY_ + the key upper-cased, dots to underscores; lists comma-separated).\nEvery key: "+cli.ConfigReference)
	path := fs.String("config", "", "YAML configuration `file` (optional; KPROXY_* environment variables override it)")
	if err := cli.Parse(fs, args, stdout, stderr); err != nil {
		return "", err
	}
	return *path, nil
}
