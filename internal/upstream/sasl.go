package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/kproxy/kproxy/config"
)

// Versions of the proxy's own SASL requests: SaslHandshake v1 frames the
// tokens in SaslAuthenticate (KIP-152); SaslAuthenticate v1 carries the
// session lifetime (KIP-368). Both exist since Kafka 1.0 / 2.2 and neither
// is flexible.
const (
	saslHandshakeVersion    = 1
	saslAuthenticateVersion = 1
)

// maxSessionLifetime bounds a broker's session lifetime so that converting
// it to a Duration cannot overflow.
const maxSessionLifetime = 365 * 24 * time.Hour

// AuthError is an upstream authentication failure: it names the broker,
// the user and what the broker said.
type AuthError struct {
	Broker    string
	User      string
	Mechanism string
	Err       error
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("upstream sasl %s authentication as user %q at broker %s failed: %v", e.Mechanism, e.User, e.Broker, e.Err)
}

func (e *AuthError) Unwrap() error { return e.Err }

// exchange sends one request of the SASL conversation and decodes its
// answer: over a fresh connection at dial, through the lane's FIFO when
// re-authenticating.
type exchange func(ctx context.Context, req kmsg.Request, resp kmsg.Response) error

// saslAuth is the proxy's SASL identity. Secrets are read from their files
// on every authentication, so that a rotated password or a refreshed
// OAUTHBEARER token is used from the next one on.
type saslAuth struct {
	cfg config.UpstreamSASL
}

func newSASLAuth(c config.UpstreamSASL) (*saslAuth, error) {
	if c.Mechanism == "" {
		return nil, nil
	}
	a := &saslAuth{cfg: c}
	if _, err := a.mechanism(); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *saslAuth) user() string {
	if a.cfg.Mechanism == config.SASLOAuthBearer {
		return "(token)"
	}
	return a.cfg.Username
}

func (a *saslAuth) mechanism() (sasl.Mechanism, error) {
	switch a.cfg.Mechanism {
	case config.SASLOAuthBearer:
		token, err := readSecret("upstream.sasl.token_file", a.cfg.TokenFile)
		if err != nil {
			return nil, err
		}
		return oauth.Auth{Token: token}.AsMechanism(), nil
	}
	pass := a.cfg.Password
	if pass == "" {
		var err error
		if pass, err = readSecret("upstream.sasl.password_file", a.cfg.PasswordFile); err != nil {
			return nil, err
		}
	}
	switch a.cfg.Mechanism {
	case config.SASLPlain:
		return plain.Auth{User: a.cfg.Username, Pass: pass}.AsMechanism(), nil
	case config.SASLScram256:
		return scram.Auth{User: a.cfg.Username, Pass: pass}.AsSha256Mechanism(), nil
	case config.SASLScram512:
		return scram.Auth{User: a.cfg.Username, Pass: pass}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("upstream.sasl.mechanism %q: unsupported", a.cfg.Mechanism)
}

// readSecret reads a secret file; a trailing newline (editors, echo) is not
// part of the secret.
func readSecret(key, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s (%s): %w", key, config.EnvVar(key), err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s (%s) %q: file is empty", key, config.EnvVar(key), path)
	}
	return s, nil
}

// authenticate runs SaslHandshake and the SaslAuthenticate conversation
// (the loop of kgo's brokerCxn.doSasl). It returns the broker's session
// lifetime, 0 when the session does not expire.
func (a *saslAuth) authenticate(ctx context.Context, broker string, ex exchange) (time.Duration, error) {
	fail := func(err error) (time.Duration, error) {
		return 0, &AuthError{Broker: broker, User: a.user(), Mechanism: a.cfg.Mechanism, Err: err}
	}
	mech, err := a.mechanism()
	if err != nil {
		return fail(err)
	}
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version = saslHandshakeVersion
	hs.Mechanism = mech.Name()
	hsResp := kmsg.NewPtrSASLHandshakeResponse()
	if err := ex(ctx, hs, hsResp); err != nil {
		return fail(brokerClosed("SaslHandshake", err))
	}
	if err := kerr.ErrorForCode(hsResp.ErrorCode); err != nil {
		return fail(fmt.Errorf("SaslHandshake: %w (the broker offers %v)", err, hsResp.SupportedMechanisms))
	}
	session, msg, err := mech.Authenticate(ctx, broker)
	if err != nil {
		return fail(err)
	}
	var lifetimeMillis int64
	for done := false; !done || len(msg) > 0; {
		req := kmsg.NewPtrSASLAuthenticateRequest()
		req.Version = saslAuthenticateVersion
		req.SASLAuthBytes = msg
		resp := kmsg.NewPtrSASLAuthenticateResponse()
		if err := ex(ctx, req, resp); err != nil {
			return fail(brokerClosed("SaslAuthenticate", err))
		}
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			if resp.ErrorMessage != nil && *resp.ErrorMessage != "" {
				err = fmt.Errorf("%w: %s", err, *resp.ErrorMessage)
			}
			return fail(err)
		}
		lifetimeMillis = resp.SessionLifetimeMillis
		msg = nil
		if !done {
			if done, msg, err = session.Challenge(resp.SASLAuthBytes); err != nil {
				return fail(err)
			}
		}
	}
	lifetime := time.Duration(lifetimeMillis) * time.Millisecond
	if lifetimeMillis <= 0 {
		lifetime = 0
	} else if lifetimeMillis > maxSessionLifetime.Milliseconds() {
		lifetime = maxSessionLifetime
	}
	return lifetime, nil
}

// brokerClosed explains a connection that ends mid-conversation: some
// brokers (kfake among them) answer bad credentials by closing it.
func brokerClosed(api string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%s: the broker closed the connection (how some brokers reject credentials): %w", api, err)
	}
	return fmt.Errorf("%s: %w", api, err)
}

// reauthAfter is when to re-authenticate a session of the given lifetime:
// a little early (kgo's margin: 2-5%, at least one second), but never
// sooner than half the lifetime. reauthSchedule bounds it further.
func reauthAfter(lifetime time.Duration, jitter float64) time.Duration {
	margin := max(time.Second, time.Duration(float64(lifetime)*(0.02+0.03*jitter)))
	return max(lifetime-margin, lifetime/2)
}

// minReauthGap is the least time between two SaslHandshakes that start a
// re-authentication of one connection. Kafka refuses a re-authentication
// that starts less than one second after the previous one began
// (KafkaChannel.maybeBeginServerReauthentication,
// MIN_REAUTH_INTERVAL_ONE_SECOND_NANOS) with ILLEGAL_SASL_STATE, which
// costs the lane. The broker measures between reading the two handshakes,
// kproxy between sending them; the half-second margin absorbs a first
// handshake that a busy broker read later than the second. It costs
// nothing at lifetimes of 2 s and more, where re-authentication is due
// later anyway.
const minReauthGap = 1500 * time.Millisecond

// reauthSchedule says when, counted from the start of the previous
// authentication (its SaslHandshake), the lane re-authenticates: from hold
// on, client requests are parked rather than written; the SaslHandshake
// goes out at handshake or once the lane has drained, whichever is later.
//
// The broker's session ends one lifetime after the previous authentication
// completed, which is after it started; a client request it reads after
// that closes the connection, while a SaslHandshake still starts a
// re-authentication. So the hold must begin before the lifetime runs out,
// with a margin for the last request's trip, and the handshake must keep
// minReauthGap after the previous one. With lifetimes under 2 s the two
// cannot both be met by writing on: requests are parked from hold until the
// handshake, the only way to keep to both rules.
func reauthSchedule(lifetime time.Duration, jitter float64) (hold, handshake time.Duration) {
	handshake = max(reauthAfter(lifetime, jitter), minReauthGap)
	latestHold := lifetime - min(lifetime/4, time.Second)
	return min(handshake, latestHold), handshake
}
