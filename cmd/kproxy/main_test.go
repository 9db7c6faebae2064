package main

import (
	"bytes"
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
// neither printed with the effective configuration nor in its errors.
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
			if !strings.Contains(out.String(), "password: '[redacted]'") {
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
