// Package loopback holds what the tests, the demo, bench and soak share to
// run kproxy in front of an in-process kfake cluster on this machine. It
// imports no testing package, so the kproxy binary can use it.
package loopback

import (
	"time"

	"github.com/kproxy/kproxy/config"
)

// Config returns the defaults with listeners on ephemeral loopback ports
// for the bootstrap, every broker and the admin server, in front of seeds.
func Config(seeds []string) config.Config {
	cfg := config.Defaults()
	cfg.Upstream.BootstrapServers = seeds
	cfg.Listen.Bootstrap = "127.0.0.1:0"
	cfg.Listen.BrokerPortBase = 0
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.ShutdownTimeout = 5 * time.Second
	return cfg
}
