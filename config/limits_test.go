package config

import (
	"strings"
	"testing"
	"time"
)

func TestReliabilityLimitsFromEnv(t *testing.T) {
	t.Setenv("KPROXY_UPSTREAM_BOOTSTRAP_SERVERS", "a:9092")
	t.Setenv("KPROXY_LIMITS_MAX_CLIENT_CONNECTIONS", "7")
	t.Setenv("KPROXY_LIMITS_UPSTREAM_ANSWER_GRACE", "2m")
	t.Setenv("KPROXY_UPSTREAM_DIAL_BACKOFF_MAX", "0s")
	cfg, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Limits.MaxClientConnections != 7 || cfg.Limits.UpstreamAnswerGrace != 2*time.Minute || cfg.Upstream.DialBackoffMax != 0 {
		t.Fatalf("env not applied: %+v %+v", cfg.Limits, cfg.Upstream)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("0 dial backoff (disabled) rejected: %v", err)
	}
	if d := Defaults(); d.Limits.MaxClientConnections != 1024 || d.Limits.UpstreamAnswerGrace != 30*time.Second || d.Upstream.DialBackoffMax != 5*time.Second {
		t.Fatalf("defaults changed: %+v %+v", d.Limits, d.Upstream)
	}
}

func TestReliabilityLimitsValidated(t *testing.T) {
	cfg := Defaults()
	cfg.Upstream.BootstrapServers = []string{"a:9092"}
	cfg.Limits.MaxClientConnections = 0
	cfg.Limits.UpstreamAnswerGrace = 0
	cfg.Upstream.DialBackoffMax = -time.Second
	msg := cfg.Validate().Error()
	for _, want := range []string{
		`limits.max_client_connections (KPROXY_LIMITS_MAX_CLIENT_CONNECTIONS) "0": must be at least 1`,
		`limits.upstream_answer_grace (KPROXY_LIMITS_UPSTREAM_ANSWER_GRACE) "0s": must be positive`,
		`upstream.dial_backoff_max (KPROXY_UPSTREAM_DIAL_BACKOFF_MAX) "-1s": must not be negative`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
}
