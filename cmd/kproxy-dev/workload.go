package main

// The --workload of `kproxy-dev demo`: a legacy single-socket client that sends a
// long-poll Fetch with a Heartbeat right behind it on one connection, round
// after round, once straight to the broker and once through kproxy, and a
// report of the heartbeat's latency on both paths every second.

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/listener"
	"github.com/kproxy/kproxy/internal/rawclient"
)

// workloadTopic has one partition that nobody produces to, so every Fetch
// on it waits its full MaxWaitMillis.
const workloadTopic = "kproxy-demo-workload"

type workloadOptions struct {
	FetchWait   time.Duration // the Fetch's long poll
	ReportEvery time.Duration
	Ordering    string // routing.ordering, to explain the answer column
}

// workload runs the legacy client on both paths and reports.
type workload struct {
	opts   workloadOptions
	leader int32
	paths  []*workloadPath // direct, kproxy
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// workloadPath is one connection of the legacy client and what it measured.
type workloadPath struct {
	name  string
	addr  string
	group string // the Heartbeat's group: tells the broker-side hook which path it came on

	mu        sync.Mutex
	cur       round // the round in progress
	last      round // the last completed round
	completed int
	err       error
}

// round is one Fetch + Heartbeat exchange; zero times have not happened.
type round struct {
	start         time.Time
	hbAtBroker    time.Time // the broker began processing the Heartbeat
	hbAnswered    time.Time // the client read the Heartbeat's answer
	fetchAnswered time.Time // the client read the Fetch's answer
}

// newWorkload targets the leader of the workload topic, directly and
// through srv, and hooks the cluster to see when a heartbeat reaches it.
func newWorkload(cluster *kfake.Cluster, srv *listener.Server, o workloadOptions) (*workload, error) {
	leader := cluster.LeaderFor(workloadTopic, 0)
	upstream := cluster.ListenAddrs()
	proxied, ok := srv.BrokerAddrs()[leader]
	if leader < 0 || int(leader) >= len(upstream) || !ok {
		return nil, fmt.Errorf("workload: no address for broker %d, the leader of %s", leader, workloadTopic)
	}
	w := &workload{
		opts:   o,
		leader: leader,
		paths: []*workloadPath{
			{name: "direct", addr: upstream[leader], group: "kproxy-demo-direct"},
			{name: "kproxy", addr: proxied, group: "kproxy-demo-proxied"},
		},
	}
	// Observe only: the broker answers the heartbeat as usual.
	cluster.ControlKey(int16(kmsg.Heartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		if hb, ok := req.(*kmsg.HeartbeatRequest); ok {
			w.heartbeatAtBroker(hb.Group, time.Now())
		}
		return nil, nil, false
	})
	return w, nil
}

func (w *workload) heartbeatAtBroker(group string, at time.Time) {
	for _, p := range w.paths {
		if p.group == group {
			p.mu.Lock()
			if p.cur.hbAtBroker.IsZero() {
				p.cur.hbAtBroker = at
			}
			p.mu.Unlock()
		}
	}
}

// Start runs both paths and the report until ctx ends or Stop.
func (w *workload) Start(ctx context.Context, out io.Writer) {
	ctx, w.cancel = context.WithCancel(ctx)
	w.header(out)
	for _, p := range w.paths {
		w.wg.Go(func() {
			if err := p.run(ctx, w.opts.FetchWait); err != nil && ctx.Err() == nil {
				p.mu.Lock()
				p.err = err
				p.mu.Unlock()
			}
		})
	}
	w.wg.Go(func() { w.report(ctx, out) })
}

// Stop ends the workload and waits for it.
func (w *workload) Stop() {
	if w.cancel != nil {
		w.cancel()
	}
	w.wg.Wait()
}

func (w *workload) header(out io.Writer) {
	d, k := w.paths[0], w.paths[1]
	fmt.Fprintf(out, "\nWorkload: a legacy client sends, on one connection, a Fetch that long-polls %v\n", w.opts.FetchWait)
	fmt.Fprintf(out, "and a Heartbeat right behind it, round after round, to broker %d:\n", w.leader)
	fmt.Fprintf(out, "  direct  straight to the broker at %s\n", d.addr)
	fmt.Fprintf(out, "  kproxy  through kproxy at %s\n", k.addr)
	fmt.Fprintf(out, "\"at broker\": when the broker began processing the heartbeat; \"answer\": when the\n")
	fmt.Fprintf(out, "client read its answer (… = still waiting). A consumer's session expires when\n")
	fmt.Fprintf(out, "heartbeats reach the broker too late.\n")
	if w.opts.Ordering == config.OrderingStrict {
		fmt.Fprintf(out, "routing.ordering is strict: kproxy writes answers in request order, so the\n")
		fmt.Fprintf(out, "heartbeat's answer still follows the fetch's; the broker processed it at once.\n")
	}
	fmt.Fprintln(out)
}

// report prints one line per interval: for each path the round that
// completed since the last line, else the round in progress.
func (w *workload) report(ctx context.Context, out io.Writer) {
	start := time.Now()
	shown := make([]int, len(w.paths))
	t := time.NewTicker(w.opts.ReportEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			cells := make([]string, len(w.paths))
			for i, p := range w.paths {
				cells[i] = p.cell(now, &shown[i])
			}
			line := fmt.Sprintf("%6s  %s", now.Sub(start).Round(w.opts.ReportEvery), strings.Join(cells, "  |  "))
			fmt.Fprintln(out, strings.TrimRight(line, " "))
		}
	}
}

// cell renders a path's state for one report line.
func (p *workloadPath) cell(now time.Time, shown *int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return fmt.Sprintf("%s  stopped: %v", p.name, p.err)
	}
	r := p.cur
	if p.completed > *shown {
		r = p.last
		*shown = p.completed
	}
	if r.start.IsZero() {
		return fmt.Sprintf("%s  connecting", p.name)
	}
	return fmt.Sprintf("%s  at broker %-7s  answer %-7s", p.name, since(r.start, r.hbAtBroker, now), since(r.start, r.hbAnswered, now))
}

// since formats how long after start an event happened, or for how long it
// has been awaited.
func since(start, at, now time.Time) string {
	if at.IsZero() {
		return fmt.Sprintf("…%.1fs", now.Sub(start).Seconds())
	}
	d := at.Sub(start)
	switch {
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

// run sends Fetch + Heartbeat rounds on one connection until ctx ends.
func (p *workloadPath) run(ctx context.Context, fetchWait time.Duration) error {
	c, err := rawclient.Dial(p.addr)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.Close() }) // unblocks a read
	defer stop()
	c.ClientID = "legacy-single-socket-client"
	for ctx.Err() == nil {
		p.mu.Lock()
		p.cur = round{start: time.Now()}
		p.mu.Unlock()
		if err := p.exchange(c, fetchWait); err != nil {
			return err
		}
		p.mu.Lock()
		p.last, p.cur = p.cur, round{}
		p.completed++
		p.mu.Unlock()
	}
	return nil
}

// exchange pipelines a long-poll Fetch and a Heartbeat and reads both
// answers, in whichever order they come.
func (p *workloadPath) exchange(c *rawclient.Conn, fetchWait time.Duration) error {
	_ = c.Conn.SetDeadline(time.Now().Add(fetchWait + 30*time.Second))
	if _, err := c.Send(rawclient.FetchRequest(workloadTopic, 0, fetchWait)); err != nil {
		return err
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.SetVersion(4)
	// No such group: its answer is an error code, and its latency the point.
	hb.Group, hb.MemberID, hb.Generation = p.group, "legacy-member", 1
	if _, err := c.Send(hb); err != nil {
		return err
	}
	for range 2 {
		resp, err := c.Read()
		if err != nil {
			return err
		}
		p.mu.Lock()
		switch resp.Msg.(type) {
		case *kmsg.FetchResponse:
			p.cur.fetchAnswered = resp.At
		case *kmsg.HeartbeatResponse:
			p.cur.hbAnswered = resp.At
		}
		p.mu.Unlock()
	}
	return nil
}

// lastRound returns the last completed round and how many completed.
func (p *workloadPath) lastRound() (round, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last, p.completed
}
