package listener_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/rawclient"
)

// TestProduceRecordsPastFrameRefused: a Produce whose records length runs
// past the end of its frame is the client's fault, found at kproxy: read
// whole when small, by its head when large (before any of it is spliced,
// and without reading the rest into memory).
// It is refused (bad_frame, malformed) and never reaches the broker, which
// would otherwise drop the connection and have the session blame it.
func TestProduceRecordsPastFrameRefused(t *testing.T) {
	b, env := startOnFakeBroker(t, config.UnknownAPIsHide, nil)
	produces := func() int {
		n := 0
		for _, r := range b.requests() {
			if r.key == int16(kmsg.Produce) {
				n++
			}
		}
		return n
	}
	sizes := []int{1 << 10, 1 << 20}
	for i, size := range sizes {
		req := rawclient.ProduceRequest("t", 0, 1, randomValue(size))
		records := req.Topics[0].Partitions[0].Records
		frame := rawclient.EncodeRequest(req, 1, "liar")
		at := bytes.Index(frame, records) - 4
		binary.BigEndian.PutUint32(frame[at:], uint32(len(records)+1))
		c := dialRaw(t, env.Bootstrap(), "liar")
		before := produces()
		_, _ = c.Conn.Write(frame) // kproxy may close before it reads the rest
		waitFor(t, "the frame refused or at the broker", func() bool {
			return closes(env, "bad_frame") == float64(i+1) || produces() > before
		})
	}
	if n := produces(); n != 0 {
		t.Errorf("%d Produce frames with records past their end reached the broker", n)
	}
	if got := testutil.ToFloat64(env.Metrics.FrameErrors.WithLabelValues("malformed")); got != float64(len(sizes)) {
		t.Errorf("malformed frames %v, want %d", got, len(sizes))
	}
	if peak := env.Proxy.BufferedPeakForTest(); peak > 128<<10 {
		t.Errorf("peak buffered %d bytes: the large frame was read whole, not refused by its head", peak)
	}
	if got := closes(env, "upstream_failed"); got != 0 {
		t.Errorf("%v sessions blamed on the broker", got)
	}
}
