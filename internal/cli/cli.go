// Package cli is how kproxy's commands parse their flags and answer with
// exit codes: 0 for success and for --help, 1 for a failure, 2 for a usage
// mistake (an unknown command, flag or argument), as command-line tools do.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// ConfigReference is where a user reads about configuration keys.
const ConfigReference = "docs/CONFIGURATION.md (https://github.com/kproxy/kproxy/blob/main/docs/CONFIGURATION.md)"

// UsageError is a mistake on the command line; its usage is already printed.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// NewFlagSet makes a command's flag set; synopsis is the command line shown
// first by its usage (e.g. "kproxy run [--config FILE]"), about says what it
// does. Parse chooses where usage goes.
func NewFlagSet(synopsis, about string) *flag.FlagSet {
	fs := flag.NewFlagSet(synopsis, flag.ContinueOnError)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: %s\n\n%s\n", synopsis, about)
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintf(out, "\nFlags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

// Parse parses args. --help prints usage to stdout and returns flag.ErrHelp;
// an unknown flag or a stray argument prints the problem and usage to stderr
// and returns a UsageError.
func Parse(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(stdout)
		fs.Usage()
		return err
	}
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if err != nil {
		fs.SetOutput(stderr)
		fmt.Fprintf(stderr, "%v\n\n", err)
		fs.Usage()
		return UsageError{err}
	}
	return nil
}

// ExitCode reports err from the command cmd on stderr, unless usage already
// said it, and gives the process's exit code.
func ExitCode(err error, cmd string, stderr io.Writer) int {
	var usage UsageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, &usage):
		return ExitUsage
	default:
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return ExitFailure
	}
}
