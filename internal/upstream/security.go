package upstream

import (
	"github.com/kproxy/kproxy/config"
)

// security is how new upstream connections are secured.
type security struct {
	tls  *clientTLS // nil: plaintext
	sasl *saslAuth  // nil: no SASL
	// gen counts the settings Reconfigure applied: a connection dialed
	// under an older one is stale (dialedConn.stale).
	gen uint64
}

// Reconfigure makes connections dialed from now on, and re-authentications
// of open ones, use the TLS and SASL settings of cfg. Open connections keep
// their TLS session and become stale: the pool drops them (DropStale, Take,
// put) and a lane closes its own once nothing is in flight on it
// (retireStaleLocked). It reads the TLS files and checks the SASL secrets
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
	if old := d.sec.Load(); old != nil {
		sec.gen = old.gen + 1
	}
	d.sec.Store(&sec)
	// Failures with the old settings say nothing about the new ones.
	d.ForgetAuthFailures(func(string) bool { return false })
	return nil
}
