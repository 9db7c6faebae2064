// Command hostile runs the hostile-client cases of the README's Reliability
// section against a kproxy binary and prints, per case, the kproxy
// process's peak RSS (VmHWM), what the clients saw and how kproxy closed
// their sessions. Each case gets a fresh kproxy, in front of an in-process
// kfake cluster. Linux only (it reads /proc).
//
//	go build -o /tmp/kproxy ./cmd/kproxy
//	go run ./test/hostile -kproxy /tmp/kproxy
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/internal/proxytest/kafka4"
	"github.com/kproxy/kproxy/internal/rawclient"
)

type result struct {
	saw    string
	peak   int64 // KiB
	closes []string
}

type hostileCase struct {
	name, what string
	kfake      []kfake.Opt
	run        func(c *kfake.Cluster, addr string) string
	env        []string // kproxy's configuration beyond the defaults
}

func main() {
	bin := flag.String("kproxy", "", "kproxy binary to measure (required)")
	only := flag.String("case", "", "run only this case: declared, hoard, produce, inflate or preauth")
	flag.Parse()
	if *bin == "" {
		flag.Usage()
		os.Exit(2)
	}
	cases := []hostileCase{
		{"declared", "20 connections x 3 rounds: a 100 MB size prefix and an 8-byte header, held 2s",
			[]kfake.Opt{kfake.SeedTopics(1, "t")}, declaredSizes, nil},
		{"hoard", "5 connections: a 15s long-poll Fetch, then 255 all-topics Metadata (20,000 partitions, ~520 KB answers), nothing read for 10s",
			[]kfake.Opt{kfake.SeedTopics(1, "t"), kfake.SeedTopics(20000, "wide")}, hoardAnswers, nil},
		{"produce", "2 connections each pipelining 256 Produce requests of 1 MiB to a broker taking 30ms per request",
			[]kfake.Opt{kfake.SeedTopics(1, "t")}, largeProduces, nil},
		{"inflate", "32 connections x 3 rounds: a legacy Produce v2 of 66 KB whose gzip wrapper inflates to 64 MiB, to a broker refusing Produce v2 (Kafka 4), so kproxy bridges it",
			[]kfake.Opt{kfake.SeedTopics(1, "t")}, inflatingProduces, nil},
		{"preauth", "listen.sasl.mode terminate; 20 connections declare a 100 MB SaslAuthenticate and send 30 MiB of it, never authenticating, while an authenticated neighbour times Metadata round trips",
			[]kfake.Opt{kfake.SeedTopics(1, "t")}, unauthenticatedFrames,
			[]string{"KPROXY_LISTEN_SASL_MODE=terminate", "KPROXY_LISTEN_SASL_USERS=app=env:HOSTILE_APP_PASSWORD", "HOSTILE_APP_PASSWORD=" + appPassword}},
	}
	for _, c := range cases {
		if *only != "" && c.name != *only {
			continue
		}
		r, err := measure(*bin, c)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", c.name, err)
			os.Exit(1)
		}
		fmt.Printf("%s: %s\n  peak RSS %d MiB\n  clients saw: %s\n  session closes: %s\n", c.name, c.what, r.peak>>10, r.saw, strings.Join(r.closes, ", "))
	}
}

// measure runs one case against a fresh kproxy.
func measure(bin string, hc hostileCase) (result, error) {
	cluster, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, hc.kfake...)...)
	if err != nil {
		return result{}, err
	}
	defer cluster.Close()
	addr, admin := freeAddr(), freeAddr()
	cmd := exec.Command(bin, "run")
	cmd.Env = append(os.Environ(),
		"KPROXY_UPSTREAM_BOOTSTRAP_SERVERS="+cluster.ListenAddrs()[0],
		"KPROXY_LISTEN_BOOTSTRAP="+addr,
		"KPROXY_LISTEN_BROKER_PORT_BASE=0",
		"KPROXY_ADMIN_LISTEN="+admin,
		"KPROXY_LOG_LEVEL=error",
	)
	cmd.Env = append(cmd.Env, hc.env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	if err := waitReady(admin); err != nil {
		return result{}, err
	}
	saw := hc.run(cluster, addr)
	peak, err := peakRSS(cmd.Process.Pid)
	if err != nil {
		return result{}, err
	}
	return result{saw: saw, peak: peak, closes: sessionCloses(admin)}, nil
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitReady(admin string) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + admin + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("kproxy not ready within 20s")
}

// peakRSS is the process's resident-set high-water mark, in KiB.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			_, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kb)
			return kb, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// sessionCloses scrapes kproxy_session_closes_total by reason.
func sessionCloses(admin string) []string {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return []string{err.Error()}
	}
	defer resp.Body.Close()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "kproxy_session_closes_total{reason=\""); ok {
			reason, n, _ := strings.Cut(rest, "\"} ")
			out = append(out, reason+" "+n)
		}
	}
	slices.Sort(out)
	return out
}

// declaredSizes: case 1.
func declaredSizes(_ *kfake.Cluster, addr string) string {
	closedEarly := 0
	for range 3 {
		var conns []net.Conn
		for range 20 {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return err.Error()
			}
			frame := binary.BigEndian.AppendUint32(nil, 100_000_000)
			frame = binary.BigEndian.AppendUint16(frame, uint16(kmsg.ApiVersions))
			frame = append(frame, 0, 0, 0, 0, 0, 1)
			_, _ = c.Write(frame)
			conns = append(conns, c)
		}
		time.Sleep(2 * time.Second) // the connections sit there; kproxy shows what it allocated
		for _, c := range conns {
			_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
			if _, err := c.Read(make([]byte, 1)); err == io.EOF {
				closedEarly++
			}
			c.Close()
		}
	}
	return fmt.Sprintf("60 connections held open with nothing answered; %d closed by kproxy before the client closed them", closedEarly)
}

// hoardAnswers: case 2, with a neighbour timing its round trips meanwhile.
func hoardAnswers(_ *kfake.Cluster, addr string) string {
	const conns, metas = 5, 255
	var cs []*rawclient.Conn
	for range conns {
		c, err := rawclient.Dial(addr)
		if err != nil {
			return err.Error()
		}
		defer c.Close()
		fetch := rawclient.FetchRequest("t", 0, 15*time.Second)
		if _, err := c.Send(fetch); err != nil {
			return err.Error()
		}
		cs = append(cs, c)
	}
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() { // kproxy may stop reading a hoarder: write from the side
			defer wg.Done()
			for i := range metas {
				req := kmsg.NewPtrMetadataRequest()
				req.SetVersion(12) // a null topic list: every topic
				if _, err := c.Conn.Write(rawclient.EncodeRequest(req, int32(i+2), "hoarder")); err != nil {
					return
				}
			}
		}()
	}
	neighbour, err := rawclient.Dial(addr)
	if err != nil {
		return err.Error()
	}
	defer neighbour.Close()
	start := time.Now()
	trips, err := roundTrips(neighbour, 10*time.Second)
	if err != nil {
		return "neighbour: " + err.Error()
	}
	got, bad := 0, 0
	for _, c := range cs {
		_ = c.Conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
		for want := int32(1); want <= metas+1; want++ {
			b, err := readFrame(c.Conn)
			if err != nil {
				bad++
				break
			}
			if int32(binary.BigEndian.Uint32(b)) != want {
				bad++
			}
			got++
		}
	}
	wg.Wait()
	return fmt.Sprintf("%d of %d answers, %d out of order or missing, in %v; a neighbour's %d Metadata round trips meanwhile: median %v, max %v",
		got, conns*(metas+1), bad, time.Since(start).Round(time.Second), len(trips), trips[len(trips)/2].Round(time.Microsecond), trips[len(trips)-1].Round(time.Microsecond))
}

// largeProduces: case 9.
func largeProduces(cluster *kfake.Cluster, addr string) string {
	cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		cluster.SleepControl(func() { time.Sleep(30 * time.Millisecond) })
		return nil, nil, false
	})
	const conns, produces = 2, 256
	value := make([]byte, 1<<20)
	start := time.Now()
	var wg sync.WaitGroup
	answered := make([]int, conns)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err.Error()
		}
		defer c.Close()
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := range produces {
				if _, err := c.Write(rawclient.EncodeRequest(rawclient.ProduceRequest("t", 0, 1, value), int32(j), "producer")); err != nil {
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range produces {
				if _, err := readFrame(c); err != nil {
					return
				}
				answered[i]++
			}
		}()
	}
	wg.Wait()
	return fmt.Sprintf("%d of %d produces answered in %v", answered[0]+answered[1], conns*produces, time.Since(start).Round(time.Second))
}

// inflatingProduces: case 4.
func inflatingProduces(cluster *kfake.Cluster, addr string) string {
	if _, err := kafka4.Floors(cluster); err != nil {
		return err.Error()
	}
	set := rawclient.GzipMessageSet(64, 1<<20)
	const conns, rounds = 32, 3
	start := time.Now()
	var answered atomic.Int32
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			defer c.Close()
			for j := range rounds {
				if _, err := c.Write(rawclient.EncodeRequest(rawclient.LegacyProduceRequest("t", 0, set), int32(j), "legacy")); err != nil {
					return
				}
				_ = c.SetReadDeadline(time.Now().Add(120 * time.Second))
				if _, err := readFrame(c); err != nil {
					return
				}
				answered.Add(1)
			}
		})
	}
	wg.Wait()
	return fmt.Sprintf("%d of %d produces answered in %v", answered.Load(), conns*rounds, time.Since(start).Round(time.Second))
}

// roundTrips times a Metadata request for the topic t every 100ms for d,
// one at a time, and returns the round trips sorted.
func roundTrips(c *rawclient.Conn, d time.Duration) ([]time.Duration, error) {
	var trips []time.Duration
	for start := time.Now(); time.Since(start) < d; {
		req := kmsg.NewPtrMetadataRequest()
		req.SetVersion(12)
		req.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("t")}}
		t0 := time.Now()
		_ = c.Conn.SetDeadline(t0.Add(time.Minute))
		if _, err := c.Send(req); err != nil {
			return nil, err
		}
		if _, err := c.Read(); err != nil {
			return nil, err
		}
		trips = append(trips, time.Since(t0))
		time.Sleep(100 * time.Millisecond)
	}
	slices.Sort(trips)
	return trips, nil
}

func readFrame(c net.Conn) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(size[:]))
	_, err := io.ReadFull(c, b)
	return b, err
}

const appPassword = "app-secret"

// unauthenticatedFrames: case 5. A broker reads at most 512 KiB of a frame
// before SASL authentication (sasl.server.max.receive.size).
func unauthenticatedFrames(_ *kfake.Cluster, addr string) string {
	const conns, sent = 20, 30 << 20
	var attackers sync.WaitGroup
	var closed atomic.Int32
	stop := make(chan struct{})
	for range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err.Error()
		}
		defer c.Close()
		attackers.Go(func() {
			head := binary.BigEndian.AppendUint32(nil, 100_000_000)
			head = binary.BigEndian.AppendUint16(head, uint16(kmsg.SASLAuthenticate))
			head = append(head, 0, 1, 0, 0, 0, 1, 0xff, 0xff)
			chunk := make([]byte, 64<<10)
			_, err := c.Write(head)
			for n := 0; err == nil && n < sent; n += len(chunk) {
				_, err = c.Write(chunk)
			}
			if err != nil {
				closed.Add(1)
			}
			<-stop
		})
	}
	neighbour, err := rawclient.Dial(addr)
	if err != nil {
		return err.Error()
	}
	defer neighbour.Close()
	if err := authenticate(neighbour); err != nil {
		return "neighbour: " + err.Error()
	}
	trips, err := roundTrips(neighbour, 10*time.Second)
	if err != nil {
		return "neighbour: " + err.Error()
	}
	close(stop)
	attackers.Wait()
	return fmt.Sprintf("%d of %d unauthenticated connections closed by kproxy while sending; the neighbour's %d Metadata round trips: median %v, max %v",
		closed.Load(), conns, len(trips), trips[len(trips)/2].Round(time.Microsecond), trips[len(trips)-1].Round(time.Microsecond))
}

// authenticate runs SASL PLAIN as the user app on c.
func authenticate(c *rawclient.Conn) error {
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version = 1
	hs.Mechanism = "PLAIN"
	if _, err := c.Send(hs); err != nil {
		return err
	}
	if _, err := c.Read(); err != nil {
		return err
	}
	auth := kmsg.NewPtrSASLAuthenticateRequest()
	auth.SASLAuthBytes = []byte("\x00app\x00" + appPassword)
	if _, err := c.Send(auth); err != nil {
		return err
	}
	resp, err := c.Read()
	if err != nil {
		return err
	}
	if code := resp.Msg.(*kmsg.SASLAuthenticateResponse).ErrorCode; code != 0 {
		return fmt.Errorf("SaslAuthenticate: error %d", code)
	}
	return nil
}
