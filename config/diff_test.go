package config

import (
	"slices"
	"testing"
	"time"
)

func TestDiff(t *testing.T) {
	a := Defaults()
	if d := Diff(a, Defaults()); len(d) != 0 {
		t.Fatalf("defaults differ from themselves: %v", d)
	}
	b := Defaults()
	b.Log.Level = "debug"
	b.Routing.ClientRules = []ClientRule{{ClientID: "^x$", Ordering: OrderingRelaxed}}
	b.Listen.BrokerPortBase = 20000
	b.ShutdownTimeout = time.Minute
	b.Routing.Groups["fetch"] = []string{"Fetch"}
	want := []string{"listen.broker_port_base", "routing.groups", "routing.client_rules", "log.level", "shutdown_timeout"}
	if got := Diff(a, b); !slices.Equal(got, want) {
		t.Fatalf("Diff = %v, want %v", got, want)
	}
}
