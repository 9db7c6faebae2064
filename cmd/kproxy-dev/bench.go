package main

import (
	"context"
	"flag"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/kproxy/kproxy/internal/bench"
	"github.com/kproxy/kproxy/internal/cli"
)

// runBench measures kproxy against a direct connection and a blind TCP
// relay over an in-process kfake cluster, and prints the table.
func runBench(args []string, stdout, stderr io.Writer) error {
	opts := bench.Defaults()
	fs := cli.NewFlagSet("kproxy-dev bench [flags]", "Measures kproxy against a direct connection and a blind TCP relay over an in-process cluster, and prints the table.")
	quick := fs.Bool("quick", false, "a short run for CI: every row, small numbers")
	verbose := fs.Bool("v", false, "print progress to stderr")
	fs.DurationVar(&opts.Duration, "duration", opts.Duration, "length of one throughput measurement (one path, one round)")
	fs.IntVar(&opts.Rounds, "rounds", opts.Rounds, "alternations of direct → relay → kproxy per workload")
	fs.IntVar(&opts.Samples, "samples", opts.Samples, "round trips per latency measurement")
	fs.IntVar(&opts.IdleConns, "idle-conns", opts.IdleConns, "connections held open for the memory row")
	fs.StringVar(&opts.Only, "only", "", `run one part: "cpu" for the process CPU rows alone (relay and kproxy as processes, plain and TLS), "bridge" for the version bridge rows (a legacy client next to a modern one, both through kproxy)`)
	if err := cli.Parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	if *quick {
		q := bench.Quick()
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		// Explicit flags still win over the quick defaults.
		if !set["duration"] {
			opts.Duration = q.Duration
		}
		if !set["rounds"] {
			opts.Rounds = q.Rounds
		}
		if !set["samples"] {
			opts.Samples = q.Samples
		}
		if !set["idle-conns"] {
			opts.IdleConns = q.IdleConns
		}
	}
	if *verbose {
		opts.Log = stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return bench.Run(ctx, opts, stdout)
}
