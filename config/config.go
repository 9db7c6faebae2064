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
	Metrics         Metrics       `mapstructure:"metrics" yaml:"metrics"`
	Log             Log           `mapstructure:"log" yaml:"log"`
	Limits          Limits        `mapstructure:"limits" yaml:"limits"`
	Compat          Compat        `mapstructure:"compat" yaml:"compat"`
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout" yaml:"shutdown_timeout"`
	// ShutdownMode is what SIGTERM/SIGINT starts: wait_for_clients keeps
	// serving, and accepting, until no client connection has been open for
	// ShutdownQuietPeriod (the app beside kproxy has finished its last
	// commit and left); stop_accepting closes the listeners at once. Both
	// then let requests in flight finish, within ShutdownTimeout overall.
	ShutdownMode string `mapstructure:"shutdown_mode" yaml:"shutdown_mode"`
	// ShutdownQuietPeriod is how long no client connection must have been
	// open before a wait_for_clients shutdown ends the wait.
	ShutdownQuietPeriod time.Duration `mapstructure:"shutdown_quiet_period" yaml:"shutdown_quiet_period"`
	// ConfigWatchInterval is how often kproxy looks at the --config file
	// and reloads it, as on SIGHUP, when it changed (a mounted ConfigMap);
	// 0: only on SIGHUP.
	ConfigWatchInterval time.Duration `mapstructure:"config_watch_interval" yaml:"config_watch_interval"`
}

// Shutdown modes.
const (
	ShutdownWaitForClients = "wait_for_clients"
	ShutdownStopAccepting  = "stop_accepting"
)

// Upstream is how kproxy reaches the Kafka cluster.
type Upstream struct {
	// BootstrapServers are the seed brokers, host:port.
	BootstrapServers []string `mapstructure:"bootstrap_servers" yaml:"bootstrap_servers"`
	// DialTimeout bounds one TCP connect to a broker.
	DialTimeout time.Duration `mapstructure:"dial_timeout" yaml:"dial_timeout"`
	// IdleTimeout closes a lane with nothing in flight before the broker's
	// connections.max.idle.ms (10 minutes by default) would.
	IdleTimeout time.Duration `mapstructure:"idle_timeout" yaml:"idle_timeout"`
	// DialBackoffMax caps the wait before dialing a broker again after
	// failed dials to it: 100ms after the first failure, doubling up to
	// this. Dials in the wait fail at once. 0 disables the backoff.
	DialBackoffMax time.Duration `mapstructure:"dial_backoff_max" yaml:"dial_backoff_max"`
	// MetadataMaxAge is how often kproxy fetches the cluster's brokers
	// itself, as clients do with metadata.max.age.ms; it also fetches them
	// whenever a dial to a broker fails.
	MetadataMaxAge time.Duration `mapstructure:"metadata_max_age" yaml:"metadata_max_age"`
	// TLS to the brokers.
	TLS UpstreamTLS `mapstructure:"tls" yaml:"tls"`
	// SASL is the proxy's own identity at the brokers: every upstream
	// connection authenticates with it.
	SASL UpstreamSASL `mapstructure:"sasl" yaml:"sasl"`
	// Pool keeps ready upstream connections of closed sessions for the
	// next session (docs/ARCHITECTURE.md, "Upstream pool").
	Pool UpstreamPool `mapstructure:"pool" yaml:"pool"`
}

// UpstreamPool bounds the idle upstream connections kept for reuse.
type UpstreamPool struct {
	// MaxIdlePerBroker is how many idle connections (dialed, TLS and SASL
	// done) are kept per broker address; 0 disables the pool.
	MaxIdlePerBroker int `mapstructure:"max_idle_per_broker" yaml:"max_idle_per_broker"`
	// IdleTimeout closes a pooled connection this long after its last
	// traffic; at most upstream.idle_timeout, which bounds the same idle
	// time for a lane.
	IdleTimeout time.Duration `mapstructure:"idle_timeout" yaml:"idle_timeout"`
	// MaxAge closes a pooled connection this long after it was dialed,
	// however busy it has been, so that none lives on through the pool
	// forever.
	MaxAge time.Duration `mapstructure:"max_age" yaml:"max_age"`
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
	// ControllerPortBase: KRaft controller N, which a DescribeCluster that
	// asks for controllers names, listens on ControllerPortBase + N, apart
	// from the brokers. 0 lets the operating system pick a free port.
	ControllerPortBase int `mapstructure:"controller_port_base" yaml:"controller_port_base"`
	// TLS on the client-facing listeners (bootstrap and broker ports).
	TLS ListenTLS `mapstructure:"tls" yaml:"tls"`
	// SASL decides what a client's SaslHandshake gets.
	SASL ListenSASL `mapstructure:"sasl" yaml:"sasl"`
	// HandshakeTimeout bounds a client's TLS handshake and, with
	// sasl.mode terminate, its SASL authentication, from accept.
	HandshakeTimeout time.Duration `mapstructure:"handshake_timeout" yaml:"handshake_timeout"`
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

// DefaultGroupName is the group of every API no other group names.
const DefaultGroupName = "default"

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
	// UnknownAPIs is what happens to API keys this binary's kmsg does not
	// know (newer Kafka APIs, vendor keys) and to versions newer than it
	// knows, whose answers could carry broker addresses kproxy cannot
	// rewrite: hide (left out of ApiVersions or capped, and a client that
	// sends one anyway is disconnected) or forward (listed and forwarded
	// unread).
	UnknownAPIs string `mapstructure:"unknown_apis" yaml:"unknown_apis"`
}

// routing.unknown_apis values.
const (
	UnknownAPIsHide    = "hide"
	UnknownAPIsForward = "forward"
)

// Compat is what kproxy does for clients older than the brokers.
type Compat struct {
	// VersionBridge translates requests of protocol versions the brokers
	// removed (Kafka 4.0, KIP-896) up to a version they accept, and the
	// answers back down (docs/BRIDGE.md): auto bridges exactly the
	// versions the brokers lack; off forwards every version as sent.
	VersionBridge string `mapstructure:"version_bridge" yaml:"version_bridge"`
}

// compat.version_bridge values.
const (
	VersionBridgeAuto = "auto"
	VersionBridgeOff  = "off"
)

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
	// DebugEndpoints serves /debug/sessions on an admin address off
	// loopback. On loopback it is always served: client addresses and ids
	// are operational data, not for an open port by default.
	DebugEndpoints bool `mapstructure:"debug_endpoints" yaml:"debug_endpoints"`
}

// Metrics tunes what /metrics exports beyond the fixed set.
type Metrics struct {
	// ClientIDLabel adds per-client copies of the request, byte and latency
	// metrics, labelled with the session's client.id.
	ClientIDLabel bool `mapstructure:"client_id_label" yaml:"client_id_label"`
	// MaxClientIDs bounds the distinct client_id values; later ids are
	// counted as "other".
	MaxClientIDs int `mapstructure:"max_client_ids" yaml:"max_client_ids"`
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
	// and ShareFetch MaxWaitMillis, JoinGroup rebalance timeout, Produce and admin
	// TimeoutMillis; none for other requests) a broker may stay silent
	// before the session is closed rather than waited on forever.
	UpstreamAnswerGrace time.Duration `mapstructure:"upstream_answer_grace" yaml:"upstream_answer_grace"`
	// MaxBufferedBytes bounds every byte kproxy holds for its clients:
	// request frames being read or queued for a broker, answers waiting
	// for a client, rewrites. When it is spent kproxy stops reading from
	// clients (Kafka's queued.max.request.bytes).
	MaxBufferedBytes int `mapstructure:"max_buffered_bytes" yaml:"max_buffered_bytes"`
	// ClientIdleTimeout closes a connection that owes nothing and sent no
	// complete request for this long (Kafka's connections.max.idle.ms);
	// 0 never does.
	ClientIdleTimeout time.Duration `mapstructure:"client_idle_timeout" yaml:"client_idle_timeout"`
	// ClientWriteTimeout closes a session whose client reads nothing of
	// its answers for this long.
	ClientWriteTimeout time.Duration `mapstructure:"client_write_timeout" yaml:"client_write_timeout"`
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

// fieldError names the key, the environment variable that sets it (for a
// map entry, the map's) and the bad value.
func fieldError(key string, value any, format string, args ...any) error {
	return fmt.Errorf("%s (%s) %q: %s", key, EnvVar(envKey(key)), fmt.Sprint(value), fmt.Sprintf(format, args...))
}
