package listener_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/kproxy/kproxy/internal/listener"
	"github.com/kproxy/kproxy/internal/loopback"
	"github.com/kproxy/kproxy/internal/metrics"
	"github.com/kproxy/kproxy/internal/rawclient"
)

// answeringStub is an upstream that answers every request frame with an
// empty body carrying its correlation id, whatever the request, acks=0
// produces included (as some non-Kafka servers do).
func answeringStub(tb testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	tb.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				var hdr [12]byte
				for {
					if _, err := io.ReadFull(conn, hdr[:]); err != nil {
						return
					}
					size := int64(binary.BigEndian.Uint32(hdr[:4]))
					if _, err := io.CopyN(io.Discard, conn, size-8); err != nil {
						return
					}
					answer := binary.BigEndian.AppendUint32(nil, 4)
					if _, err := conn.Write(append(answer, hdr[8:12]...)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// sessionSeeds are pipelined request frames a client might send: every API
// at every version kmsg knows, a few requests per input, plus the bad-input
// shapes the session must refuse.
func sessionSeeds() [][]byte {
	var seeds [][]byte
	var batch []byte
	n := 0
	for key := range int16(128) {
		req := kmsg.RequestForKey(key)
		if req == nil {
			continue
		}
		for v := range req.MaxVersion() + 1 {
			req.SetVersion(v)
			if p, ok := req.(*kmsg.ProduceRequest); ok {
				p.Acks = int16(v%3) - 1 // -1, 0, 1
			}
			batch = append(batch, rawclient.EncodeRequest(req, int32(n), "fuzz")...)
			if n++; n%4 == 0 {
				seeds, batch = append(seeds, batch), nil
			}
		}
	}
	return append(seeds, batch,
		[]byte{0x16, 0x03, 0x01, 0x02, 0x00},
		[]byte("GET / HTTP/1.1\r\n\r\n"),
		[]byte{0xff, 0xff, 0xff, 0xf0},
		[]byte{0, 0, 0, 4, 0, 18, 0, 3},
		[]byte{0x7f, 0, 0, 0},
	)
}

// FuzzSession feeds arbitrary client bytes to a live session whose
// upstream answers everything: the proxy must never panic, and the session
// must end once the client hangs up — answered, refused or closed, never
// stuck.
func FuzzSession(f *testing.F) {
	for _, s := range sessionSeeds() {
		f.Add(s)
	}
	cfg := loopback.Config([]string{answeringStub(f)})
	cfg.Limits.MaxInflightPerConnection = 4
	cfg.Limits.MaxFrameBytes = 1 << 20
	cfg.Limits.UpstreamAnswerGrace = 200 * time.Millisecond
	m := metrics.NewNop()
	srv, err := listener.New(cfg, zap.NewNop(), m)
	if err != nil {
		f.Fatal(err)
	}
	srv.WatchStallsForTest()
	f.Cleanup(func() { _ = srv.Shutdown(context.Background()) })

	f.Fuzz(func(t *testing.T, in []byte) {
		client, proxySide := net.Pipe()
		srv.ServeForTest(proxySide)
		read := make(chan struct{})
		go func() {
			defer close(read)
			_, _ = io.Copy(io.Discard, client) // answers, until the session closes
		}()
		_ = client.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, err := client.Write(in)
		if err != nil && !errors.Is(err, io.ErrClosedPipe) {
			t.Fatalf("session stopped reading without closing: %v", err)
		}
		client.Close()
		select {
		case <-read:
		case <-time.After(5 * time.Second):
			t.Fatal("session did not end after the client hung up")
		}
		deadline := time.Now().Add(5 * time.Second)
		for testutil.ToFloat64(m.ClientConnections) != 0 {
			if time.Now().After(deadline) {
				t.Fatal("session still counted after the client hung up")
			}
			time.Sleep(time.Millisecond)
		}
	})
}
