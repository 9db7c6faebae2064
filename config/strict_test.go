package config

import (
	"strings"
	"testing"
)

// TestUnknownKeysAndVariablesFail: a misspelled key in the file or a
// misspelled KPROXY_* variable is an error naming it and the nearest valid
// key, reported with every other problem.
func TestUnknownKeysAndVariablesFail(t *testing.T) {
	t.Setenv("KPROXY_ROUTING_ORDRING", "strict")
	t.Setenv("KPROXY_COMPAT", "0") // the project's script variable, not a key
	t.Setenv("KPROXY_APP_PASSWORD", "x")
	t.Setenv("KPROXY_LISTEN_SASL_USERS", "app=env:KPROXY_APP_PASSWORD")
	path := writeFile(t, `
routng:
  ordering: strict
bootstrap_server: [kafka:9092]
upstream:
  bootstrap_server: [kafka:9092]
  Dial_Timeout: 5s
routing:
  client_rules:
    - {client_id: "^a$", order: relaxed}
zzzzzzzz: 1
`)
	_, err := Load(path)
	if err == nil {
		t.Fatal("unknown keys accepted")
	}
	msg := err.Error()
	for _, want := range []string{
		"routng: unknown key; did you mean routing?",
		"bootstrap_server: unknown key; did you mean upstream.bootstrap_servers?",
		"upstream.bootstrap_server: unknown key; did you mean upstream.bootstrap_servers?",
		"routing.client_rules[0].order: unknown key; did you mean routing.client_rules[0].ordering?",
		"zzzzzzzz: unknown key\n",
		"KPROXY_ROUTING_ORDRING: unknown environment variable; did you mean KPROXY_ROUTING_ORDERING (routing.ordering)?",
	} {
		if !strings.Contains(msg+"\n", want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	for _, unwanted := range []string{"Dial_Timeout", "KPROXY_COMPAT", "KPROXY_APP_PASSWORD"} {
		if strings.Contains(msg, unwanted) {
			t.Errorf("%s reported, but it is allowed:\n%s", unwanted, msg)
		}
	}
}

// TestDecodeErrorsWholeAndTogether: values that do not decode are reported
// whole, with key and variable, all at once and with validation problems.
func TestDecodeErrorsWholeAndTogether(t *testing.T) {
	t.Setenv("KPROXY_UPSTREAM_BOOTSTRAP_SERVERS", "")
	t.Setenv("KPROXY_LIMITS_MAX_FRAME_BYTES", "100 MiB")
	t.Setenv("KPROXY_UPSTREAM_TLS_ENABLED", "maybe")
	path := writeFile(t, `
upstream:
  dial_timeout: ten seconds
  idle_timeout: 300
routing:
  client_rules: "relaxed"
  ordering: sideways
`)
	cfg, err := Check(path)
	if err == nil {
		t.Fatal("bad values accepted")
	}
	msg := err.Error()
	for _, want := range []string{
		`upstream.dial_timeout (KPROXY_UPSTREAM_DIAL_TIMEOUT) "ten seconds": want a duration with a unit`,
		`upstream.idle_timeout (KPROXY_UPSTREAM_IDLE_TIMEOUT) "300": want a duration with a unit`,
		`limits.max_frame_bytes (KPROXY_LIMITS_MAX_FRAME_BYTES) "100 MiB": want a whole number`,
		`upstream.tls.enabled (KPROXY_UPSTREAM_TLS_ENABLED) "maybe": want true or false`,
		`routing.client_rules (KPROXY_ROUTING_CLIENT_RULES) "relaxed": entry "relaxed": want ORDERING=REGEX`,
		`routing.ordering (KPROXY_ROUTING_ORDERING) "sideways": want strict, relaxed or auto`,
		`upstream.bootstrap_servers (KPROXY_UPSTREAM_BOOTSTRAP_SERVERS) "": is empty`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	if cfg.Upstream.DialTimeout != Defaults().Upstream.DialTimeout {
		t.Errorf("a key that did not decode should keep its default, got %v", cfg.Upstream.DialTimeout)
	}
}

// TestMapEntryErrorsNameAWorkingVariable: a problem inside a map names the
// map's variable, the one that sets it.
func TestMapEntryErrorsNameAWorkingVariable(t *testing.T) {
	t.Setenv("KPROXY_UPSTREAM_BOOTSTRAP_SERVERS", "k:9092")
	t.Setenv("KPROXY_ROUTING_GROUPS", "fetch=Fetch|Nope")
	_, err := Check("")
	if err == nil || !strings.Contains(err.Error(), `routing.groups.fetch (KPROXY_ROUTING_GROUPS) "Nope": unknown Kafka API name`) {
		t.Fatalf("got %v", err)
	}
}

func TestNearest(t *testing.T) {
	keys := Keys()
	for name, want := range map[string]string{
		"upstream.dial_timout":  "upstream.dial_timeout",
		"listen.bootstrp":       "listen.bootstrap",
		"shutdown_timout":       "shutdown_timeout",
		"limits.max_frame_size": "limits.max_frame_bytes",
		"limits.colour":         "",
		"tls":                   "",
	} {
		if got := nearest(name, keys); got != want {
			t.Errorf("nearest(%q) = %q, want %q", name, got, want)
		}
	}
}
