package upstream

import (
	"net"
	"strings"
	"testing"
	"time"
)

// answerAsync writes answers from the broker side of a pipe in order,
// stopping at the first the lane no longer reads.
func answerAsync(broker net.Conn, corrs ...int32) {
	go func() {
		for _, corr := range corrs {
			if _, err := broker.Write(answerFrame(corr, "x")); err != nil {
				return
			}
		}
	}()
}

// TestLaneAnswersOnlyWhatWasAsked: with acks=0 produces sent, an answer
// whose correlation id is none of them and not the next pending one is a
// protocol error that fails the lane, as any other mismatch; it is never
// dropped while the lane goes on delivering.
func TestLaneAnswersOnlyWhatWasAsked(t *testing.T) {
	l, h, broker, _ := laneOverPipe(t, 0)
	sendAsync(t, l, 5, false)
	readRequest(t, broker)
	sendAsync(t, l, 6, true)
	readRequest(t, broker)
	answerAsync(broker, 99, 6) // 99 was never sent
	eventually(t, func() bool { return h.answered() > 0 || h.dones.Load() > 0 })
	if got := h.owners(); len(got) != 0 {
		t.Fatalf("the lane went on after an answer to a request never sent, and delivered %v", got)
	}
	if err := waitDone(t, h); err == nil || !strings.Contains(err.Error(), "correlation id mismatch") {
		t.Fatalf("lane stopped with %v, want a correlation id mismatch", err)
	}
}

// TestLaneToleratesLateAcks0Answers: a server that answers acks=0 produces
// (Kafka never does) may answer them after later requests; those answers
// are read and dropped, and every other answer still reaches its owner.
func TestLaneToleratesLateAcks0Answers(t *testing.T) {
	l, h, broker, _ := laneOverPipe(t, 0)
	sendAsync(t, l, 5, false)
	readRequest(t, broker)
	sendAsync(t, l, 6, true)
	readRequest(t, broker)
	answerAsync(broker, 6, 5) // the acks=0 produce's answer comes late
	eventually(t, func() bool { return h.answered() == 1 || h.dones.Load() > 0 })
	sendAsync(t, l, 7, true)
	if corr := readRequest(t, broker); corr != 7 {
		t.Fatalf("broker read %d, want 7", corr)
	}
	answerAsync(broker, 7)
	eventually(t, func() bool { return h.answered() == 2 || h.dones.Load() > 0 })
	if got := h.owners(); len(got) != 2 || got[0] != 6 || got[1] != 7 {
		t.Fatalf("owners %v, want [6 7]", got)
	}
	if h.dones.Load() != 0 {
		t.Fatalf("the lane failed on a late acks=0 answer: %v", <-h.done)
	}
}

// TestLaneAcks0FailureAfterAnEarlierAnswer: the answer to a request sent
// before an acks=0 produce says nothing about that produce, so a broker
// closing afterwards (its only way to report the produce's failure) is a
// failure the session sees.
func TestLaneAcks0FailureAfterAnEarlierAnswer(t *testing.T) {
	l, h, broker, _ := laneOverPipe(t, 0)
	sendAsync(t, l, 1, true)
	readRequest(t, broker)
	sendAsync(t, l, 2, false)
	readRequest(t, broker)
	answer(t, broker, 1, "x")
	eventually(t, func() bool { return h.answered() == 1 })
	if info := l.Info(); info.Acks0 != 1 {
		t.Errorf("Info().Acks0 %d after the earlier answer, want 1", info.Acks0)
	}
	broker.Close()
	if err := waitDone(t, h); err == nil || !strings.Contains(err.Error(), "acks=0") {
		t.Fatalf("close after the acks=0 produce reported %v, want the acks=0 failure", err)
	}
}

// TestLaneAcks0IdleTimeout: a lane whose only unconfirmed requests are
// acks=0 produces idles out once it has been quiet for the idle timeout
// since the latest of them, and reports nothing lost: a broker closes the
// connection over a failed one as it processes it, at once. Each acks=0
// produce restarts the timer. It used to wait for an answer that never
// comes, until the broker closed the quiet connection
// (connections.max.idle.ms), which then failed the session as if an
// acks=0 produce had failed. A close within the timeout still reports one.
func TestLaneAcks0IdleTimeout(t *testing.T) {
	const idle = 200 * time.Millisecond
	t.Run("idles out", func(t *testing.T) {
		l, h, broker, _ := laneOverPipe(t, idle)
		sendAsync(t, l, 1, true)
		readRequest(t, broker)
		sendAsync(t, l, 2, false)
		readRequest(t, broker)
		answer(t, broker, 1, "x") // confirms nothing sent after request 1
		time.Sleep(idle / 2)
		sendAsync(t, l, 3, false)
		readRequest(t, broker)
		time.Sleep(3 * idle / 4) // past the timeout from the answer, not from produce 3
		if h.dones.Load() != 0 {
			t.Fatalf("the lane stopped before the idle timeout since its latest acks=0 produce: %v", <-h.done)
		}
		if err := waitDone(t, h); err != nil {
			t.Fatalf("idle close reported %v, want nothing lost", err)
		}
	})
	t.Run("a close within it fails", func(t *testing.T) {
		l, h, broker, _ := laneOverPipe(t, idle)
		sendAsync(t, l, 1, false)
		readRequest(t, broker)
		broker.Close()
		if err := waitDone(t, h); err == nil || !strings.Contains(err.Error(), "acks=0") {
			t.Fatalf("close after the acks=0 produce reported %v, want the acks=0 failure", err)
		}
	})
}

// TestAcks0LogBounded: a lane keeps the correlation ids of its latest
// acks0Remembered acks=0 produces, whatever it sent before, and each is
// answered at most once.
func TestAcks0LogBounded(t *testing.T) {
	var a acks0Log
	for corr := range int32(10 * acks0Remembered) {
		a.add(corr, time.Time{})
	}
	if len(a.owed) != acks0Remembered || cap(a.owed) > 2*acks0Remembered {
		t.Fatalf("%d ids kept in room for %d, want %d", len(a.owed), cap(a.owed), acks0Remembered)
	}
	oldest := int32(9 * acks0Remembered)
	for _, c := range []struct {
		corr int32
		want bool
	}{{oldest - 1, false}, {oldest, true}, {oldest, false}, {10*acks0Remembered - 1, true}} {
		if got := a.answered(c.corr); got != c.want {
			t.Errorf("answered(%d) = %v, want %v", c.corr, got, c.want)
		}
	}
	if a.unconfirmed() != 10*acks0Remembered {
		t.Errorf("%d unconfirmed, want %d: an answer to an acks=0 produce confirms nothing", a.unconfirmed(), 10*acks0Remembered)
	}
}
