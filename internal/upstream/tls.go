package upstream

import (
	"crypto/tls"
	"fmt"
	"net"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/tlsfiles"
)

// clientTLS makes the TLS configuration of each upstream dial. The CA
// bundle and the client certificate are re-read when their files change;
// established connections keep the certificate they were made with.
type clientTLS struct {
	base *tls.Config
	ca   *tlsfiles.Pool // nil: the system roots
}

func newClientTLS(c config.UpstreamTLS, onFail func(setting string) tlsfiles.FailureFunc) (*clientTLS, error) {
	t := &clientTLS{base: &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec // explicit operator choice, warned about at start-up
	}}
	if c.CAFile != "" {
		pool, err := tlsfiles.LoadPool(c.CAFile, onFail("upstream.tls.ca_file"))
		if err != nil {
			return nil, fmt.Errorf("upstream.tls.ca_file (%s): %w", config.EnvVar("upstream.tls.ca_file"), err)
		}
		t.ca = pool
	}
	if c.CertFile != "" {
		kp, err := tlsfiles.LoadKeyPair(c.CertFile, c.KeyFile, onFail("upstream.tls.cert_file"))
		if err != nil {
			return nil, fmt.Errorf("upstream.tls.cert_file/key_file (%s, %s): %w", config.EnvVar("upstream.tls.cert_file"), config.EnvVar("upstream.tls.key_file"), err)
		}
		// Asked for on every handshake, so a rotated certificate is
		// presented from the next connection on.
		t.base.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return kp.Certificate(), nil
		}
	}
	return t, nil
}

// config returns the TLS configuration for one dial of addr.
func (t *clientTLS) config(addr string) *tls.Config {
	cfg := t.base.Clone()
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		cfg.ServerName = host
	}
	if t.ca != nil {
		cfg.RootCAs = t.ca.CertPool()
	}
	return cfg
}
