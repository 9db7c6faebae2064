package upstream

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/kproxy/kproxy/internal/bufpool"
)

// recordingConn is a connection without writev (like *tls.Conn) that
// records each Write.
type recordingConn struct {
	net.Conn
	writes [][]byte
}

func (c *recordingConn) Write(b []byte) (int, error) {
	c.writes = append(c.writes, bytes.Clone(b))
	return len(b), nil
}

func frameOf(pool *bufpool.Pool, size int, fill byte) *bufpool.Buf {
	b := pool.Get(size)
	for i := range b.B {
		b.B[i] = fill
	}
	return b
}

// TestLaneCoalescesWritesWithoutWritev: on a connection without writev a
// batch of small frames goes out in as few writes as coalesceMax allows, a
// frame of coalesceMax or more goes alone, and the bytes are the frames in
// order.
func TestLaneCoalescesWritesWithoutWritev(t *testing.T) {
	pool := bufpool.New()
	conn := &recordingConn{}
	l := &testLane{conn: conn, opts: &LaneOptions{Pool: pool}, coalesce: !hasWritev(conn)}
	if !l.coalesce {
		t.Fatal("a conn without writev must coalesce")
	}
	sizes := []int{100, 200, 40 << 10, 30 << 10, coalesceMax, 10, 20, 1 << 20, 5}
	var want []byte
	for i, n := range sizes {
		f := frameOf(pool, n, byte(i+1))
		want = append(want, f.B...)
		l.batch = append(l.batch, f)
	}
	n, err := l.writeBatch()
	if err != nil || n != int64(len(want)) {
		t.Fatalf("wrote %d, %v; want %d", n, err, len(want))
	}
	var got []byte
	var lens []int
	for _, w := range conn.writes {
		got = append(got, w...)
		lens = append(lens, len(w))
	}
	if !bytes.Equal(got, want) {
		t.Fatal("bytes differ from the frames in order")
	}
	// 100+200+40 KiB fit; 30 KiB would overflow: flush, then 30 KiB;
	// coalesceMax alone (after flushing 30 KiB); 10+20; 1 MiB alone; 5.
	wantLens := []int{100 + 200 + 40<<10, 30 << 10, coalesceMax, 30, 1 << 20, 5}
	if len(lens) != len(wantLens) {
		t.Fatalf("write sizes %v, want %v", lens, wantLens)
	}
	for i := range lens {
		if lens[i] != wantLens[i] {
			t.Fatalf("write sizes %v, want %v", lens, wantLens)
		}
	}
}

// TestLaneWriteBatchDoesNotAllocate: coalescing uses a pooled buffer.
func TestLaneWriteBatchDoesNotAllocate(t *testing.T) {
	pool := bufpool.New()
	conn := &recordingConn{}
	l := &testLane{conn: discardConn{conn}, opts: &LaneOptions{Pool: pool}, coalesce: true}
	frames := []*bufpool.Buf{frameOf(pool, 300, 1), frameOf(pool, 500, 2), frameOf(pool, 9000, 3)}
	allocs := testing.AllocsPerRun(100, func() {
		l.batch = append(l.batch[:0], frames...)
		if _, err := l.writeBatch(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per batch", allocs)
	}
}

type discardConn struct{ net.Conn }

func (discardConn) Write(b []byte) (int, error) { return len(b), nil }

// TestHasWritev: plain sockets take the writev path, TLS does not.
func TestHasWritev(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !hasWritev(c) {
		t.Error("*net.TCPConn: no writev")
	}
	if hasWritev(tls.Client(c, &tls.Config{})) {
		t.Error("*tls.Conn: writev claimed")
	}
}

// BenchmarkLaneTLSBatch writes a batch of 32 small frames (a pipelining
// client's Heartbeats, OffsetCommits, small Produces) to a TLS connection
// over loopback, coalesced and one Write per frame as before.
func BenchmarkLaneTLSBatch(b *testing.B) {
	cert := selfSignedForTest(b)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	for _, coalesce := range []bool{false, true} {
		b.Run(fmt.Sprintf("coalesce=%v", coalesce), func(b *testing.B) {
			c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			pool := bufpool.New()
			l := &testLane{conn: c, opts: &LaneOptions{Pool: pool}, coalesce: coalesce}
			var frames []*bufpool.Buf
			for i := range 32 {
				frames = append(frames, frameOf(pool, 100+i, byte(i)))
			}
			b.SetBytes(int64(32*100 + 31*32/2))
			b.ReportAllocs()
			for b.Loop() {
				l.batch = append(l.batch[:0], frames...)
				if _, err := l.writeBatch(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func selfSignedForTest(tb testing.TB) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
