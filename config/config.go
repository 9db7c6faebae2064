// Package config loads kproxy's configuration from a YAML file and KPROXY_*
// environment variables with viper, and validates it. It is the only package
// that knows about viper: everyone else receives the typed Config.
package config

import (
	"fmt"
	"time"
)

// Config is kproxy's whole configuration. The yaml/mapstructure key names
// are a public contract: tooling outside the repo sets them.
type Config struct {
	Upstream        Upstream      `mapstructure:"upstream" yaml:"upstream"`
	Listen          Listen        `mapstructure:"listen" yaml:"listen"`
	Routing         Routing       `mapstructure:"routing" yaml:"routing"`
	Admin           Admin         `mapstructure:"admin" yaml:"admin"`
	Log             Log           `mapstructure:"log" yaml:"log"`
	Limits          Limits        `mapstructure:"limits" yaml:"limits"`
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout" yaml:"shutdown_timeout"`
}

// Upstream is how kproxy reaches the Kafka cluster.
type Upstream struct {
	// BootstrapServers are the seed brokers, host:port.
	BootstrapServers []string `mapstructure:"bootstrap_servers" yaml:"bootstrap_servers"`
	// DialTimeout bounds one TCP connect to a broker.
	DialTimeout time.Duration `mapstructure:"dial_timeout" yaml:"dial_timeout"`
	// IdleTimeout closes a lane with nothing in flight before the broker's
	// connections.max.idle.ms (9 minutes by default) would.
	IdleTimeout time.Duration `mapstructure:"idle_timeout" yaml:"idle_timeout"`
	// DialBackoffMax caps the wait before dialing a broker again after
	// failed dials to it: 100ms after the first failure, doubling up to
	// this. Dials in the wait fail at once. 0 disables the backoff.
	DialBackoffMax time.Duration `mapstructure:"dial_backoff_max" yaml:"dial_backoff_max"`
	// Pool keeps connections dialed ahead, ready for lanes.
	Pool UpstreamPool `mapstructure:"pool" yaml:"pool"`
	// TLS to the brokers.
	TLS UpstreamTLS `mapstructure:"tls" yaml:"tls"`
	// SASL is the proxy's own identity at the brokers: every upstream
	// connection authenticates with it.
	SASL UpstreamSASL `mapstructure:"sasl" yaml:"sasl"`
}

// UpstreamPool is the warm pool: per broker, up to MaxIdlePerBroker
// connections dialed ahead (TCP, TLS and SASL done) that a new lane takes
// instead of dialing. Each is used by one lane only, never returned.
type UpstreamPool struct {
	// MaxIdlePerBroker bounds the ready connections kept per broker
	// address; 0 disables the pool.
	MaxIdlePerBroker int `mapstructure:"max_idle_per_broker" yaml:"max_idle_per_broker"`
	// IdleTimeout closes a pooled connection nobody took for this long,
	// well before the broker's connections.max.idle.ms would.
	IdleTimeout time.Duration `mapstructure:"idle_timeout" yaml:"idle_timeout"`
}

// UpstreamTLS configures TLS to the brokers. Verification is on unless
// InsecureSkipVerify says otherwise.
type UpstreamTLS struct {
	Enabled bool `mapstructure:"enabled" yaml:"enabled"`
	// CAFile is a PEM bundle of the CAs that sign the brokers'
	// certificates; empty: the system roots.
	CAFile string `mapstructure:"ca_file" yaml:"ca_file"`
	// CertFile and KeyFile are the proxy's client certificate (mutual TLS).
	// Both are re-read when they change on disk.
	CertFile string `mapstructure:"cert_file" yaml:"cert_file"`
	KeyFile  string `mapstructure:"key_file" yaml:"key_file"`
	// ServerName overrides the name verified in the brokers' certificates;
	// empty: the host of the address dialed.
	ServerName         string `mapstructure:"server_name" yaml:"server_name"`
	InsecureSkipVerify bool   `mapstructure:"insecure_skip_verify" yaml:"insecure_skip_verify"`
}

// UpstreamSASL is the proxy's SASL identity at the brokers.
type UpstreamSASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER;
	// empty: no SASL.
	Mechanism string `mapstructure:"mechanism" yaml:"mechanism"`
	Username  string `mapstructure:"username" yaml:"username"`
	// Password is a secret: prefer PasswordFile. Redacted in output.
	Password string `mapstructure:"password" yaml:"password"`
	// PasswordFile holds the password; re-read on every authentication.
	PasswordFile string `mapstructure:"password_file" yaml:"password_file"`
	// TokenFile holds the OAUTHBEARER token; re-read on every
	// authentication, so a sidecar can refresh it.
	TokenFile string `mapstructure:"token_file" yaml:"token_file"`
}

// Listen is the client-facing side.
type Listen struct {
	// Bootstrap is the address clients are configured with.
	Bootstrap string `mapstructure:"bootstrap" yaml:"bootstrap"`
	// AdvertisedHost is the host written into rewritten broker addresses.
	AdvertisedHost string `mapstructure:"advertised_host" yaml:"advertised_host"`
	// BrokerPortBase: broker N listens on BrokerPortBase + N. 0 lets the
	// operating system pick a free port per broker (tests, demos).
	BrokerPortBase int `mapstructure:"broker_port_base" yaml:"broker_port_base"`
	// BrokerPorts overrides the port of individual node ids.
	BrokerPorts map[int32]int `mapstructure:"broker_ports" yaml:"broker_ports"`
	// TLS on the client-facing listeners (bootstrap and broker ports).
	TLS ListenTLS `mapstructure:"tls" yaml:"tls"`
	// SASL decides what a client's SaslHandshake gets.
	SASL ListenSASL `mapstructure:"sasl" yaml:"sasl"`
}

// ListenTLS turns TLS on for every client-facing listener when CertFile is
// set. Files are re-read when they change on disk.
type ListenTLS struct {
	CertFile string `mapstructure:"cert_file" yaml:"cert_file"`
	KeyFile  string `mapstructure:"key_file" yaml:"key_file"`
	// ClientCAFile: when set, clients must present a certificate signed by
	// one of these CAs (mutual TLS).
	ClientCAFile string `mapstructure:"client_ca_file" yaml:"client_ca_file"`
}

// ListenSASL is client-side SASL.
type ListenSASL struct {
	// Mode is reject (answer UNSUPPORTED_SASL_MECHANISM) or terminate
	// (kproxy authenticates clients itself against Users).
	Mode string `mapstructure:"mode" yaml:"mode"`
	// Mechanisms offered to clients in terminate mode.
	Mechanisms []string `mapstructure:"mechanisms" yaml:"mechanisms"`
	// Users maps a user name to where its password is: "file:PATH" or
	// "env:VARIABLE". Passwords themselves never appear in the config.
	Users map[string]string `mapstructure:"users" yaml:"users"`
}

// Routing decides which upstream connection a request travels on.
type Routing struct {
	// Groups maps a group name to the Kafka API names that travel on its
	// own upstream connection; every other API goes to "default".
	Groups map[string][]string `mapstructure:"groups" yaml:"groups"`
	// Ordering is how responses are written back to a client: strict,
	// relaxed, or auto (per session, from the client's software name and
	// ClientRules).
	Ordering string `mapstructure:"ordering" yaml:"ordering"`
	// ClientRules choose the ordering of auto sessions by client.id; the
	// first rule whose regular expression matches wins.
	ClientRules []ClientRule `mapstructure:"client_rules" yaml:"client_rules"`
	// FetchWaitBudget caps the MaxWaitMillis of a strict session's Fetch
	// and ShareFetch requests while answers are being held behind its long
	// polls (see HolWindow). 0 disables the cap.
	FetchWaitBudget time.Duration `mapstructure:"fetch_wait_budget" yaml:"fetch_wait_budget"`
	// HolWindow is how long after the last answer held behind an unfinished
	// Fetch the cap stays on.
	HolWindow time.Duration `mapstructure:"hol_window" yaml:"hol_window"`
}

// ClientRule sets the ordering of auto sessions whose client.id matches.
type ClientRule struct {
	// ClientID is a regular expression (RE2) matched against the request
	// header's client.id; anchor it (^…$) to match the whole id.
	ClientID string `mapstructure:"client_id" yaml:"client_id"`
	// Ordering is strict or relaxed.
	Ordering string `mapstructure:"ordering" yaml:"ordering"`
}

// Admin is the HTTP server for metrics and health.
type Admin struct {
	Listen string `mapstructure:"listen" yaml:"listen"`
}

// Log configures zap.
type Log struct {
	Level  string `mapstructure:"level" yaml:"level"`
	Format string `mapstructure:"format" yaml:"format"`
}

// Limits protect the proxy and the brokers from a misbehaving client.
type Limits struct {
	MaxFrameBytes            int `mapstructure:"max_frame_bytes" yaml:"max_frame_bytes"`
	MaxInflightPerConnection int `mapstructure:"max_inflight_per_connection" yaml:"max_inflight_per_connection"`
	// MaxClientConnections bounds open client connections; beyond it a new
	// connection is closed at once.
	MaxClientConnections int `mapstructure:"max_client_connections" yaml:"max_client_connections"`
	// UpstreamAnswerGrace is how long past a request's own timeout (Fetch
	// MaxWaitMillis, JoinGroup rebalance timeout, Produce and admin
	// TimeoutMillis; none for other requests) a broker may stay silent
	// before the session is closed rather than waited on forever.
	UpstreamAnswerGrace time.Duration `mapstructure:"upstream_answer_grace" yaml:"upstream_answer_grace"`
}

// Ordering modes.
const (
	OrderingStrict  = "strict"  // answers in request order
	OrderingRelaxed = "relaxed" // answers as soon as they are complete
	OrderingAuto    = "auto"    // per session: relaxed for clients known to match by correlation id
)

// SASL mechanisms and client-side SASL modes.
const (
	SASLPlain       = "PLAIN"
	SASLScram256    = "SCRAM-SHA-256"
	SASLScram512    = "SCRAM-SHA-512"
	SASLOAuthBearer = "OAUTHBEARER"

	SASLModeReject    = "reject"
	SASLModeTerminate = "terminate"
)

// EnvVar names the environment variable that sets a key.
func EnvVar(key string) string {
	out := []byte(envPrefix + "_")
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c == '.':
			c = '_'
		case c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		}
		out = append(out, c)
	}
	return string(out)
}

// fieldError names the key, its env var and the bad value.
func fieldError(key string, value any, format string, args ...any) error {
	return fmt.Errorf("%s (%s) %q: %s", key, EnvVar(key), fmt.Sprint(value), fmt.Sprintf(format, args...))
}
