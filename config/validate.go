package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"regexp"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Validate reports every problem at once, each naming the key, its
// environment variable and the bad value. It has no side effects.
func (c Config) Validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(c.Upstream.BootstrapServers) == 0 {
		add(fieldError("upstream.bootstrap_servers", "", "is empty: set at least one seed broker host:port"))
	}
	for _, s := range c.Upstream.BootstrapServers {
		add(hostPort("upstream.bootstrap_servers", s, false))
	}
	add(positive("upstream.dial_timeout", c.Upstream.DialTimeout))
	add(positive("upstream.idle_timeout", c.Upstream.IdleTimeout))
	add(positive("upstream.metadata_max_age", c.Upstream.MetadataMaxAge))
	add(validatePool(c.Upstream))
	if c.Upstream.DialBackoffMax < 0 {
		add(fieldError("upstream.dial_backoff_max", c.Upstream.DialBackoffMax, "must not be negative (0 disables the backoff)"))
	}

	add(hostPort("listen.bootstrap", c.Listen.Bootstrap, true))
	if c.Listen.AdvertisedHost == "" {
		add(fieldError("listen.advertised_host", "", "is empty: clients need a host to connect to"))
	}
	if c.Listen.BrokerPortBase < 0 || c.Listen.BrokerPortBase > 65535 {
		add(fieldError("listen.broker_port_base", c.Listen.BrokerPortBase, "not a port from 0 to 65535"))
	}
	if c.Listen.ControllerPortBase < 0 || c.Listen.ControllerPortBase > 65535 {
		add(fieldError("listen.controller_port_base", c.Listen.ControllerPortBase, "not a port from 0 to 65535"))
	}
	for id, port := range c.Listen.BrokerPorts {
		if id < 0 || port < 1 || port > 65535 {
			add(fieldError("listen.broker_ports", fmt.Sprintf("%d=%d", id, port), "want a node id >= 0 mapped to a port from 1 to 65535"))
		}
	}

	add(validateGroups(c.Routing.Groups))
	add(validateOrdering(c.Routing))
	if b := c.Compat.VersionBridge; b != VersionBridgeAuto && b != VersionBridgeOff {
		add(fieldError("compat.version_bridge", b, "want %s or %s", VersionBridgeAuto, VersionBridgeOff))
	}

	add(hostPort("admin.listen", c.Admin.Listen, true))
	if c.Metrics.MaxClientIDs < 1 {
		add(fieldError("metrics.max_client_ids", c.Metrics.MaxClientIDs, "must be at least 1"))
	}
	if _, err := zapcore.ParseLevel(c.Log.Level); err != nil {
		add(fieldError("log.level", c.Log.Level, "want debug, info, warn or error"))
	}
	if c.Log.Format != "json" && c.Log.Format != "console" {
		add(fieldError("log.format", c.Log.Format, "want json or console"))
	}
	if c.Limits.MaxFrameBytes < 1024 {
		add(fieldError("limits.max_frame_bytes", c.Limits.MaxFrameBytes, "must be at least 1024"))
	}
	if c.Limits.MaxInflightPerConnection < 1 {
		add(fieldError("limits.max_inflight_per_connection", c.Limits.MaxInflightPerConnection, "must be at least 1"))
	}
	if c.Limits.MaxClientConnections < 1 {
		add(fieldError("limits.max_client_connections", c.Limits.MaxClientConnections, "must be at least 1"))
	}
	add(positive("limits.upstream_answer_grace", c.Limits.UpstreamAnswerGrace))
	if need := bufferedBytesFor(c.Limits.MaxFrameBytes); c.Limits.MaxBufferedBytes < need {
		add(fieldError("limits.max_buffered_bytes", c.Limits.MaxBufferedBytes, "must hold a frame of limits.max_frame_bytes and a session's share: at least %d for max_frame_bytes %d", need, c.Limits.MaxFrameBytes))
	}
	if c.Limits.ClientIdleTimeout < 0 {
		add(fieldError("limits.client_idle_timeout", c.Limits.ClientIdleTimeout, "must be 0 (never) or positive"))
	}
	add(positive("limits.client_write_timeout", c.Limits.ClientWriteTimeout))
	add(positive("listen.handshake_timeout", c.Listen.HandshakeTimeout))
	add(positive("shutdown_timeout", c.ShutdownTimeout))
	if c.ShutdownMode != ShutdownWaitForClients && c.ShutdownMode != ShutdownStopAccepting {
		add(fieldError("shutdown_mode", c.ShutdownMode, "want %s or %s", ShutdownWaitForClients, ShutdownStopAccepting))
	}
	add(positive("shutdown_quiet_period", c.ShutdownQuietPeriod))
	if c.ConfigWatchInterval < 0 {
		add(fieldError("config_watch_interval", c.ConfigWatchInterval, "must not be negative (0: reload only on SIGHUP)"))
	}
	if c.ShutdownQuietPeriod >= c.ShutdownTimeout && c.ShutdownTimeout > 0 {
		add(fieldError("shutdown_quiet_period", c.ShutdownQuietPeriod, "must be shorter than shutdown_timeout (%v)", c.ShutdownTimeout))
	}
	add(c.Upstream.TLS.validate())
	add(c.Upstream.SASL.validate())
	add(c.Listen.TLS.validate())
	add(c.Listen.SASL.validate())
	return errors.Join(errs...)
}

// validate checks consistency only: files are read when the proxy starts,
// so that Validate stays free of side effects.
func (t UpstreamTLS) validate() error {
	var errs []error
	if !t.Enabled {
		for _, f := range [][2]string{{"ca_file", t.CAFile}, {"cert_file", t.CertFile}, {"key_file", t.KeyFile}, {"server_name", t.ServerName}} {
			if f[1] != "" {
				errs = append(errs, fieldError("upstream.tls."+f[0], f[1], "set but upstream.tls.enabled is false"))
			}
		}
		if t.InsecureSkipVerify {
			errs = append(errs, fieldError("upstream.tls.insecure_skip_verify", true, "set but upstream.tls.enabled is false"))
		}
	}
	errs = append(errs, pairedFiles("upstream.tls", t.CertFile, t.KeyFile))
	return errors.Join(errs...)
}

func pairedFiles(prefix, cert, key string) error {
	switch {
	case cert != "" && key == "":
		return fieldError(prefix+".key_file", "", "is empty but %s.cert_file is set: a certificate needs its key", prefix)
	case cert == "" && key != "":
		return fieldError(prefix+".cert_file", "", "is empty but %s.key_file is set: a key needs its certificate", prefix)
	}
	return nil
}

func (s UpstreamSASL) validate() error {
	var errs []error
	bad := func(key string, value any, format string, args ...any) {
		errs = append(errs, fieldError("upstream.sasl."+key, value, format, args...))
	}
	// The password's value never goes into an error message.
	const hidden = "[redacted]"
	switch s.Mechanism {
	case "":
		for _, f := range [][2]string{{"username", s.Username}, {"password_file", s.PasswordFile}, {"token_file", s.TokenFile}} {
			if f[1] != "" {
				bad(f[0], f[1], "set but upstream.sasl.mechanism is empty")
			}
		}
		if s.Password != "" {
			bad("password", hidden, "set but upstream.sasl.mechanism is empty")
		}
	case SASLPlain, SASLScram256, SASLScram512:
		if s.Username == "" {
			bad("username", "", "is empty: %s needs a user", s.Mechanism)
		}
		switch {
		case s.Password == "" && s.PasswordFile == "":
			bad("password_file", "", "is empty, and so is upstream.sasl.password: %s needs a password", s.Mechanism)
		case s.Password != "" && s.PasswordFile != "":
			bad("password", hidden, "set together with upstream.sasl.password_file: set one")
		}
		if s.TokenFile != "" {
			bad("token_file", s.TokenFile, "is for OAUTHBEARER, not %s", s.Mechanism)
		}
	case SASLOAuthBearer:
		if s.TokenFile == "" {
			bad("token_file", "", "is empty: OAUTHBEARER needs a token file")
		}
		if s.Password != "" || s.PasswordFile != "" {
			bad("password", hidden, "is not used by OAUTHBEARER; the token comes from upstream.sasl.token_file")
		}
	default:
		bad("mechanism", s.Mechanism, "want PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER (or empty for no SASL)")
	}
	return errors.Join(errs...)
}

func (t ListenTLS) validate() error {
	err := pairedFiles("listen.tls", t.CertFile, t.KeyFile)
	if t.ClientCAFile != "" && t.CertFile == "" {
		err = errors.Join(err, fieldError("listen.tls.client_ca_file", t.ClientCAFile, "set but listen.tls.cert_file is empty: mutual TLS needs TLS"))
	}
	return err
}

func (s ListenSASL) validate() error {
	var errs []error
	switch s.Mode {
	case SASLModeReject:
		if len(s.Users) > 0 {
			errs = append(errs, fieldError("listen.sasl.users", strings.Join(sortedKeys(s.Users), ","), "set but listen.sasl.mode is reject; set mode terminate"))
		}
	case SASLModeTerminate:
		if len(s.Users) == 0 {
			errs = append(errs, fieldError("listen.sasl.users", "", "is empty: terminate mode needs at least one user"))
		}
		if len(s.Mechanisms) == 0 {
			errs = append(errs, fieldError("listen.sasl.mechanisms", "", "is empty: terminate mode needs at least one mechanism"))
		}
	default:
		errs = append(errs, fieldError("listen.sasl.mode", s.Mode, "want %s or %s", SASLModeReject, SASLModeTerminate))
	}
	for _, m := range s.Mechanisms {
		if m != SASLPlain && m != SASLScram256 && m != SASLScram512 {
			errs = append(errs, fieldError("listen.sasl.mechanisms", m, "want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"))
		}
	}
	for _, user := range sortedKeys(s.Users) {
		ref := s.Users[user]
		switch {
		case user == "":
			errs = append(errs, fieldError("listen.sasl.users", ref, "user name is empty"))
		case !IsSecretRef(ref):
			// Not echoed: it may be a password typed in by mistake.
			errs = append(errs, fieldError("listen.sasl.users."+user, "[redacted]", `want "file:PATH" or "env:VARIABLE" naming where the password is; passwords are never written into the configuration`))
		}
	}
	return errors.Join(errs...)
}

// IsSecretRef reports whether ref names where a secret is ("file:PATH" or
// "env:VARIABLE") rather than being one.
func IsSecretRef(ref string) bool {
	kind, name, ok := strings.Cut(ref, ":")
	return ok && name != "" && (kind == "file" || kind == "env")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func positive[T ~int64](key string, d T) error {
	if d <= 0 {
		return fieldError(key, d, "must be positive")
	}
	return nil
}

// hostPort checks a host:port; listen addresses may leave the host empty
// (all interfaces) and use port 0 (any free port).
func hostPort(key, addr string, listen bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		msg := err.Error()
		if i := strings.LastIndex(msg, ": "); i >= 0 {
			msg = msg[i+2:]
		}
		return fieldError(key, addr, "%s", msg)
	}
	if !listen && host == "" {
		return fieldError(key, addr, "missing host")
	}
	p, err := parsePort(port)
	if err != nil {
		return fieldError(key, addr, "%v", err)
	}
	if !listen && p == 0 {
		return fieldError(key, addr, "port 0 cannot be dialed")
	}
	return nil
}

// validateGroups checks API names against the protocol this binary knows
// and that no API is claimed by two groups.
func validateGroups(groups map[string][]string) error {
	known := map[string]bool{}
	for _, name := range knownAPIs() {
		known[strings.ToLower(name)] = true
	}
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	sort.Strings(names)
	var errs []error
	owner := map[string]string{}
	for _, g := range names {
		if g == "" {
			errs = append(errs, fieldError("routing.groups", g, "group name is empty"))
		}
		for _, api := range groups[g] {
			lower := strings.ToLower(api)
			if !known[lower] {
				errs = append(errs, fieldError("routing.groups."+g, api, "unknown Kafka API name"))
				continue
			}
			if prev, dup := owner[lower]; dup {
				errs = append(errs, fieldError("routing.groups."+g, api, "already in group %q", prev))
				continue
			}
			owner[lower] = g
		}
	}
	errs = append(errs, sameLane(owner, "ShareFetch", "ShareAcknowledge", "they share one share-session epoch, which a broker keeps per connection"))
	return errors.Join(errs...)
}

// sameLane refuses a configuration that sends two APIs over different
// upstream connections. An API no group names goes to the default group.
func sameLane(owner map[string]string, a, b, why string) error {
	ga, gb := owner[strings.ToLower(a)], owner[strings.ToLower(b)]
	if ga == "" {
		ga = DefaultGroupName
	}
	if gb == "" {
		gb = DefaultGroupName
	}
	if ga == gb {
		return nil
	}
	return fieldError("routing.groups", a+","+b, "%s is in group %q and %s in group %q: put both in one group, %s", a, ga, b, gb, why)
}

// knownAPIs are the names of every API key this binary's kmsg knows, in key
// order.
func knownAPIs() []string {
	var names []string
	for k := range int16(kmsg.MaxKey + 1) {
		if kmsg.RequestForKey(k) != nil {
			names = append(names, kmsg.NameForKey(k))
		}
	}
	return names
}

// validateOrdering checks the ordering mode, the client rules and the fetch
// wait budget.
func validateOrdering(r Routing) error {
	var errs []error
	switch r.Ordering {
	case OrderingStrict, OrderingRelaxed, OrderingAuto:
	default:
		errs = append(errs, fieldError("routing.ordering", r.Ordering, "want %s, %s or %s", OrderingStrict, OrderingRelaxed, OrderingAuto))
	}
	for i, rule := range r.ClientRules {
		if rule.ClientID == "" {
			errs = append(errs, fieldError("routing.client_rules", rule.ClientID, "rule %d: client_id is empty", i+1))
		} else if _, err := regexp.Compile(rule.ClientID); err != nil {
			errs = append(errs, fieldError("routing.client_rules", rule.ClientID, "rule %d: client_id is not a regular expression: %v", i+1, err))
		}
		if rule.Ordering != OrderingStrict && rule.Ordering != OrderingRelaxed {
			errs = append(errs, fieldError("routing.client_rules", rule.Ordering, "rule %d (client_id %q): ordering: want %s or %s", i+1, rule.ClientID, OrderingStrict, OrderingRelaxed))
		}
	}
	if b := r.FetchWaitBudget; b < 0 || b > 0 && b < time.Millisecond || b > math.MaxInt32*time.Millisecond {
		errs = append(errs, fieldError("routing.fetch_wait_budget", b, "want 0 (off) or from 1ms to %v (MaxWaitMillis is an int32 of milliseconds)", math.MaxInt32*time.Millisecond))
	}
	errs = append(errs, positive("routing.hol_window", r.HolWindow))
	if r.UnknownAPIs != UnknownAPIsHide && r.UnknownAPIs != UnknownAPIsForward {
		errs = append(errs, fieldError("routing.unknown_apis", r.UnknownAPIs, "want %s or %s", UnknownAPIsHide, UnknownAPIsForward))
	}
	return errors.Join(errs...)
}

func validatePool(u Upstream) error {
	p := u.Pool
	switch {
	case p.MaxIdlePerBroker < 0:
		return fieldError("upstream.pool.max_idle_per_broker", p.MaxIdlePerBroker, "must not be negative (0 disables the pool)")
	case p.MaxIdlePerBroker == 0:
		return nil
	case p.IdleTimeout <= 0:
		return fieldError("upstream.pool.idle_timeout", p.IdleTimeout, "must be positive while the pool is on")
	case p.IdleTimeout > u.IdleTimeout:
		return fieldError("upstream.pool.idle_timeout", p.IdleTimeout,
			"must not exceed upstream.idle_timeout (%v): a connection idle that long is closed, in a lane or in the pool", u.IdleTimeout)
	case p.MaxAge <= 0:
		return fieldError("upstream.pool.max_age", p.MaxAge, "must be positive while the pool is on")
	}
	return nil
}

// bufferedBytesFor is the smallest limits.max_buffered_bytes that lets a
// frame of maxFrame bytes through: request frames may use all but a
// sixteenth of the budget (the reserve for the answers clients wait on),
// and a frame buffer up to 64 MiB is a power of two (internal/bufpool).
func bufferedBytesFor(maxFrame int) int {
	frame := maxFrame + 4
	if frame <= 64<<20 {
		c := 512
		for c < frame {
			c <<= 1
		}
		frame = c
	}
	return (frame*16 + 14) / 15
}
