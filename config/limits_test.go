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

func TestBudgetAndClientTimeouts(t *testing.T) {
	t.Setenv("KPROXY_UPSTREAM_BOOTSTRAP_SERVERS", "a:9092")
	t.Setenv("KPROXY_LIMITS_MAX_BUFFERED_BYTES", "536870912")
	t.Setenv("KPROXY_LIMITS_CLIENT_IDLE_TIMEOUT", "0s")
	t.Setenv("KPROXY_LIMITS_CLIENT_WRITE_TIMEOUT", "5s")
	t.Setenv("KPROXY_LISTEN_HANDSHAKE_TIMEOUT", "3s")
	cfg, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if l := cfg.Limits; l.MaxBufferedBytes != 512<<20 || l.ClientIdleTimeout != 0 || l.ClientWriteTimeout != 5*time.Second || cfg.Listen.HandshakeTimeout != 3*time.Second {
		t.Fatalf("env not applied: %+v, handshake %v", l, cfg.Listen.HandshakeTimeout)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("0 idle timeout (never) rejected: %v", err)
	}
	d := Defaults()
	if d.Limits.MaxBufferedBytes != 256<<20 || d.Limits.ClientIdleTimeout != 10*time.Minute || d.Limits.ClientWriteTimeout != 30*time.Second || d.Listen.HandshakeTimeout != 10*time.Second {
		t.Fatalf("defaults: %+v, handshake %v", d.Limits, d.Listen.HandshakeTimeout)
	}

	// The budget must let a largest frame through: 32 MiB frames are 64
	// MiB buffers, which need 64 MiB × 16/15 of budget.
	cfg = Defaults()
	cfg.Upstream.BootstrapServers = []string{"a:9092"}
	cfg.Limits.MaxFrameBytes = 32 << 20
	cfg.Limits.MaxBufferedBytes = 64 << 20
	cfg.Limits.ClientWriteTimeout = 0
	cfg.Listen.HandshakeTimeout = -time.Second
	msg := cfg.Validate().Error()
	for _, want := range []string{
		`limits.max_buffered_bytes (KPROXY_LIMITS_MAX_BUFFERED_BYTES) "67108864": must hold a frame of limits.max_frame_bytes and a session's share: at least 71582789`,
		`limits.client_write_timeout (KPROXY_LIMITS_CLIENT_WRITE_TIMEOUT) "0s": must be positive`,
		`listen.handshake_timeout (KPROXY_LISTEN_HANDSHAKE_TIMEOUT) "-1s": must be positive`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	cfg.Limits.MaxBufferedBytes = 71582789
	cfg.Limits.ClientWriteTimeout, cfg.Listen.HandshakeTimeout = time.Second, time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the smallest budget that fits rejected: %v", err)
	}
}

func TestPoolMaxAge(t *testing.T) {
	t.Setenv("KPROXY_UPSTREAM_BOOTSTRAP_SERVERS", "a:9092")
	t.Setenv("KPROXY_UPSTREAM_POOL_MAX_AGE", "30m")
	cfg, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Upstream.Pool.MaxAge != 30*time.Minute {
		t.Fatalf("env not applied: %+v", cfg.Upstream.Pool)
	}
	if d := Defaults(); d.Upstream.Pool.MaxAge != 10*time.Minute {
		t.Fatalf("default max_age %v, want 10m", d.Upstream.Pool.MaxAge)
	}
	cfg.Upstream.Pool.MaxAge = 0
	want := `upstream.pool.max_age (KPROXY_UPSTREAM_POOL_MAX_AGE) "0s": must be positive while the pool is on`
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("0 max_age: %v, want %q", err, want)
	}
	cfg.Upstream.Pool.MaxIdlePerBroker = 0
	if err := cfg.Validate(); err != nil {
		t.Fatalf("max_age with the pool off rejected: %v", err)
	}
}
