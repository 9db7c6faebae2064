package listener_test

import (
	"context"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/rawclient"
)

// TestSASLHandshakeV0Terminate: a client of Kafka before 1.0 shakes hands
// with SaslHandshake v0 and then sends bare SASL tokens with no request
// header. Terminate mode serves those tokens and the client goes on to
// produce; a wrong password closes the connection with no answer, as a
// broker does for v0 clients.
func TestSASLHandshakeV0Terminate(t *testing.T) {
	env := secureEnv(t, config.ListenTLS{})

	t.Run("sarama plain v0", func(t *testing.T) {
		cfg := sarama.NewConfig()
		cfg.Version = sarama.V1_0_0_0  // Produce v3: the records need no bridge
		cfg.ApiVersionsRequest = false // sarama's rule for SASL v0
		cfg.Net.SASL.Enable = true
		cfg.Net.SASL.Version = sarama.SASLHandshakeV0
		cfg.Net.SASL.Mechanism = sarama.SASLTypePlaintext
		cfg.Net.SASL.User, cfg.Net.SASL.Password = "app", "app-secret"
		cfg.Producer.Return.Successes = true
		cfg.Metadata.Retry.Max = 1
		p, err := sarama.NewSyncProducer([]string{env.Bootstrap()}, cfg)
		if err != nil {
			t.Fatalf("sarama with SaslHandshake v0 through terminate mode: %v", err)
		}
		defer p.Close()
		if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: "t", Value: sarama.StringEncoder("v0")}); err != nil {
			t.Fatalf("produce after SASL v0: %v", err)
		}
	})

	t.Run("scram-sha-256 v0 tokens", func(t *testing.T) {
		conn := handshakeV0(t, env.Bootstrap(), "SCRAM-SHA-256")
		_, sess := scramSession(t, "tools", "tools-secret")
		var challenge []byte
		for range 4 {
			done, msg, err := sess.Challenge(challenge)
			if err != nil {
				t.Fatalf("scram: %v", err)
			}
			if done {
				break
			}
			writeToken(t, conn, msg)
			challenge = readToken(t, conn)
		}
		// Authenticated: the connection now speaks Kafka again.
		if _, err := conn.Send(kmsg.NewPtrMetadataRequest()); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Read(); err != nil {
			t.Fatalf("metadata after SCRAM over v0 tokens: %v", err)
		}
	})

	t.Run("wrong password closes", func(t *testing.T) {
		conn := handshakeV0(t, env.Bootstrap(), "PLAIN")
		writeToken(t, conn, []byte("\x00app\x00wrong"))
		_ = conn.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := conn.Conn.Read(make([]byte, 1)); err == nil {
			t.Fatalf("read %d bytes after a failed v0 authentication, want the connection closed", n)
		}
	})
}

func handshakeV0(t *testing.T, addr, mechanism string) *rawclient.Conn {
	t.Helper()
	conn, err := rawclient.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version = 0
	hs.Mechanism = mechanism
	if _, err := conn.Send(hs); err != nil {
		t.Fatal(err)
	}
	resp, err := conn.Read()
	if err != nil {
		t.Fatalf("SaslHandshake v0: %v", err)
	}
	if r := resp.Msg.(*kmsg.SASLHandshakeResponse); r.ErrorCode != 0 {
		t.Fatalf("SaslHandshake v0 for %s: error %d", mechanism, r.ErrorCode)
	}
	return conn
}

func scramSession(t *testing.T, user, pass string) (string, interface {
	Challenge([]byte) (bool, []byte, error)
}) {
	t.Helper()
	sess, first, err := scram.Auth{User: user, Pass: pass}.AsSha256Mechanism().Authenticate(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	return string(first), &firstThen{first: first, sess: sess}
}

// firstThen hands out the mechanism's first message, then its session's
// answers to each challenge.
type firstThen struct {
	first []byte
	sent  bool
	sess  interface {
		Challenge([]byte) (bool, []byte, error)
	}
}

func (f *firstThen) Challenge(c []byte) (bool, []byte, error) {
	if !f.sent {
		f.sent = true
		return false, f.first, nil
	}
	return f.sess.Challenge(c)
}

func writeToken(t *testing.T, conn *rawclient.Conn, token []byte) {
	t.Helper()
	b := binary.BigEndian.AppendUint32(nil, uint32(len(token)))
	if _, err := conn.Conn.Write(append(b, token...)); err != nil {
		t.Fatal(err)
	}
}

func readToken(t *testing.T, conn *rawclient.Conn) []byte {
	t.Helper()
	_ = conn.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer conn.Conn.SetReadDeadline(time.Time{})
	var size [4]byte
	if _, err := io.ReadFull(conn.Conn, size[:]); err != nil {
		t.Fatalf("read a SASL token: %v", err)
	}
	b := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(conn.Conn, b); err != nil {
		t.Fatalf("read a SASL token: %v", err)
	}
	return b
}
