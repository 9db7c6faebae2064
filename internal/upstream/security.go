package upstream

import (
	"github.com/kproxy/kproxy/config"
)

// security is how new upstream connections are secured.
type security struct {
	tls  *clientTLS // nil: plaintext
	sasl *saslAuth  // nil: no SASL
}

// Reconfigure makes connections dialed from now on, and re-authentications
// of open ones, use the TLS and SASL settings of cfg; open connections keep
// their TLS session. It reads the TLS files and checks the SASL secrets
// first, and changes nothing when that fails; otherwise it forgets the
// brokers' past TLS and SASL refusals.
func (d *Dialer) Reconfigure(cfg config.Upstream) error {
	var sec security
	if cfg.TLS.Enabled {
		t, err := newClientTLS(cfg.TLS, d.onTLSFail)
		if err != nil {
			return err
		}
		sec.tls = t
	}
	a, err := newSASLAuth(cfg.SASL)
	if err != nil {
		return err
	}
	sec.sasl = a
	d.sec.Store(&sec)
	// Failures with the old settings say nothing about the new ones.
	d.ForgetAuthFailures(func(string) bool { return false })
	return nil
}
