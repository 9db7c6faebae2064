package listener

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/metrics"
	"github.com/kproxy/kproxy/internal/tlsfiles"
)

// reasonTLSHandshake closes a session whose client failed the TLS
// handshake (kproxy_session_closes_total{reason}).
const reasonTLSHandshake = "tls_handshake_failed"

// newServerTLS is the TLS configuration of every client-facing listener,
// nil without listen.tls.cert_file. Certificate, key and client CAs are
// re-read when their files change; sessions already open keep theirs.
func newServerTLS(c config.ListenTLS, onFail func(setting string) tlsfiles.FailureFunc) (*tls.Config, error) {
	if c.CertFile == "" {
		return nil, nil
	}
	kp, err := tlsfiles.LoadKeyPair(c.CertFile, c.KeyFile, onFail("listen.tls.cert_file"))
	if err != nil {
		return nil, fmt.Errorf("listen.tls.cert_file/key_file (%s, %s): %w", config.EnvVar("listen.tls.cert_file"), config.EnvVar("listen.tls.key_file"), err)
	}
	base := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return kp.Certificate(), nil
		},
	}
	if c.ClientCAFile == "" {
		return base, nil
	}
	pool, err := tlsfiles.LoadPool(c.ClientCAFile, onFail("listen.tls.client_ca_file"))
	if err != nil {
		return nil, fmt.Errorf("listen.tls.client_ca_file (%s): %w", config.EnvVar("listen.tls.client_ca_file"), err)
	}
	base.ClientAuth = tls.RequireAndVerifyClientCert
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cfg := base.Clone()
			cfg.ClientCAs = pool.CertPool()
			return cfg, nil
		},
	}, nil
}

// listen binds a client-facing listener, with TLS when configured.
func (s *Server) listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil || s.tls == nil {
		return ln, err
	}
	return tls.NewListener(ln, s.tls), nil
}

// handshake completes a TLS client's handshake before the first frame, so
// that a failure is logged with its reason instead of as a read error.
func (s *session) handshake() (string, error) {
	tc, ok := s.conn.(*tls.Conn)
	if !ok {
		return "", nil
	}
	// listen.handshake_timeout: a client that connects and says nothing
	// does not hold a session forever.
	timeout := s.srv.cfg.Listen.HandshakeTimeout
	_ = tc.SetDeadline(s.start.Add(timeout))
	if err := tc.Handshake(); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return reasonHandshakeTimeout, fmt.Errorf("client did not complete the TLS handshake within listen.handshake_timeout %v: %w", timeout, err)
		}
		return reasonTLSHandshake, fmt.Errorf("client tls handshake: %w", err)
	}
	_ = tc.SetDeadline(time.Time{})
	s.view.tlsPrincipal(tc.ConnectionState())
	return "", nil
}

// warnInsecure logs, once at start-up, every setting that exposes traffic
// or trusts more than it should.
func (s *Server) warnInsecure() {
	up := s.cfg.Upstream
	if up.TLS.Enabled && up.TLS.InsecureSkipVerify {
		s.log.Warn("upstream.tls.insecure_skip_verify is set: broker certificates are not verified; anyone on the path can impersonate the cluster")
	}
	if !up.TLS.Enabled && (up.SASL.Mechanism == config.SASLPlain || up.SASL.Mechanism == config.SASLOAuthBearer) {
		s.log.Warn("upstream sasl sends its secret in clear without upstream.tls", zap.String("mechanism", up.SASL.Mechanism))
	}
	if s.tls == nil && !isLoopback(s.bindHost) {
		s.log.Warn("client listeners are not on loopback and have no TLS (listen.tls): client traffic, and any client credentials, cross the network in clear", zap.String("bind_host", s.bindHost))
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// tlsReloadFailed returns the report of a failed certificate or CA reload
// for one setting: a warning and kproxy_tls_reload_failures_total.
func tlsReloadFailed(log *zap.Logger, m *metrics.Metrics) func(setting string) tlsfiles.FailureFunc {
	return func(setting string) tlsfiles.FailureFunc {
		failures := m.TLSReloadFailures.WithLabelValues(setting)
		return func(err error) {
			failures.Inc()
			log.Warn("tls files changed but did not load", zap.String("setting", setting), zap.Error(err))
		}
	}
}
