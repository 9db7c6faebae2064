package listener_test

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/kproxy/kproxy/internal/proxytest"
	"github.com/kproxy/kproxy/internal/rawclient"
)

// logWaiter finds log entries by message, level and fields.
type logWaiter struct {
	t    *testing.T
	logs *observer.ObservedLogs
}

// want waits (bounded) for an entry with msg at level whose fields include
// every one of fields (compared as strings, so ints and strings both do);
// it returns that entry's fields.
func (w logWaiter) want(level zapcore.Level, msg string, fields map[string]string) map[string]any {
	w.t.Helper()
	var found map[string]any
	waitFor(w.t, fmt.Sprintf("%s %q %v", level, msg, fields), func() bool {
		for _, e := range w.logs.FilterMessage(msg).All() {
			if e.Level != level {
				continue
			}
			m := e.ContextMap()
			if matches(m, fields) {
				found = m
				return true
			}
		}
		return false
	})
	return found
}

// matches: every field present with the value given; "*" accepts any
// value, a trailing "*" any value with that prefix.
func matches(m map[string]any, fields map[string]string) bool {
	for k, want := range fields {
		v, ok := m[k]
		if !ok {
			return false
		}
		got := fmt.Sprint(v)
		if prefix, wild := strings.CutSuffix(want, "*"); wild {
			if !strings.HasPrefix(got, prefix) {
				return false
			}
		} else if got != want {
			return false
		}
	}
	return true
}

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// TestLifecycleLogs checks the operator-facing log contract: listeners and
// broker discovery at info; one info line per session, at its close, with
// who the client was and what went through; its opening, its ordering and
// per-request detail at debug; protocol and dial failures at warn with the
// reason in words, one per burst of a kind; messages constant and
// lowercase, fields snake_case.
func TestLifecycleLogs(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.DebugLevel)
	env := proxytest.Start(t, proxytest.Options{Brokers: 1, Logger: zap.New(core)})
	w := logWaiter{t, logs}

	w.want(zapcore.InfoLevel, "listening", map[string]string{"listener": "bootstrap", "addr": env.Bootstrap()})
	brokerAddr := env.Proxy.BrokerAddrs()[0]
	w.want(zapcore.InfoLevel, "listening", map[string]string{"listener": "broker", "broker": "0", "addr": brokerAddr})
	w.want(zapcore.InfoLevel, "broker discovered", map[string]string{"broker": "0", "upstream": env.Cluster.ListenAddrs()[0]})

	// A clean session: opened, one request, closed by the client.
	c, err := rawclient.Dial(env.Bootstrap())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Conn.SetDeadline(time.Now().Add(10 * time.Second))
	client := c.Conn.LocalAddr().String()
	c.ClientID = "log-test-client"
	corr, err := c.Send(kmsg.NewPtrMetadataRequest())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(); err != nil {
		t.Fatal(err)
	}
	// The writer counts an answer's bytes once its write returns, which
	// may be after the client has read them: wait for the count before
	// the close, which logs it.
	waitFor(t, "the answer's bytes counted", func() bool {
		list, _ := env.Proxy.Sessions(10)
		return len(list) == 1 && list[0].BytesOut >= 8
	})
	_ = c.Close()
	w.want(zapcore.DebugLevel, "session opened", map[string]string{"client": client, "broker": "-1"})
	w.want(zapcore.DebugLevel, "session ordering", map[string]string{"client": client, "ordering": "strict", "client_id": "log-test-client"})
	w.want(zapcore.DebugLevel, "request", map[string]string{
		"client": client, "api": "Metadata", "api_key": "3", "api_version": "*",
		"correlation_id": fmt.Sprint(corr), "group": "default",
	})
	w.want(zapcore.DebugLevel, "lane dialed", map[string]string{"client": client, "group": "default", "upstream": "*"})
	closed := w.want(zapcore.InfoLevel, "session closed", map[string]string{
		"client": client, "reason": "client_closed", "client_id": "log-test-client", "client_software_name": "",
		"ordering": "strict", "requests": "1",
	})
	if d, ok := closed["duration_s"].(float64); !ok || d <= 0 {
		t.Errorf("session closed: duration_s %v (%T), want positive seconds", closed["duration_s"], closed["duration_s"])
	}
	if in, _ := closed["bytes_in"].(int64); in < 12 {
		t.Errorf("session closed: bytes_in %v, want at least the request's size", closed["bytes_in"])
	}
	if out, _ := closed["bytes_out"].(int64); out < 8 {
		t.Errorf("session closed: bytes_out %v, want at least the answer's size", closed["bytes_out"])
	}
	for _, e := range logs.All() {
		if e.Level >= zapcore.InfoLevel && e.ContextMap()["client"] == client && e.Message != "session closed" {
			t.Errorf("a clean session logged %q at %s; want only its close line at info", e.Message, e.Level)
		}
	}

	// A protocol failure: HTTP on the Kafka port, at warn with the reason.
	conn, err := net.DialTimeout("tcp", env.Bootstrap(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	httpClient := conn.LocalAddr().String()
	if _, err := conn.Write([]byte("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, conn)
	_ = conn.Close()
	w.want(zapcore.WarnLevel, "session closed", map[string]string{
		"client": httpClient, "reason": "bad_frame", "error": "HTTP request on a Kafka port",
	})

	// The same failure again at once: counted, not logged again (burst).
	conn, err = net.DialTimeout("tcp", env.Bootstrap(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, conn)
	_ = conn.Close()
	waitFor(t, "the second bad_frame close counted", func() bool {
		return testutil.ToFloat64(env.Metrics.SessionCloses.WithLabelValues("bad_frame")) == 2
	})
	badFrameWarnings := 0
	for _, e := range logs.FilterMessage("session closed").All() {
		if e.Level == zapcore.WarnLevel && e.ContextMap()["reason"] == "bad_frame" {
			badFrameWarnings++
		}
	}
	if badFrameWarnings != 1 {
		t.Errorf("%d warnings for 2 bad_frame closes within %v, want 1", badFrameWarnings, 10*time.Second)
	}

	// A dial failure: the broker is gone when the session first needs it.
	env.Cluster.Close()
	c2, err := rawclient.Dial(brokerAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c2.Close() })
	if _, err := c2.Send(kmsg.NewPtrMetadataRequest()); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, c2.Conn)
	w.want(zapcore.WarnLevel, "session closed", map[string]string{
		"client": c2.Conn.LocalAddr().String(), "broker": "0", "reason": "dial_failed", "error": "dial broker 0 at *",
	})
	if got := testutil.ToFloat64(env.Metrics.UpstreamDialErrors.WithLabelValues("0")); got != 1 {
		t.Errorf("kproxy_upstream_dial_errors_total{broker=\"0\"} = %v, want 1", got)
	}

	for _, e := range logs.All() {
		if e.Message != strings.ToLower(e.Message) || strings.ContainsAny(e.Message, "%=:") {
			t.Errorf("log message %q: want a constant lowercase message, details in fields", e.Message)
		}
		for _, f := range e.Context {
			if !snakeCase.MatchString(f.Key) {
				t.Errorf("log %q: field %q is not snake_case", e.Message, f.Key)
			}
		}
	}
}
