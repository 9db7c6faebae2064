package upstream

import (
	"bytes"
	"io"
	"testing"
)

// TestLaneSendTailBesideInFlight: with a request in flight (the broker not
// reading), a tail that the socket's send buffer takes whole is spliced:
// the caller cannot wait on the broker. Both frames arrive, in order.
func TestLaneSendTailBesideInFlight(t *testing.T) {
	size := 96 << 10
	probe, _, _ := laneOverTCP(t)
	probe.room.takes(0)
	if room := int(probe.room.sndbuf) / 4; room < size {
		size = room // a quarter of a fresh socket's send buffer: taken whole
	}
	if size < 20<<10 {
		t.Skipf("send buffers of %d bytes here: no frame with a tail fits", probe.room.sndbuf)
	}
	l, h, broker, head, tail, want := behindInFlight(t, size)
	if sent, err := l.SendTail(head, tail, false, 9, true, 9); !sent || err != nil {
		t.Fatalf("SendTail beside a request in flight: %v, %v (a %d-byte frame, send buffer %d bytes)", sent, err, size, l.room.sndbuf)
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(broker, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the broker received other bytes than the two frames in order")
	}
	bothAnswered(t, h, broker)
}
