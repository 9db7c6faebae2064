package peek

import (
	"net"
	"testing"
	"time"
)

func pair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if server, err = ln.Accept(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// wait peeks until want shows (the peer's bytes or FIN take a moment to
// arrive), for at most 5s.
func wait(t *testing.T, conn net.Conn, want State) {
	t.Helper()
	var got State
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if got, _ = At(conn); got == want {
			return
		}
	}
	t.Fatalf("peek: %d, want %d", got, want)
}

func TestAt(t *testing.T) {
	client, server := pair(t)
	if got, err := At(server); got != Quiet || err != nil {
		t.Fatalf("an open, quiet connection: %d, %v", got, err)
	}
	// A read deadline in the past must not stop the peek from looking.
	_ = server.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	wait(t, server, Data)
	if got, _ := At(server); got != Data {
		t.Fatal("the peek consumed the byte")
	}
	client.Close()
	var b [1]byte
	_ = server.SetReadDeadline(time.Time{})
	if _, err := server.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	wait(t, server, Closed)
}
