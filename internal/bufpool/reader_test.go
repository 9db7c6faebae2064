package bufpool

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// readerCases runs over TCP (raw reads, buffer parked while idle) and over
// net.Pipe (no file descriptor: plain reads).
func readerCases(t *testing.T, f func(t *testing.T, w io.WriteCloser, conn net.Conn, raw bool)) {
	t.Run("tcp", func(t *testing.T) {
		c, s := tcpPair(t)
		f(t, c, s, true)
	})
	t.Run("pipe", func(t *testing.T) {
		c, s := net.Pipe()
		t.Cleanup(func() { c.Close(); s.Close() })
		f(t, c, s, false)
	})
}

func TestReaderStream(t *testing.T) {
	readerCases(t, func(t *testing.T, w io.WriteCloser, conn net.Conn, raw bool) {
		want := make([]byte, 300<<10)
		for i := range want {
			want[i] = byte(i * 7)
		}
		go func() {
			// Odd sizes, so reads straddle buffer ends.
			for b := want; len(b) > 0; {
				n := min(len(b), 1+len(b)%9001)
				if _, err := w.Write(b[:n]); err != nil {
					return
				}
				b = b[n:]
			}
			w.Close()
		}()
		r := New().NewReader(conn, 4096)
		if (r.raw != nil) != raw {
			t.Fatalf("raw reads: %v, want %v", r.raw != nil, raw)
		}
		var got bytes.Buffer
		var hdr [4]byte
		big := make([]byte, 10000)
		for i := 0; ; i++ {
			var err error
			var n int
			if i%3 == 2 {
				n, err = io.ReadFull(r, big) // larger than the buffer: read straight in
			} else {
				n, err = io.ReadFull(r, hdr[:])
			}
			if i%3 == 2 {
				got.Write(big[:n])
			} else {
				got.Write(hdr[:n])
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("read %d bytes, want %d identical", got.Len(), len(want))
		}
	})
}

func TestReaderParksBufferWhileIdle(t *testing.T) {
	c, s := tcpPair(t)
	pool := New()
	r := pool.NewReader(s, 4096)
	got := make(chan error, 1)
	var b [3]byte
	go func() {
		_, err := io.ReadFull(r, b[:])
		got <- err
	}()
	// The reader finds the socket empty and parks, giving its buffer back:
	// the pool's kept slot for its class fills.
	class := classOf(4096)
	deadline := time.Now().Add(10 * time.Second)
	for pool.kept[class].Load() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the reader did not park on an empty socket within 10s")
		}
		time.Sleep(time.Millisecond) // polling the condition
	}
	if _, err := c.Write([]byte("abcdef")); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil || string(b[:]) != "abc" {
		t.Fatalf("read %q, %v", b, err)
	}
	if r.buf == nil || r.Buffered() != 3 {
		t.Fatalf("holds %d unread bytes (buffer %v), want 3", r.Buffered(), r.buf != nil)
	}
	_, _ = io.ReadFull(r, b[:])
	// Nothing left to read: the next read parks and gives the buffer back.
	_ = s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := r.Read(b[:]); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read on an idle connection: %v, want deadline exceeded", err)
	}
	if r.buf != nil {
		t.Fatal("an idle reader still holds its buffer")
	}
	_ = s.SetReadDeadline(time.Time{})
	s.Close()
	if _, err := r.Read(b[:]); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close: %v, want net.ErrClosed", err)
	}
}

func TestPoolClassesAndKept(t *testing.T) {
	p := New()
	for _, n := range []int{1, 512, 513, 1 << 20, 5 << 20, 64 << 20} {
		b := p.Get(n)
		if len(b.B) != n || b.class < 0 {
			t.Fatalf("Get(%d): len %d class %d", n, len(b.B), b.class)
		}
		p.Put(b)
		if again := p.Get(n); again != b && int(b.class) < len(p.kept) {
			t.Fatalf("Get(%d) after Put: a new buffer, want the kept one", n)
		}
	}
	if b := p.Get(64<<20 + 1); b.class >= 0 {
		t.Fatalf("a frame above 64 MiB is pooled (class %d)", b.class)
	}
}
