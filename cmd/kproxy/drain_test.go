package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/internal/rawclient"
)

// The app beside kproxy, in these tests, gets SIGTERM at the same moment
// as kproxy (a legacy sidecar: both containers are signalled together),
// keeps working for appLinger, then commits and leaves its group.
const (
	appLinger    = 3 * time.Second
	drainTimeout = 30 * time.Second
	seedRecords  = 10000
)

// drainEnv is a kfake cluster with a seeded input topic, and kproxy in
// its default shutdown mode in front of it.
type drainEnv struct {
	cluster *kfake.Cluster
	proxy   *kproxyProc
}

func newDrainEnv(t *testing.T) *drainEnv {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "in", "out"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	direct, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.DefaultProduceTopic("in"))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	records := make([]*kgo.Record, seedRecords)
	for i := range records {
		records[i] = &kgo.Record{Value: fmt.Appendf(nil, "in-%d", i)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := direct.ProduceSync(ctx, records...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	p := startKproxy(t, cluster.ListenAddrs()[0], "KPROXY_SHUTDOWN_TIMEOUT="+drainTimeout.String())
	return &drainEnv{cluster: cluster, proxy: p}
}

// processed is what the app has done: the offsets it processed, per
// partition of "in".
type processed struct {
	mu      sync.Mutex
	offsets map[int32][]int64
	n       int
	reached chan struct{} // closed once n >= at
	at      int
}

func newProcessed(at int) *processed {
	return &processed{offsets: map[int32][]int64{}, reached: make(chan struct{}), at: at}
}

func (p *processed) add(partition int32, offset int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.offsets[partition] = append(p.offsets[partition], offset)
	p.n++
	if p.n == p.at {
		close(p.reached)
	}
}

func (p *processed) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// stopTogether signals kproxy and the app at the same moment, then checks
// that /readyz turns 503 while the app is still at work and that kproxy
// still accepts and serves a new client connection meanwhile.
func (e *drainEnv) stopTogether(t *testing.T, appTerm chan struct{}, appDone <-chan struct{}) {
	t.Helper()
	e.proxy.signal(syscall.SIGTERM)
	close(appTerm)
	for deadline := time.Now().Add(appLinger / 2); readyStatus(t, e.proxy.admin) != http.StatusServiceUnavailable; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("/readyz not 503 after SIGTERM")
		}
	}
	c, err := rawclient.Dial(e.proxy.bootstrap)
	if err != nil {
		t.Fatalf("new connection refused while the app works: %v", err)
	}
	_ = c.Conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Send(kmsg.NewPtrApiVersionsRequest()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(); err != nil {
		t.Fatalf("new connection not served while the app works: %v", err)
	}
	c.Close()
	select {
	case <-appDone:
		t.Fatal("the app finished before the checks made while it lingers")
	default:
	}
}

// checkExit waits for kproxy's exit after the app closed its last
// connection at appClosed: status 0, after the quiet period, soon after.
func (e *drainEnv) checkExit(t *testing.T, appClosed time.Time) {
	t.Helper()
	exited := e.proxy.waitExit(t, drainTimeout)
	after := exited.Sub(appClosed)
	t.Logf("kproxy exited %v after the app's last connection closed", after.Round(time.Millisecond))
	const quiet = 2 * time.Second // the default shutdown_quiet_period
	if after < quiet {
		t.Errorf("kproxy exited %v after the app left, before the quiet period %v", after, quiet)
	}
	if after > quiet+5*time.Second {
		t.Errorf("kproxy exited %v after the app left; want about the quiet period %v", after, quiet)
	}
	if !strings.Contains(e.proxy.logs(), `"clients gone"`) {
		t.Error("the log does not say the clients left")
	}
}

// checkCommitted asserts that the group's committed offsets are exactly
// the ends of what the app processed, and that it processed each
// partition from its start without a gap.
func (e *drainEnv) checkCommitted(t *testing.T, group string, done *processed) {
	t.Helper()
	adm := kadm.NewClient(e.direct(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offsets, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	committed := map[int32]int64{}
	offsets.Each(func(o kadm.OffsetResponse) {
		if o.Err != nil {
			t.Errorf("offset %s/%d: %v", o.Topic, o.Partition, o.Err)
		}
		committed[o.Partition] = o.At
	})
	done.mu.Lock()
	defer done.mu.Unlock()
	var sum int64
	for p := range int32(3) {
		offs := append([]int64(nil), done.offsets[p]...)
		sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
		for i, o := range offs {
			if o != int64(i) {
				t.Fatalf("partition %d: processed offsets not 0..%d (at %d: %d)", p, len(offs)-1, i, o)
			}
		}
		want := int64(len(offs))
		if len(offs) == 0 {
			want = -1 // nothing processed, nothing committed
		}
		if got, ok := committed[p]; (ok && got != want) || (!ok && want != -1) {
			t.Errorf("partition %d: committed %d (present %v), processed %d records", p, got, ok, len(offs))
		}
		sum += int64(len(offs))
	}
	t.Logf("%s: processed and committed %d records", group, sum)
}

func (e *drainEnv) direct(t *testing.T) *kgo.Client {
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// waitNoClients waits until kproxy_client_connections is 0.
func waitNoClients(t *testing.T, admin string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		resp, err := http.Get("http://" + admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(body), "\nkproxy_client_connections 0\n") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("client connections still open")
		}
	}
}

func readyStatus(t *testing.T, admin string) int {
	resp, err := http.Get("http://" + admin + "/readyz")
	if err != nil {
		t.Fatalf("/readyz: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestSIGTERMWaitsForKgoApp: a kgo app that consumes in a group and
// produces, with kproxy a legacy sidecar. Both get SIGTERM; the app keeps
// working for appLinger, flushes its producer, commits, leaves the group
// and closes. Every processed record is committed, every produced record
// is in the topic exactly once, and kproxy exits 0 just after the quiet
// period that follows the app's last connection.
func TestSIGTERMWaitsForKgoApp(t *testing.T) {
	e := newDrainEnv(t)
	const group = "drain-kgo"
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(e.proxy.bootstrap),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics("in"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.DefaultProduceTopic("out"),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	done := newProcessed(100)
	var (
		produceMu sync.Mutex
		acked     = map[string]int{}
		failed    []error
		produced  int
	)
	appTerm, appDone := make(chan struct{}), make(chan struct{})
	var commitErr error
	var appClosed time.Time
	go func() {
		defer close(appDone)
		work, stopWork := context.WithCancel(context.Background())
		go func() { <-appTerm; time.AfterFunc(appLinger, stopWork) }()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for work.Err() == nil {
			fs := cl.PollRecords(work, 10)
			fs.EachRecord(func(r *kgo.Record) { done.add(r.Partition, r.Offset) })
			<-tick.C // the work a record batch takes
			produceMu.Lock()
			produced++
			value := fmt.Sprintf("out-%d", produced)
			produceMu.Unlock()
			cl.Produce(context.Background(), &kgo.Record{Value: []byte(value)}, func(r *kgo.Record, err error) {
				produceMu.Lock()
				defer produceMu.Unlock()
				if err != nil {
					failed = append(failed, err)
					return
				}
				acked[string(r.Value)]++
			})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := cl.Flush(ctx); err != nil {
			commitErr = fmt.Errorf("flush: %w", err)
		}
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			commitErr = fmt.Errorf("commit: %w", err)
		}
		cl.Close() // leaves the group
		appClosed = time.Now()
	}()
	select {
	case <-done.reached:
	case <-time.After(30 * time.Second):
		t.Fatalf("the app processed %d records in 30s", done.count())
	}
	before := done.count()
	e.stopTogether(t, appTerm, appDone)
	<-appDone
	if commitErr != nil {
		t.Fatal(commitErr)
	}
	e.checkExit(t, appClosed)
	if done.count() <= before {
		t.Errorf("the app processed nothing after SIGTERM (%d before)", before)
	}
	e.checkCommitted(t, group, done)

	produceMu.Lock()
	defer produceMu.Unlock()
	if len(failed) > 0 {
		t.Fatalf("%d of %d produces failed, first: %v", len(failed), produced, failed[0])
	}
	if len(acked) != produced {
		t.Fatalf("%d of %d produced records acknowledged", len(acked), produced)
	}
	inTopic := e.readAll(t, "out")
	for v, n := range inTopic {
		if n != 1 || acked[v] != 1 {
			t.Errorf("record %s: %d in the topic, acknowledged %d times", v, n, acked[v])
		}
	}
	if len(inTopic) != produced {
		t.Errorf("%d distinct records in the topic, %d produced", len(inTopic), produced)
	}
	t.Logf("produced %d records, each in the topic once", produced)
}

// readAll reads a topic directly from the cluster, counting each value.
func (e *drainEnv) readAll(t *testing.T, topic string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	adm := kadm.NewClient(e.direct(t))
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.cluster.ListenAddrs()...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	out := map[string]int{}
	for n := int64(0); n < total; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s", n, total, topic)
		}
		fs.EachRecord(func(r *kgo.Record) { out[string(r.Value)]++; n++ })
	}
	return out
}

// saramaApp is a sarama group member that processes each message (2 ms)
// and marks it; auto-commit is off, so Cleanup commits what was marked.
type saramaApp struct{ done *processed }

func (saramaApp) Setup(sarama.ConsumerGroupSession) error { return nil }
func (saramaApp) Cleanup(s sarama.ConsumerGroupSession) error {
	s.Commit()
	return nil
}

func (a saramaApp) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for {
		select {
		case msg, ok := <-c.Messages():
			if !ok {
				return nil
			}
			time.Sleep(2 * time.Millisecond) // the work a message takes
			a.done.add(msg.Partition, msg.Offset)
			s.MarkMessage(msg, "")
		case <-s.Context().Done():
			return nil
		}
	}
}

// TestSIGTERMWaitsForSaramaApp: the same stop with a sarama consumer
// group, whose single connection per broker carries its last commit and
// LeaveGroup.
func TestSIGTERMWaitsForSaramaApp(t *testing.T) {
	e := newDrainEnv(t)
	const group = "drain-sarama"
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	cfg.Consumer.Return.Errors = true
	cg, err := sarama.NewConsumerGroup([]string{e.proxy.bootstrap}, group, cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := newProcessed(100)
	appTerm, appDone := make(chan struct{}), make(chan struct{})
	var appErrs, groupErrs []error
	var appClosed time.Time
	groupErrsDone := make(chan struct{})
	go func() {
		defer close(groupErrsDone)
		for err := range cg.Errors() { // closed by cg.Close
			groupErrs = append(groupErrs, err)
		}
	}()
	go func() {
		defer close(appDone)
		work, stopWork := context.WithCancel(context.Background())
		go func() { <-appTerm; time.AfterFunc(appLinger, stopWork) }()
		for work.Err() == nil {
			if err := cg.Consume(work, []string{"in"}, saramaApp{done: done}); err != nil {
				appErrs = append(appErrs, err)
				break
			}
		}
		if err := cg.Close(); err != nil { // leaves the group
			appErrs = append(appErrs, err)
		}
		appClosed = time.Now()
	}()
	select {
	case <-done.reached:
	case <-time.After(30 * time.Second):
		t.Fatalf("the app processed %d records in 30s", done.count())
	}
	before := done.count()
	e.stopTogether(t, appTerm, appDone)
	<-appDone
	<-groupErrsDone
	if errs := append(appErrs, groupErrs...); len(errs) > 0 {
		t.Fatalf("the app failed: %v", errs)
	}
	e.checkExit(t, appClosed)
	if done.count() <= before {
		t.Errorf("the app processed nothing after SIGTERM (%d before)", before)
	}
	e.checkCommitted(t, group, done)
}

// TestSIGTERMWithoutClientsExitsAtOnce is the native sidecar: the app has
// exited before kproxy gets SIGTERM, so there is nothing to wait for, not
// even the quiet period.
func TestSIGTERMWithoutClientsExitsAtOnce(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	p := startKproxy(t, cluster.ListenAddrs()[0], "KPROXY_SHUTDOWN_TIMEOUT="+drainTimeout.String())
	waitNoClients(t, p.admin) // startKproxy's probe connection is gone
	sigterm := p.signal(syscall.SIGTERM)
	took := p.waitExit(t, drainTimeout).Sub(sigterm)
	t.Logf("exited %v after SIGTERM", took.Round(time.Millisecond))
	if quiet := 2 * time.Second; took >= quiet {
		t.Errorf("exited %v after SIGTERM with no client; want less than the quiet period %v", took, quiet)
	}
	if strings.Contains(p.logs(), "waiting for clients") {
		t.Error("waited for clients with none connected")
	}
}

// TestSecondSIGTERMEndsTheWait: a client that never leaves holds kproxy in
// the wait; a second SIGTERM ends it, and the idle session is closed at
// once.
func TestSecondSIGTERMEndsTheWait(t *testing.T) {
	p, c := kproxyWithIdleClient(t, drainTimeout, "KPROXY_SHUTDOWN_TIMEOUT="+drainTimeout.String())
	p.signal(syscall.SIGTERM)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(p.logs(), "waiting for clients to leave"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no wait for the connected client")
		}
	}
	if readyStatus(t, p.admin) != http.StatusServiceUnavailable {
		t.Fatal("/readyz not 503 while waiting for clients")
	}
	if !p.running() {
		t.Fatal("exited with a client connected")
	}
	second := p.signal(syscall.SIGTERM)
	took := p.waitExit(t, drainTimeout).Sub(second)
	t.Logf("exited %v after the second SIGTERM", took.Round(time.Millisecond))
	if took > drainTimeout/3 {
		t.Errorf("exited %v after the second SIGTERM", took)
	}
	if !strings.Contains(p.logs(), `"why":"stop requested"`) {
		t.Error("the log does not say why the wait ended")
	}
	if _, err := c.Read(); err == nil {
		t.Error("the session outlived kproxy")
	}
}

// TestShutdownTimeoutEndsTheWait: a client that never leaves holds kproxy
// in the wait until shutdown_timeout less the part kept for requests in
// flight; kproxy then closes the idle session and exits 0 within
// shutdown_timeout.
func TestShutdownTimeoutEndsTheWait(t *testing.T) {
	const timeout = 3 * time.Second
	p, _ := kproxyWithIdleClient(t, 2*timeout, "KPROXY_SHUTDOWN_TIMEOUT="+timeout.String(), "KPROXY_SHUTDOWN_QUIET_PERIOD=500ms")
	sigterm := p.signal(syscall.SIGTERM)
	took := p.waitExit(t, 2*timeout).Sub(sigterm)
	t.Logf("exited %v after SIGTERM", took.Round(time.Millisecond))
	// The wait ends at 2s (3s less a third kept for requests in flight);
	// the second of slack is for the process's exit, seen from here.
	if took > timeout+time.Second {
		t.Errorf("exited %v after SIGTERM, past shutdown_timeout %v", took, timeout)
	}
	if !strings.Contains(p.logs(), `"why":"shutdown_timeout"`) {
		t.Error("the log does not say the wait timed out")
	}
}

// kproxyWithIdleClient runs kproxy (with env) in front of a one-broker
// cluster and opens a client session that stays connected, idle, after one
// ApiVersions round trip; the client's reads end after timeout.
func kproxyWithIdleClient(t *testing.T, timeout time.Duration, env ...string) (*kproxyProc, *rawclient.Conn) {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	p := startKproxy(t, cluster.ListenAddrs()[0], env...)
	c, err := rawclient.Dial(p.bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.Conn.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Send(kmsg.NewPtrApiVersionsRequest()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(); err != nil { // the session is open
		t.Fatal(err)
	}
	return p, c
}
