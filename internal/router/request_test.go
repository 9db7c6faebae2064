package router

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// parse is ParseRequest for tests: body is a frame after its size prefix.
func parse(tb testing.TB, p *Protocol, body []byte) *Request {
	tb.Helper()
	q, err := p.ParseRequest(body)
	if err != nil {
		tb.Fatal(err)
	}
	return &q
}

// TestParseRequest: the view holds the header, the client id and where the
// body starts, for classic and flexible headers and a null client id; a
// header cut inside its client id or tags has no body.
func TestParseRequest(t *testing.T) {
	p := NewProtocol()
	id := "svc-a"
	for _, tc := range []struct {
		version  int16
		clientID *string
	}{{0, &id}, {8, &id}, {9, &id}, {9, nil}, {1, nil}} {
		req := kmsg.NewPtrMetadataRequest()
		req.SetVersion(tc.version)
		body := requestBody(p, req, 42, tc.clientID)
		q := parse(t, p, body)
		if q.Key != KeyMetadata || q.Version != tc.version || q.CorrelationID != 42 {
			t.Fatalf("v%d: header %+v", tc.version, q.RequestHeader)
		}
		if want := tc.version >= 9; q.Flexible != want {
			t.Errorf("v%d: flexible %v, want %v", tc.version, q.Flexible, want)
		}
		if (tc.clientID == nil) != (q.ClientID == nil) || (tc.clientID != nil && string(q.ClientID) != *tc.clientID) {
			t.Errorf("v%d: client id %q, want %v", tc.version, q.ClientID, tc.clientID)
		}
		off, err := q.BodyOffset()
		if err != nil || off != len(body)-len(req.AppendTo(nil)) {
			t.Errorf("v%d: body at %d (%v), want %d", tc.version, off, err, len(body)-len(req.AppendTo(nil)))
		}
		cut := parse(t, p, body[:10])
		if _, err := cut.BodyOffset(); tc.clientID != nil && !errors.Is(err, ErrTruncated) {
			t.Errorf("v%d: a header cut in its client id has a body (%v)", tc.version, err)
		}
	}
	if _, err := p.ParseRequest(make([]byte, 7)); !errors.Is(err, ErrTruncated) {
		t.Errorf("7 bytes parsed: %v", err)
	}
}
