package listener_test

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/rawclient"
)

// TestTerminateCapsFramesBeforeAuth: a broker reads at most
// sasl.server.max.receive.size (512 KiB) of a frame from a client that has
// not authenticated; kproxy in terminate mode holds such a client to the
// same, so that unauthenticated connections cannot fill
// limits.max_buffered_bytes, which every authenticated neighbour shares.
// An authenticated client's frames are held to limits.max_frame_bytes only.
func TestTerminateCapsFramesBeforeAuth(t *testing.T) {
	env := secureEnv(t, config.ListenTLS{})
	const declared, sent = 64 << 20, 8 << 20

	bigFrame := func(conn net.Conn) {
		t.Helper()
		// A SaslAuthenticate v1 header, then bytes the size declares.
		head := binary.BigEndian.AppendUint32(nil, declared)
		head = binary.BigEndian.AppendUint16(head, 36)
		head = binary.BigEndian.AppendUint16(head, 1)
		head = binary.BigEndian.AppendUint32(head, 1)
		head = binary.BigEndian.AppendUint16(head, 0xffff)
		_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write(head); err != nil {
			return // closed already
		}
		chunk := make([]byte, 64<<10)
		for n := 0; n < sent; n += len(chunk) {
			if _, err := conn.Write(chunk); err != nil {
				return // closed on the way: what the cap does
			}
		}
	}

	t.Run("framed", func(t *testing.T) {
		conn, err := rawclient.Dial(env.Bootstrap())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		bigFrame(conn.Conn)
		expectClosed(t, conn.Conn)
	})
	t.Run("bare token after SaslHandshake v0", func(t *testing.T) {
		conn := handshakeV0(t, env.Bootstrap(), "PLAIN")
		bigFrame(conn.Conn)
		expectClosed(t, conn.Conn)
	})
	peak := env.Proxy.BufferedPeakForTest()
	t.Logf("budget peak with two unauthenticated clients sending %d bytes of a %d-byte frame: %d bytes", sent, declared, peak)
	if peak > 1<<20 {
		t.Fatalf("unauthenticated clients made kproxy hold %d bytes of limits.max_buffered_bytes, want at most 1 MiB", peak)
	}

	t.Run("authenticated", func(t *testing.T) {
		cl := newClient(t, env.Bootstrap(), kgo.SASL(plain.Auth{User: "app", Pass: "app-secret"}.AsMechanism()),
			kgo.DefaultProduceTopic("t"), kgo.ProducerBatchMaxBytes(4<<20))
		value := make([]byte, 2<<20)
		if err := cl.ProduceSync(ctxTimeout(t, 30*time.Second), &kgo.Record{Value: value}).FirstErr(); err != nil {
			t.Fatalf("a 2 MiB record from an authenticated client: %v", err)
		}
	})
}
