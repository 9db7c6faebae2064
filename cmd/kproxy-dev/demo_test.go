package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// syncBuffer is the demo's stdout while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitOutput waits, bounded, until out contains want; done reports an early
// end of the demo.
func waitOutput(t *testing.T, out *syncBuffer, want string, done <-chan error) string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		if s := out.String(); strings.Contains(s, want) {
			return s
		}
		select {
		case err := <-done:
			t.Fatalf("demo ended (%v) before printing %q:\n%s", err, want, out.String())
		case <-deadline:
			t.Fatalf("no %q within 30s:\n%s", want, out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

var (
	bannerBootstrap = regexp.MustCompile(`(?m)^  bootstrap  (\S+)$`)
	bannerBroker    = regexp.MustCompile(`(?m)^  broker (\d+)   (\S+)  -> kfake (\S+)$`)
)

// parseBanner returns the bootstrap address and, by node id, the proxy's
// and the cluster's address of every broker the banner lists.
func parseBanner(t *testing.T, banner string) (bootstrap string, proxied, upstream map[int32]string) {
	t.Helper()
	m := bannerBootstrap.FindStringSubmatch(banner)
	if m == nil {
		t.Fatalf("no bootstrap line in the banner:\n%s", banner)
	}
	proxied, upstream = map[int32]string{}, map[int32]string{}
	for _, b := range bannerBroker.FindAllStringSubmatch(banner, -1) {
		id, _ := strconv.Atoi(b[1])
		proxied[int32(id)], upstream[int32(id)] = b[2], b[3]
	}
	return m[1], proxied, upstream
}

// checkMetadata bootstraps a franz-go client at bootstrap and checks that
// Metadata lists exactly the brokers in want, at those (proxy) addresses.
func checkMetadata(t *testing.T, bootstrap string, want map[int32]string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("metadata through %s: %v", bootstrap, err)
	}
	if len(resp.Brokers) != 3 {
		t.Errorf("metadata lists %d brokers, want 3: %+v", len(resp.Brokers), resp.Brokers)
	}
	for _, b := range resp.Brokers {
		got := net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
		if got != want[b.NodeID] {
			t.Errorf("broker %d at %s, want the proxy's %q", b.NodeID, got, want[b.NodeID])
		}
	}
}

// TestDemo runs `kproxy demo --workload` on ephemeral ports, lists the
// brokers through it with franz-go, and stops it as Ctrl-C does.
func TestDemo(t *testing.T) {
	t.Parallel()
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- demo(ctx, demoOptions{
			bootstrap:   "127.0.0.1:0",
			admin:       "127.0.0.1:0",
			logLevel:    "warn",
			workload:    true,
			fetchWait:   500 * time.Millisecond,
			reportEvery: 100 * time.Millisecond,
		}, out)
	}()
	banner := waitOutput(t, out, "Ctrl-C to stop.", done)
	bootstrap, proxied, upstream := parseBanner(t, banner)
	if len(proxied) != 3 {
		t.Fatalf("banner lists %d brokers, want 3:\n%s", len(proxied), banner)
	}
	for id, addr := range proxied {
		if addr == upstream[id] {
			t.Errorf("broker %d: proxy address %s is the cluster's", id, addr)
		}
	}
	for _, want := range []string{"kcat -b " + bootstrap + " -L", "admin      http://127.0.0.1:"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	checkMetadata(t, bootstrap, proxied)
	waitOutput(t, out, "|  kproxy  at broker", done) // the workload reports

	cancel() // Ctrl-C
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo returned %v after Ctrl-C", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not stop within 30s of Ctrl-C")
	}
	if !strings.HasSuffix(out.String(), "kproxy demo stopped\n") {
		t.Errorf("no clean stop:\n%s", out.String())
	}
}

// TestExternalDemo is the client side of scripts/test's check of the README
// quick start: it reads the banner of a `kproxy-dev demo` process started
// there (KPROXYTEST_DEMO_BANNER names the file) and lists the brokers.
func TestExternalDemo(t *testing.T) {
	path := os.Getenv("KPROXYTEST_DEMO_BANNER")
	if path == "" {
		t.Skip("KPROXYTEST_DEMO_BANNER not set: run by scripts/test against a running demo")
	}
	banner, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bootstrap, proxied, _ := parseBanner(t, string(banner))
	checkMetadata(t, bootstrap, proxied)
}

func TestDemoFlags(t *testing.T) {
	o, err := parseDemoFlags([]string{"--bootstrap", "127.0.0.1:29092", "--broker-port-base", "29192", "--admin", "127.0.0.1:29644", "--workload", "--fetch-wait", "5s"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.bootstrap != "127.0.0.1:29092" || o.brokerPortBase != 29192 || o.admin != "127.0.0.1:29644" || !o.workload || o.fetchWait != 5*time.Second {
		t.Errorf("flags not applied: %+v", o)
	}
	if o, _ := parseDemoFlags(nil, &bytes.Buffer{}, &bytes.Buffer{}); o.bootstrap != "127.0.0.1:9092" || o.brokerPortBase != 19092 || o.admin != "127.0.0.1:9644" {
		t.Errorf("defaults are not the proxy's: %+v", o)
	}
	var errOut bytes.Buffer
	if code := run([]string{"demo", "extra"}, &bytes.Buffer{}, &errOut); code != 2 || !strings.Contains(errOut.String(), "unexpected arguments") {
		t.Errorf("stray argument: exit %d, %q", code, errOut.String())
	}
}
