package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestCheckConfigAcceptsExample(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"check-config", "--config", "../../config/kproxy.yaml"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "bootstrap: 127.0.0.1:9092") {
		t.Fatalf("effective configuration not printed:\n%s", out.String())
	}
}

func TestCheckConfigListsEveryProblem(t *testing.T) {
	t.Setenv("KPROXY_UPSTREAM_BOOTSTRAP_SERVERS", "")
	t.Setenv("KPROXY_LOG_LEVEL", "loud")
	t.Setenv("KPROXY_LISTEN_BOOTSTRAP", "localhost")
	var out, errOut bytes.Buffer
	if code := run([]string{"check-config"}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{"KPROXY_UPSTREAM_BOOTSTRAP_SERVERS", `log.level (KPROXY_LOG_LEVEL) "loud"`, `listen.bootstrap (KPROXY_LISTEN_BOOTSTRAP) "localhost": missing port`} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("missing %q in:\n%s", want, errOut.String())
		}
	}
}

// TestCheckConfigInvalidPrintsOnlyErrors: a configuration with problems is
// not printed, since its bad values would show as the defaults that
// replaced them; stderr holds the problems and nothing else.
func TestCheckConfigInvalidPrintsOnlyErrors(t *testing.T) {
	path := t.TempDir() + "/kproxy.yaml"
	if err := os.WriteFile(path, []byte("upstream:\n  bootstrap_servers: [kafka:9092]\n  dial_timeout: ten seconds\nlog:\n  level: loud\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"check-config", "--config", path}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, errOut.String())
	}
	if out.Len() != 0 {
		t.Errorf("invalid configuration printed to stdout (%d lines):\n%s", strings.Count(out.String(), "\n"), out.String())
	}
	want := []string{"kproxy check-config: invalid configuration:", `upstream.dial_timeout (KPROXY_UPSTREAM_DIAL_TIMEOUT) "ten seconds"`, `log.level (KPROXY_LOG_LEVEL) "loud"`}
	lines := strings.Split(strings.TrimSuffix(errOut.String(), "\n"), "\n")
	if len(lines) != len(want) {
		t.Errorf("stderr has %d lines, want %d (one per problem):\n%s", len(lines), len(want), errOut.String())
	}
	for _, w := range want {
		if !strings.Contains(errOut.String(), w) {
			t.Errorf("stderr lacks %q:\n%s", w, errOut.String())
		}
	}
}

func TestVersionAndUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"version"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "kproxy ") {
		t.Fatalf("version: exit %d, %q", code, out.String())
	}
	if code := run([]string{"frobnicate"}, &out, &errOut); code != 2 {
		t.Fatalf("unknown command: exit %d, want 2", code)
	}
}

// TestCheckConfigRedactsSecrets: a password set in the environment is
// neither printed with the effective configuration nor in the errors of an
// invalid one.
func TestCheckConfigRedactsSecrets(t *testing.T) {
	const secret = "upstream-pw-b7e1"
	for name, env := range map[string]map[string]string{
		"valid": {"KPROXY_UPSTREAM_SASL_MECHANISM": "SCRAM-SHA-512", "KPROXY_UPSTREAM_SASL_USERNAME": "proxy"},
		// password_file set too, and a literal user password: both invalid
		"invalid": {"KPROXY_UPSTREAM_SASL_MECHANISM": "SCRAM-SHA-512", "KPROXY_UPSTREAM_SASL_USERNAME": "proxy",
			"KPROXY_UPSTREAM_SASL_PASSWORD_FILE": "/run/pw", "KPROXY_LISTEN_SASL_MODE": "terminate", "KPROXY_LISTEN_SASL_USERS": "app=" + secret},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("KPROXY_UPSTREAM_BOOTSTRAP_SERVERS", "kafka:9092")
			t.Setenv("KPROXY_UPSTREAM_SASL_PASSWORD", secret)
			for k, v := range env {
				t.Setenv(k, v)
			}
			var out, errOut bytes.Buffer
			code := run([]string{"check-config"}, &out, &errOut)
			if (code == 0) != (name == "valid") {
				t.Fatalf("exit %d: %s", code, errOut.String())
			}
			if strings.Contains(out.String()+errOut.String(), secret) {
				t.Fatalf("secret printed:\n%s\n%s", out.String(), errOut.String())
			}
			if name == "valid" && !strings.Contains(out.String(), "password: '[redacted]'") {
				t.Errorf("password not shown as redacted:\n%s", out.String())
			}
		})
	}
}

// TestCheckConfigShowsEveryGroup: the effective configuration places every
// API, the default group's included, and refuses a split share session.
func TestCheckConfigShowsEveryGroup(t *testing.T) {
	t.Setenv("KPROXY_UPSTREAM_BOOTSTRAP_SERVERS", "k:9092")
	t.Setenv("KPROXY_ROUTING_GROUPS", "meta=Metadata")
	var out, errOut bytes.Buffer
	if code := run([]string{"check-config"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"coordination:", "- StreamsGroupHeartbeat", "meta:", "- Metadata", "default:", "- FindCoordinator", "- CreateACLs"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check-config output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Count(out.String(), "- Metadata\n") != 1 {
		t.Errorf("Metadata listed in more than its group:\n%s", out.String())
	}

	t.Setenv("KPROXY_ROUTING_GROUPS", "fetch=Fetch|ShareFetch")
	out.Reset()
	errOut.Reset()
	if code := run([]string{"check-config"}, &out, &errOut); code != 1 {
		t.Fatalf("split share session: exit %d, want 1", code)
	}
	if msg := errOut.String(); !strings.Contains(msg, `ShareFetch is in group "fetch" and ShareAcknowledge in group "default"`) {
		t.Errorf("error does not name both APIs and their groups:\n%s", msg)
	}
}

// TestHelpAndUsageExitCodes: --help on every command exits 0 and shows its
// flags and where the configuration reference is; an unknown command, flag
// or argument exits 2 with usage.
func TestHelpAndUsageExitCodes(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}, {"-h"}, {"run", "--help"}, {"check-config", "--help"}, {"check-config", "-h"}, {"version", "--help"}} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 0 {
			t.Errorf("%v: exit %d, want 0; stderr %q", args, code, errOut.String())
		}
		if !strings.Contains(out.String(), "Usage") {
			t.Errorf("%v: no usage on stdout: %q", args, out.String())
		}
		if args[0] == "run" || args[0] == "check-config" || args[0] == "--help" {
			for _, want := range []string{"--config", "docs/CONFIGURATION.md"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("%v: help lacks %q:\n%s", args, want, out.String())
				}
			}
		}
	}
	for _, args := range [][]string{{}, {"frobnicate"}, {"run", "--frobnicate"}, {"check-config", "extra"}, {"version", "--x"}, {"demo"}} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
		if !strings.Contains(errOut.String(), "Usage") && !strings.Contains(errOut.String(), "usage") {
			t.Errorf("%v: no usage on stderr: %q", args, errOut.String())
		}
	}
}

// TestCheckConfigRejectsUnknownKeys: the misspellings a user makes fail
// check-config, each named with the key meant.
func TestCheckConfigRejectsUnknownKeys(t *testing.T) {
	path := t.TempDir() + "/kproxy.yaml"
	if err := os.WriteFile(path, []byte("routng:\n  ordering: strict\nupstream:\n  bootstrap_server: [kafka:9092]\n  dial_timeout: ten seconds\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KPROXY_ROUTING_ORDRING", "strict")
	var out, errOut bytes.Buffer
	if code := run([]string{"check-config", "--config", path}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, errOut.String())
	}
	for _, want := range []string{
		"routng: unknown key; did you mean routing?",
		"upstream.bootstrap_server: unknown key; did you mean upstream.bootstrap_servers?",
		`upstream.dial_timeout (KPROXY_UPSTREAM_DIAL_TIMEOUT) "ten seconds": want a duration`,
		"KPROXY_ROUTING_ORDRING: unknown environment variable; did you mean KPROXY_ROUTING_ORDERING",
		"KPROXY_UPSTREAM_BOOTSTRAP_SERVERS",
	} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("missing %q in:\n%s", want, errOut.String())
		}
	}
	errOut.Reset()
	if code := run([]string{"run", "--config", path}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "routng: unknown key") {
		t.Errorf("run: exit %d: %s", code, errOut.String())
	}
}
