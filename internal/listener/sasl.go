package listener

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/auth"
	"github.com/kproxy/kproxy/internal/bufpool"
	"github.com/kproxy/kproxy/internal/router"
)

// listen.sasl.mode terminate: the proxy is the SASL server its clients
// see. A client authenticates once per connection, against
// listen.sasl.users; the proxy's lanes authenticate to the brokers with
// upstream.sasl. Before a client is authenticated only ApiVersions,
// SaslHandshake and SaslAuthenticate are served; anything else closes the
// connection, as a Kafka broker does (SaslServerAuthenticator throws
// IllegalSaslStateException for it).

// Session close reasons of client SASL (kproxy_session_closes_total{reason}).
const (
	reasonSASLFailed   = "sasl_failed"
	reasonSASLRequired = "sasl_required"
)

// maxReceiveBeforeAuth is the largest frame read from a client not yet
// authenticated: a broker's default sasl.server.max.receive.size. Without
// it, connections that never authenticate could each hold up to
// limits.max_frame_bytes of the budget every client shares.
const maxReceiveBeforeAuth = 512 << 10

// flushTimeout bounds how long a refused client's last answer may take to
// be written before its connection closes.
const flushTimeout = 5 * time.Second

type saslStage uint8

const (
	saslBegin     saslStage = iota // expecting SaslHandshake
	saslHandshook                  // expecting SaslAuthenticate
	saslDone                       // authenticated
)

// clientSASL is one session's state; the session reader owns it.
type clientSASL struct {
	stage     saslStage
	mechanism string
	conv      auth.Session
	// unframed: the handshake was v0, so the client's next frames are bare
	// SASL tokens, with no request header, until the exchange is done.
	unframed bool
}

// unauthenticated reports whether the session must still authenticate
// (listen.sasl.mode terminate) and has not.
func (s *session) unauthenticated() bool { return s.pol.users != nil && s.clientSASL.stage != saslDone }

// unframedToken reports whether the next frame the client sends is a bare
// SASL token (SaslHandshake v0).
func (st *clientSASL) unframedToken() bool { return st.stage == saslHandshook && st.unframed }

// loadUsers reads every user's password from where listen.sasl.users
// says it is and derives the credentials the proxy checks against.
func loadUsers(c config.ListenSASL) (*auth.Users, error) {
	if c.Mode != config.SASLModeTerminate {
		return nil, nil
	}
	passwords := make(map[string]string, len(c.Users))
	var errs []error
	for user, ref := range c.Users {
		key := "listen.sasl.users." + user
		kind, name, _ := strings.Cut(ref, ":")
		var pw string
		switch kind {
		case "file":
			b, err := os.ReadFile(name)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s (%s): %w", key, config.EnvVar("listen.sasl.users"), err))
				continue
			}
			pw = strings.TrimRight(string(b), "\r\n")
		case "env":
			pw = os.Getenv(name)
		}
		if pw == "" {
			errs = append(errs, fmt.Errorf("%s (%s) %q: the password is empty or missing", key, config.EnvVar("listen.sasl.users"), ref))
			continue
		}
		passwords[user] = pw
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return auth.NewUsers(passwords, c.Mechanisms)
}

// terminateSASL serves SASL and guards every request until the client is
// authenticated. handled is false for requests that go on as usual.
func (s *session) terminateSASL(frame *bufpool.Buf, q *router.Request) (handled bool, reason string, err error) {
	h := q.RequestHeader
	st := &s.clientSASL
	p := s.pol.protocol
	switch {
	case h.Key == router.KeySaslHandshake:
	case h.Key == router.KeySaslAuthenticate:
	case st.stage == saslDone || h.Key == router.KeyApiVersions:
		return false, "", nil
	default:
		s.srv.pool.Put(frame)
		return true, reasonSASLRequired, fmt.Errorf("client sent %s before completing SASL authentication (listen.sasl.mode terminate); closing the connection as a broker does", p.Name(h.Key))
	}
	defer s.srv.pool.Put(frame)
	req := kmsg.RequestForKey(h.Key)
	req.SetVersion(h.Version)
	off, err := q.BodyOffset()
	if err == nil {
		err = req.ReadFrom(q.Frame[off:])
	}
	if err != nil || h.Version > req.MaxVersion() {
		return true, reasonBadFrame, fmt.Errorf("cannot decode %s v%d: %v", p.Name(h.Key), h.Version, err)
	}

	switch req := req.(type) {
	case *kmsg.SASLHandshakeRequest:
		resp := kmsg.NewPtrSASLHandshakeResponse()
		resp.SupportedMechanisms = s.pol.users.Mechanisms()
		switch {
		case st.stage != saslBegin:
			resp.ErrorCode = kerr.IllegalSaslState.Code
			reason, err := s.refuse(h, resp, reasonSASLFailed, errors.New("SaslHandshake after the handshake (re-authentication is not offered)"))
			return true, reason, err
		}
		conv, ok := s.pol.users.Start(req.Mechanism)
		if !ok {
			resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
			s.log.Warn("client asked for a sasl mechanism not enabled in listen.sasl.mechanisms", zap.String("mechanism", req.Mechanism))
		} else {
			st.stage, st.mechanism, st.conv = saslHandshook, req.Mechanism, conv
			st.unframed = h.Version == 0
		}
		reason, err := s.answerLocally(h, p.Answer(h, resp))
		return true, reason, err

	case *kmsg.SASLAuthenticateRequest:
		resp := kmsg.NewPtrSASLAuthenticateResponse()
		if st.stage != saslHandshook {
			resp.ErrorCode = kerr.IllegalSaslState.Code
			reason, err := s.refuse(h, resp, reasonSASLFailed, errors.New("SaslAuthenticate without a SaslHandshake before it"))
			return true, reason, err
		}
		answer, done, err := st.conv.Step(req.SASLAuthBytes)
		if err != nil {
			resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
			msg := "Authentication failed during authentication due to invalid credentials with SASL mechanism " + st.mechanism
			resp.ErrorMessage = &msg
			s.log.Warn("client sasl authentication failed", zap.String("user", st.conv.User()), zap.String("mechanism", st.mechanism), zap.Error(err))
			reason, err := s.refuse(h, resp, reasonSASLFailed, err)
			return true, reason, err
		}
		resp.SASLAuthBytes = answer
		if done {
			st.stage = saslDone
			s.view.saslPrincipal(st.conv.User())
			s.log.Debug("client authenticated", zap.String("user", st.conv.User()), zap.String("mechanism", st.mechanism))
		}
		reason, err := s.answerLocally(h, p.Answer(h, resp))
		return true, reason, err
	}
	return false, "", nil
}

// unframedSASL serves one bare SASL token of a client that shook hands
// with SaslHandshake v0 (clients of Kafka before 1.0): the answer is a bare
// token too, and a failure closes the connection with no answer, as a
// broker's SaslServerAuthenticator does for v0 clients, which have no way
// to read an error.
func (s *session) unframedSASL(frame *bufpool.Buf) (string, error) {
	st := &s.clientSASL
	token := frame.B[4:]
	answer, done, err := st.conv.Step(token)
	s.srv.pool.Put(frame)
	if err != nil {
		s.log.Warn("client sasl authentication failed", zap.String("user", st.conv.User()), zap.String("mechanism", st.mechanism),
			zap.Bool("unframed", true), zap.Error(err))
		return reasonSASLFailed, err
	}
	if done {
		st.stage, st.unframed = saslDone, false
		s.view.saslPrincipal(st.conv.User())
		s.log.Debug("client authenticated", zap.String("user", st.conv.User()), zap.String("mechanism", st.mechanism), zap.Bool("unframed", true))
	}
	out := make([]byte, 4+len(answer))
	binary.BigEndian.PutUint32(out, uint32(len(answer)))
	copy(out[4:], answer)
	return s.answerLocally(router.RequestHeader{Key: router.KeySaslAuthenticate}, out)
}

// refuse answers the request, waits until the answer is written, and
// returns the reason the session closes with: a refused client learns why
// before its connection ends.
func (s *session) refuse(h router.RequestHeader, resp kmsg.Response, reason string, err error) (string, error) {
	if r, aerr := s.answerLocally(h, s.pol.protocol.Answer(h, resp)); r != "" {
		return r, aerr
	}
	s.awaitFlushed(flushTimeout)
	return reason, err
}

// awaitFlushed returns once every answer owed to the client has been
// written, or after timeout. The writer gives back one in-flight token per
// answer it has written; holding every token means nothing is owed. Only
// the session reader takes tokens, and it is the caller.
func (s *session) awaitFlushed(timeout time.Duration) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for range cap(s.sem) {
		select {
		case s.sem <- struct{}{}:
		case <-s.closedCh:
			return
		case <-t.C:
			return
		}
	}
}
