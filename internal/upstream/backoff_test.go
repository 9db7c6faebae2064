package upstream

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBackoffDoublesToMaxAndResets(t *testing.T) {
	now := time.Unix(0, 0)
	b := NewBackoff(time.Second)
	b.now = func() time.Time { return now }
	fail := errors.New("refused")
	for i, want := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		b.record("a:1", fail)
		var be *BackoffError
		if err := b.allow("a:1"); !errors.As(err, &be) || be.Retry != want*time.Millisecond || be.Failures != i+1 {
			t.Fatalf("after %d failures: %v, want retry in %vms", i+1, err, int(want))
		}
		if b.allow("b:1") != nil {
			t.Fatal("another broker is backing off too")
		}
		now = now.Add(want * time.Millisecond)
		if err := b.allow("a:1"); err != nil {
			t.Fatalf("still refused after the wait: %v", err)
		}
	}
	b.record("a:1", nil)
	b.record("a:1", fail)
	var be *BackoffError
	if !errors.As(b.allow("a:1"), &be) || be.Retry != 100*time.Millisecond {
		t.Fatalf("a success did not reset the backoff: %v", be)
	}
	if NewBackoff(0) != nil || (*Backoff)(nil).allow("a:1") != nil {
		t.Fatal("a zero maximum must disable the backoff")
	}
}

// TestDialBackoffRefusesAtOnce: a second dial to a refusing broker fails
// without touching the network.
func TestDialBackoffRefusesAtOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: connection refused
	d := &Dialer{Timeout: time.Second, Backoff: NewBackoff(time.Minute)}
	if _, err := d.Dial(context.Background(), addr); err == nil || errors.As(err, new(*BackoffError)) {
		t.Fatalf("first dial: %v, want a real dial error", err)
	}
	if _, err := d.Dial(context.Background(), addr); !errors.As(err, new(*BackoffError)) {
		t.Fatalf("second dial: %v, want a backoff refusal", err)
	}
}
