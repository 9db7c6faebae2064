package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/internal/rawclient"
)

// TestSIGTERMAnswersInFlightThenExits builds and runs the real binary with
// shutdown_mode stop_accepting, sends SIGTERM while produce requests are
// held by the broker, and checks that every one is answered, new
// connections are refused at once, and the process exits 0 within
// shutdown_timeout.
func TestSIGTERMAnswersInFlightThenExits(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	const inflight, hold, shutdownTimeout = 5, 1500 * time.Millisecond, 10 * time.Second
	var held atomic.Int32
	cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		held.Add(1)
		cluster.SleepControl(func() { time.Sleep(hold) })
		return nil, nil, false
	})

	p := startKproxy(t, cluster.ListenAddrs()[0],
		"KPROXY_SHUTDOWN_TIMEOUT="+shutdownTimeout.String(),
		"KPROXY_SHUTDOWN_MODE=stop_accepting",
	)
	bootstrap := p.bootstrap

	conns := make([]*rawclient.Conn, inflight)
	for i := range conns {
		c, err := rawclient.Dial(bootstrap)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.Conn.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Send(rawclient.ProduceRequest("t", 0, 1, []byte("in-flight-"+strconv.Itoa(i)))); err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	for deadline := time.Now().Add(10 * time.Second); held.Load() < inflight; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("broker holds %d of %d produces", held.Load(), inflight)
		}
	}

	sigterm := p.signal(syscall.SIGTERM)
	// New connections are refused at once, while the produces are held.
	for {
		c, err := net.DialTimeout("tcp", bootstrap, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Since(sigterm) > hold/2 {
			t.Fatalf("still accepting %v after SIGTERM", time.Since(sigterm))
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i, c := range conns {
		resp, err := c.Read()
		if err != nil {
			t.Fatalf("in-flight produce %d not answered: %v\n%s", i, err, p.logs())
		}
		p := resp.Msg.(*kmsg.ProduceResponse)
		if code := p.Topics[0].Partitions[0].ErrorCode; code != 0 {
			t.Fatalf("produce %d answered with error code %d", i, code)
		}
	}
	exitedAt := p.waitExit(t, shutdownTimeout+5*time.Second)
	if took := exitedAt.Sub(sigterm); took > shutdownTimeout {
		t.Fatalf("exited %v after SIGTERM, past shutdown_timeout %v", took, shutdownTimeout)
	}
}

// waitServing waits until the proxy answers an ApiVersions request.
func waitServing(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := func() error {
			c, err := rawclient.Dial(addr)
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.Conn.SetDeadline(time.Now().Add(2 * time.Second))
			if _, err := c.Send(kmsg.NewPtrApiVersionsRequest()); err != nil {
				return err
			}
			_, err = c.Read()
			return err
		}()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(errors.Join(errors.New("proxy never served"), err))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var (
	buildOnce sync.Once
	builtDir  string
	builtBin  string
	buildErr  error
)

// removeBinary deletes the binary kproxyBinary built, if any (TestMain).
func removeBinary() {
	if builtDir != "" {
		_ = os.RemoveAll(builtDir)
	}
}

// kproxyBinary builds the command once per test run.
func kproxyBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kproxy-bin")
		if err != nil {
			buildErr = err
			return
		}
		builtDir = dir
		builtBin = filepath.Join(dir, "kproxy")
		if out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// kproxyProc is the built binary running in a child process.
type kproxyProc struct {
	cmd       *exec.Cmd
	bootstrap string
	admin     string
	out       lockedBuffer
	exited    chan struct{}
	exitErr   error
	exitedAt  time.Time
}

// startKproxy runs the binary against the upstream seed, with extra
// KPROXY_* settings, and waits until it serves.
func startKproxy(t *testing.T, upstream string, env ...string) *kproxyProc {
	t.Helper()
	return startKproxyArgs(t, upstream, []string{"run"}, env...)
}

// startKproxyArgs is startKproxy with the command's arguments.
func startKproxyArgs(t *testing.T, upstream string, args []string, env ...string) *kproxyProc {
	t.Helper()
	bin := kproxyBinary(t)
	p := &kproxyProc{bootstrap: freeAddr(t), admin: freeAddr(t), exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(),
		"KPROXY_UPSTREAM_BOOTSTRAP_SERVERS="+upstream,
		"KPROXY_LISTEN_BOOTSTRAP="+p.bootstrap,
		"KPROXY_LISTEN_BROKER_PORT_BASE=0",
		"KPROXY_ADMIN_LISTEN="+p.admin,
	)
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stderr = &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.exitErr = p.cmd.Wait()
		p.exitedAt = time.Now()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("kproxy log:\n%s", p.logs())
		}
	})
	waitServing(t, p.bootstrap)
	return p
}

func (p *kproxyProc) signal(sig os.Signal) time.Time {
	at := time.Now()
	if err := p.cmd.Process.Signal(sig); err != nil {
		panic(err)
	}
	return at
}

func (p *kproxyProc) logs() string { return p.out.String() }

// waitExit waits for the process to end, fails the test unless it ended
// with status 0 after a clean stop, and returns when it ended.
func (p *kproxyProc) waitExit(t *testing.T, within time.Duration) time.Time {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(within):
		t.Fatalf("kproxy still running after %v", within)
	}
	if p.exitErr != nil {
		t.Fatalf("kproxy exit: %v", p.exitErr)
	}
	if !strings.Contains(p.logs(), "kproxy stopped") {
		t.Fatal("no clean stop in the log")
	}
	return p.exitedAt
}

func (p *kproxyProc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
