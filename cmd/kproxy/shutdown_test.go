package main

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/internal/rawclient"
)

// TestSIGTERMAnswersInFlightThenExits builds and runs the real binary,
// sends SIGTERM while produce requests are held by the broker, and checks
// that every one is answered, new connections are refused at once, and the
// process exits 0 within shutdown_timeout.
func TestSIGTERMAnswersInFlightThenExits(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "kproxy")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
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

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bootstrap := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "run")
	cmd.Env = append(os.Environ(),
		"KPROXY_UPSTREAM_BOOTSTRAP_SERVERS="+cluster.ListenAddrs()[0],
		"KPROXY_LISTEN_BOOTSTRAP="+bootstrap,
		"KPROXY_LISTEN_BROKER_PORT_BASE=0",
		"KPROXY_ADMIN_LISTEN=127.0.0.1:0",
		"KPROXY_SHUTDOWN_TIMEOUT="+shutdownTimeout.String(),
	)
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	waitServing(t, bootstrap)

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

	sigterm := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
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
			t.Fatalf("in-flight produce %d not answered: %v\n%s", i, err, logs.String())
		}
		p := resp.Msg.(*kmsg.ProduceResponse)
		if code := p.Topics[0].Partitions[0].ErrorCode; code != 0 {
			t.Fatalf("produce %d answered with error code %d", i, code)
		}
	}
	select {
	case <-exited:
		if exitErr != nil {
			t.Fatalf("exit: %v\n%s", exitErr, logs.String())
		}
	case <-time.After(shutdownTimeout + 5*time.Second):
		t.Fatalf("still running %v after SIGTERM", time.Since(sigterm))
	}
	if took := time.Since(sigterm); took > shutdownTimeout {
		t.Fatalf("exited %v after SIGTERM, past shutdown_timeout %v", took, shutdownTimeout)
	}
	if !bytes.Contains(logs.Bytes(), []byte("kproxy stopped")) {
		t.Fatalf("no clean stop in the log:\n%s", logs.String())
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
