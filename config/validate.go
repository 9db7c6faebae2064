package config

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"

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
	for id, port := range c.Listen.BrokerPorts {
		if id < 0 || port < 1 || port > 65535 {
			add(fieldError("listen.broker_ports", fmt.Sprintf("%d=%d", id, port), "want a node id >= 0 mapped to a port from 1 to 65535"))
		}
	}

	add(validateGroups(c.Routing.Groups))
	if c.Routing.Ordering != OrderingStrict {
		add(fieldError("routing.ordering", c.Routing.Ordering, "want %s", OrderingStrict))
	}

	add(hostPort("admin.listen", c.Admin.Listen, true))
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
	add(positive("shutdown_timeout", c.ShutdownTimeout))
	return errors.Join(errs...)
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
	for k := range int16(128) {
		if name := kmsg.NameForKey(k); name != "Unknown" && name != "" {
			known[strings.ToLower(name)] = true
		}
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
	return errors.Join(errs...)
}
