package hol

import (
	"encoding/binary"
	"net"
	"sync"
	"time"
)

// Tap watches the Kafka frames a client writes and reads on its
// connections and times the answers to chosen APIs, from the moment the
// request was written to the moment its answer's header was read: the
// latency the application sees.
type Tap struct {
	keys map[int16]bool

	mu        sync.Mutex
	latencies map[int16][]time.Duration
	answered  map[int16][]time.Time
}

// NewTap times the answers to the given API keys.
func NewTap(keys ...int16) *Tap {
	t := &Tap{keys: map[int16]bool{}, latencies: map[int16][]time.Duration{}, answered: map[int16][]time.Time{}}
	for _, k := range keys {
		t.keys[k] = true
	}
	return t
}

// Latencies returns the answer latencies recorded for key.
func (t *Tap) Latencies(key int16) []time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]time.Duration(nil), t.latencies[key]...)
}

// Answered returns when each answer to key arrived.
func (t *Tap) Answered(key int16) []time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]time.Time(nil), t.answered[key]...)
}

// MaxGap is the longest time between two consecutive answers to key: for
// a Heartbeat, about what the broker's session timer sees.
func (t *Tap) MaxGap(key int16) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var gap time.Duration
	at := t.answered[key]
	for i := 1; i < len(at); i++ {
		gap = max(gap, at[i].Sub(at[i-1]))
	}
	return gap
}

// Dial implements sarama's proxy.Dialer (Net.Proxy.Dialer).
func (t *Tap) Dial(network, addr string) (net.Conn, error) {
	c, err := net.DialTimeout(network, addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	tc := &tapConn{Conn: c, tap: t, sent: map[int32]sentReq{}}
	tc.out.hdr, tc.in.hdr = 12, 8
	return tc, nil
}

type sentReq struct {
	key int16
	at  time.Time
}

type tapConn struct {
	net.Conn
	tap     *Tap
	mu      sync.Mutex
	sent    map[int32]sentReq
	out, in frameScanner
}

func (c *tapConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.out.scan(b, func(h []byte) {
		key, corr := int16(binary.BigEndian.Uint16(h[4:])), int32(binary.BigEndian.Uint32(h[8:]))
		if c.tap.keys[key] {
			c.sent[corr] = sentReq{key: key, at: time.Now()}
		}
	})
	c.mu.Unlock()
	return c.Conn.Write(b)
}

func (c *tapConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	c.in.scan(b[:n], func(h []byte) {
		corr := int32(binary.BigEndian.Uint32(h[4:]))
		if s, ok := c.sent[corr]; ok {
			delete(c.sent, corr)
			c.tap.mu.Lock()
			now := time.Now()
			c.tap.latencies[s.key] = append(c.tap.latencies[s.key], now.Sub(s.at))
			c.tap.answered[s.key] = append(c.tap.answered[s.key], now)
			c.tap.mu.Unlock()
		}
	})
	c.mu.Unlock()
	return n, err
}

// frameScanner follows frame boundaries in a byte stream and hands the
// first hdr bytes of each frame (size prefix included) to a callback.
type frameScanner struct {
	hdr  int
	buf  [12]byte
	have int
	skip int
}

func (s *frameScanner) scan(b []byte, onHeader func([]byte)) {
	for len(b) > 0 {
		if s.skip > 0 {
			n := min(s.skip, len(b))
			s.skip -= n
			b = b[n:]
			continue
		}
		n := copy(s.buf[s.have:s.hdr], b)
		s.have += n
		b = b[n:]
		if s.have < s.hdr {
			return
		}
		onHeader(s.buf[:s.hdr])
		s.skip = int(int32(binary.BigEndian.Uint32(s.buf[:4]))) + 4 - s.hdr
		s.have = 0
	}
}
