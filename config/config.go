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
}

// Routing decides which upstream connection a request travels on.
type Routing struct {
	// Groups maps a group name to the Kafka API names that travel on its
	// own upstream connection; every other API goes to "default".
	Groups map[string][]string `mapstructure:"groups" yaml:"groups"`
	// Ordering is how responses are written back to a client.
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
	OrderingStrict = "strict"
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
