package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestHelpAndUsageExitCodes: --help on every command exits 0 with its flags;
// an unknown command or flag exits 2 with usage.
func TestHelpAndUsageExitCodes(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"demo", "--help"}, {"bench", "--help"}, {"soak", "-h"}} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 0 || !strings.Contains(out.String(), "Usage") {
			t.Errorf("%v: exit %d, stdout %q", args, code, out.String())
		}
		if len(args) > 1 && !strings.Contains(out.String(), "Flags:") {
			t.Errorf("%v: no flags in help:\n%s", args, out.String())
		}
	}
	for _, args := range [][]string{{}, {"run"}, {"demo", "--nope"}, {"bench", "extra"}, {"soak", "--duration", "soon"}} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "Usage") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut.String())
		}
	}
}
