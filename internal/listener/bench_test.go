package listener_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/kproxy/kproxy/internal/listener"
	"github.com/kproxy/kproxy/internal/loopback"
	"github.com/kproxy/kproxy/internal/metrics"
	"github.com/kproxy/kproxy/internal/rawclient"
)

// echoBroker answers every request with a frame of respSize bytes carrying
// the request's correlation id, from preallocated buffers. kfake allocates
// per request, which would drown the proxy's own allocations in allocs/op,
// so the forwarding benchmarks use this instead (kfake serves everywhere
// else). It answers Metadata with a cluster of no brokers, so the proxy is
// ready (it refuses clients until discovery succeeds) and bootstrap
// sessions need nothing else.
func echoBroker(b *testing.B, respSize int) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go echo(c, respSize, ln.Addr().(*net.TCPAddr))
		}
	}()
	return ln.Addr().String()
}

func echo(c net.Conn, respSize int, self *net.TCPAddr) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 64<<10)
	resp := make([]byte, respSize)
	binary.BigEndian.PutUint32(resp, uint32(respSize-4))
	req := make([]byte, 64<<10)
	for {
		if _, err := io.ReadFull(br, req[:12]); err != nil {
			return
		}
		size := int(binary.BigEndian.Uint32(req))
		for rest := size - 8; rest > 0; { // a large request's body is read and dropped
			n := min(rest, len(req)-12)
			if _, err := io.ReadFull(br, req[12:12+n]); err != nil {
				return
			}
			rest -= n
		}
		if binary.BigEndian.Uint16(req[4:]) == 3 { // the proxy's discovery
			if _, err := c.Write(selfMetadata(req, self)); err != nil {
				return
			}
			continue
		}
		copy(resp[4:8], req[8:12])
		if _, err := c.Write(resp); err != nil {
			return
		}
	}
}

// startProxy runs kproxy in front of upstream; sessions on its bootstrap
// port forward to it without needing broker discovery.
func startProxy(b *testing.B, upstream string) string {
	cfg := loopback.Config([]string{upstream})
	srv, err := listener.New(cfg, zap.NewNop(), metrics.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv.BootstrapAddr()
}

// benchForward sends a Heartbeat-shaped request (forwarded as an opaque
// frame on the coordination lane) depth at a time over one client socket
// and reads every answer: b.N counts forwarded frames, allocs/op is the
// whole process's allocations per frame (client and echo broker allocate
// nothing per frame).
func benchForward(b *testing.B, respSize, depth int) {
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.Generation, hb.MemberID = "bench", 1, "member"
	benchForwardRequest(b, rawclient.EncodeRequest(hb, 0, "bench"), respSize, depth)
}

// benchForwardRequest is benchForward with the request frame one.
func benchForwardRequest(b *testing.B, one []byte, respSize, depth int) {
	addr := startProxy(b, echoBroker(b, respSize))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	batch := make([]byte, 0, depth*len(one))
	for range depth {
		batch = append(batch, one...)
	}
	br := bufio.NewReaderSize(c, 64<<10)
	resp := make([]byte, respSize)
	corr := int32(0)
	roundTrip := func() error {
		for off := 0; off < len(batch); off += len(one) {
			corr++
			binary.BigEndian.PutUint32(batch[off+8:], uint32(corr))
		}
		if _, err := c.Write(batch); err != nil {
			return err
		}
		for i := range depth {
			if _, err := io.ReadFull(br, resp); err != nil {
				return err
			}
			if got, want := int32(binary.BigEndian.Uint32(resp[4:])), corr-int32(depth-1-i); got != want {
				return errors.New("correlation id mismatch")
			}
		}
		return nil
	}
	for range 100 { // warm up: lane dialed, pools filled
		if err := roundTrip(); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(one) + respSize))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += depth {
		if err := roundTrip(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkForward is the proxy's request path end to end over loopback:
// client frame read, header parse, classify, slot, lane queue, upstream
// writev, response read, correlation check, ordered write back.
func BenchmarkForward(b *testing.B) {
	b.Run("small/serial", func(b *testing.B) { benchForward(b, 64, 1) })
	b.Run("small/pipelined16", func(b *testing.B) { benchForward(b, 64, 16) })
	b.Run("1MiB-response/serial", func(b *testing.B) { benchForward(b, 1<<20, 1) })
	b.Run("1MiB-produce/serial", func(b *testing.B) {
		// Spliced from the client's socket to the broker's (tail.go).
		produce := rawclient.EncodeRequest(rawclient.ProduceRequest("bench", 0, 1, make([]byte, 1<<20)), 0, "bench")
		benchForwardRequest(b, produce, 64, 1)
	})
}

// selfMetadata answers a Metadata request frame naming the echo broker as
// broker 0: kproxy listens once its discovery names a broker.
func selfMetadata(req []byte, self *net.TCPAddr) []byte {
	m := kmsg.NewPtrMetadataResponse()
	m.SetVersion(int16(binary.BigEndian.Uint16(req[6:])))
	b := kmsg.NewMetadataResponseBroker()
	b.NodeID, b.Host, b.Port = 0, self.IP.String(), int32(self.Port)
	m.Brokers = append(m.Brokers, b)
	out := append(make([]byte, 4, 64), req[8:12]...)
	if m.IsFlexible() {
		out = append(out, 0)
	}
	out = m.AppendTo(out)
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	return out
}
