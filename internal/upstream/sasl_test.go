package upstream

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/config"
)

// fakeBroker answers the SASL exchange, recording the tokens it is sent.
type fakeBroker struct {
	mechanisms []string
	tokens     []string
	lifetimeMs int64
	fail       string
}

func (b *fakeBroker) exchange(_ context.Context, req kmsg.Request, resp kmsg.Response) error {
	switch req := req.(type) {
	case *kmsg.SASLHandshakeRequest:
		b.mechanisms = append(b.mechanisms, req.Mechanism)
	case *kmsg.SASLAuthenticateRequest:
		b.tokens = append(b.tokens, string(req.SASLAuthBytes))
		r := resp.(*kmsg.SASLAuthenticateResponse)
		r.SessionLifetimeMillis = b.lifetimeMs
		if b.fail != "" {
			r.ErrorCode = kerr.SaslAuthenticationFailed.Code
			r.ErrorMessage = &b.fail
		}
	}
	return nil
}

// TestOAuthBearerRereadsToken: the token file is read on every
// authentication, so a refreshed token is used from the next one on.
func TestOAuthBearerRereadsToken(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("token-one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := newSASLAuth(config.UpstreamSASL{Mechanism: config.SASLOAuthBearer, TokenFile: file})
	if err != nil {
		t.Fatal(err)
	}
	b := &fakeBroker{lifetimeMs: 60_000}
	lifetime, err := a.authenticate(context.Background(), "k:9092", b.exchange)
	if err != nil || lifetime != time.Minute {
		t.Fatalf("authenticate: %v %v", lifetime, err)
	}
	if err := os.WriteFile(file, []byte("token-two"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := a.authenticate(context.Background(), "k:9092", b.exchange); err != nil {
		t.Fatal(err)
	}
	if len(b.tokens) != 2 || !strings.Contains(b.tokens[0], "auth=Bearer token-one\x01") || !strings.Contains(b.tokens[1], "auth=Bearer token-two\x01") {
		t.Fatalf("tokens sent: %q", b.tokens)
	}
	if b.mechanisms[0] != "OAUTHBEARER" {
		t.Fatalf("mechanism %q", b.mechanisms[0])
	}
}

func TestAuthErrorNamesBrokerUserMessage(t *testing.T) {
	a, err := newSASLAuth(config.UpstreamSASL{Mechanism: config.SASLPlain, Username: "proxy", Password: "pw-secret"})
	if err != nil {
		t.Fatal(err)
	}
	b := &fakeBroker{fail: "Invalid username or password"}
	_, err = a.authenticate(context.Background(), "kafka-1:9093", b.exchange)
	msg := err.Error()
	for _, want := range []string{"kafka-1:9093", `"proxy"`, "PLAIN", "SASL_AUTHENTICATION_FAILED", "Invalid username or password"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q missing from %q", want, msg)
		}
	}
	if strings.Contains(msg, "pw-secret") {
		t.Errorf("password in error: %s", msg)
	}
}

func TestReauthAfter(t *testing.T) {
	for _, c := range []struct{ lifetime, lo, hi time.Duration }{
		{2 * time.Second, time.Second, time.Second},
		{time.Hour, 57 * time.Minute, 58*time.Minute + 49*time.Second},
		{500 * time.Millisecond, 250 * time.Millisecond, 250 * time.Millisecond},
	} {
		for _, j := range []float64{0, 0.5, 1} {
			if got := reauthAfter(c.lifetime, j); got < c.lo || got > c.hi {
				t.Errorf("reauthAfter(%v, %v) = %v, want %v..%v", c.lifetime, j, got, c.lo, c.hi)
			}
		}
	}
}

// TestReauthSchedule: at every lifetime, the SaslHandshakes of two
// re-authentications are at least minReauthGap apart (Kafka refuses them
// within a second), and requests are parked before the session expires,
// with a margin; long lifetimes keep the usual early re-authentication.
func TestReauthSchedule(t *testing.T) {
	for lifetime := 100 * time.Millisecond; lifetime <= 2*time.Hour; lifetime = lifetime * 5 / 4 {
		for _, j := range []float64{0, 0.5, 1} {
			hold, handshake := reauthSchedule(lifetime, j)
			switch {
			case handshake < minReauthGap:
				t.Fatalf("lifetime %v: handshake after %v, under %v", lifetime, handshake, minReauthGap)
			case hold > handshake:
				t.Fatalf("lifetime %v: hold %v after the handshake %v", lifetime, hold, handshake)
			case hold > lifetime-min(lifetime/4, time.Second):
				t.Fatalf("lifetime %v: hold at %v leaves under min(lifetime/4, 1s) before expiry", lifetime, hold)
			case hold <= 0:
				t.Fatalf("lifetime %v: hold at %v", lifetime, hold)
			}
			if lifetime >= 3*time.Second && (hold != handshake || hold != reauthAfter(lifetime, j)) {
				t.Fatalf("lifetime %v: hold %v, handshake %v; want both at reauthAfter %v", lifetime, hold, handshake, reauthAfter(lifetime, j))
			}
		}
	}
}
