package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDefaultsApplyWithoutFile(t *testing.T) {
	cfg, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen.Bootstrap != "127.0.0.1:9092" || cfg.Listen.BrokerPortBase != 19092 || cfg.Admin.Listen != "127.0.0.1:9644" {
		t.Fatalf("defaults not applied: %+v", cfg.Listen)
	}
	if cfg.Limits.MaxFrameBytes != 100<<20 || cfg.Routing.Ordering != "auto" || cfg.Log.Format != "json" {
		t.Fatalf("defaults not applied: %+v %+v", cfg.Limits, cfg.Routing)
	}
	if got := cfg.Routing.Groups["coordination"]; len(got) != 12 {
		t.Fatalf("default coordination group = %v", got)
	}
}

func TestEnvOverridesFile(t *testing.T) {
	path := writeFile(t, `
upstream:
  bootstrap_servers: [file-a:9092]
listen:
  bootstrap: 127.0.0.1:7000
  broker_ports: {1: 7101}
routing:
  groups:
    fetch: [Fetch]
shutdown_timeout: 3s
`)
	t.Setenv("KPROXY_UPSTREAM_BOOTSTRAP_SERVERS", "env-a:9092, env-b:9092")
	t.Setenv("KPROXY_SHUTDOWN_TIMEOUT", "7s")
	t.Setenv("KPROXY_LIMITS_MAX_INFLIGHT_PER_CONNECTION", "9")
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.Upstream.BootstrapServers, ","); got != "env-a:9092,env-b:9092" {
		t.Errorf("bootstrap_servers = %q, want the environment's", got)
	}
	if cfg.ShutdownTimeout != 7*time.Second || cfg.Limits.MaxInflightPerConnection != 9 {
		t.Errorf("env did not override: %v %d", cfg.ShutdownTimeout, cfg.Limits.MaxInflightPerConnection)
	}
	if cfg.Listen.Bootstrap != "127.0.0.1:7000" || cfg.Listen.BrokerPorts[1] != 7101 {
		t.Errorf("file values lost: %+v", cfg.Listen)
	}
	if got := cfg.Routing.Groups["fetch"]; len(got) != 1 || got[0] != "Fetch" {
		t.Errorf("file group override lost: %v", got)
	}
	if got := cfg.Routing.Groups["produce"]; len(got) != 1 {
		t.Errorf("default groups dropped when the file names one: %v", cfg.Routing.Groups)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
}

func TestEnvMaps(t *testing.T) {
	t.Setenv("KPROXY_UPSTREAM_BOOTSTRAP_SERVERS", "k:9092")
	t.Setenv("KPROXY_LISTEN_BROKER_PORTS", "1=7101, 2=7102")
	t.Setenv("KPROXY_ROUTING_GROUPS", "fetch=Fetch|ShareFetch,meta=Metadata")
	cfg, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen.BrokerPorts[1] != 7101 || cfg.Listen.BrokerPorts[2] != 7102 {
		t.Errorf("broker_ports = %v", cfg.Listen.BrokerPorts)
	}
	if got := cfg.Routing.Groups["fetch"]; strings.Join(got, ",") != "Fetch,ShareFetch" {
		t.Errorf("groups.fetch = %v", got)
	}
	if got := cfg.Routing.Groups["meta"]; strings.Join(got, ",") != "Metadata" {
		t.Errorf("groups.meta = %v", cfg.Routing.Groups)
	}
}

func TestValidateListsEveryProblem(t *testing.T) {
	cfg := Defaults()
	cfg.Listen.Bootstrap = "localhost"
	cfg.Log.Format = "xml"
	cfg.Routing.Groups = map[string][]string{"a": {"Fetch", "Nope"}, "b": {"fetch"}}
	cfg.Limits.MaxInflightPerConnection = 0
	cfg.Metrics.MaxClientIDs = 0
	err := cfg.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	msg := err.Error()
	for _, want := range []string{
		`upstream.bootstrap_servers (KPROXY_UPSTREAM_BOOTSTRAP_SERVERS) "": is empty`,
		`listen.bootstrap (KPROXY_LISTEN_BOOTSTRAP) "localhost": missing port in address`,
		`log.format (KPROXY_LOG_FORMAT) "xml": want json or console`,
		`routing.groups.a (KPROXY_ROUTING_GROUPS) "Nope": unknown Kafka API name`,
		`routing.groups.b (KPROXY_ROUTING_GROUPS) "fetch": already in group "a"`,
		`limits.max_inflight_per_connection (KPROXY_LIMITS_MAX_INFLIGHT_PER_CONNECTION) "0": must be at least 1`,
		`metrics.max_client_ids (KPROXY_METRICS_MAX_CLIENT_IDS) "0": must be at least 1`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
}

func TestExampleFileIsValid(t *testing.T) {
	t.Setenv("KPROXY_UPSTREAM_BOOTSTRAP_SERVERS", "")
	cfg, err := Load("kproxy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config/kproxy.yaml: %v", err)
	}
	if !reflectEqualGroups(cfg.Routing.Groups, DefaultGroups()) {
		t.Errorf("example groups differ from the defaults: %v", cfg.Routing.Groups)
	}
}

func reflectEqualGroups(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if strings.Join(v, ",") != strings.Join(b[k], ",") {
			return false
		}
	}
	return true
}

func TestSecurityKeysFromEnv(t *testing.T) {
	t.Setenv("KPROXY_UPSTREAM_BOOTSTRAP_SERVERS", "k:9092")
	t.Setenv("KPROXY_UPSTREAM_TLS_ENABLED", "true")
	t.Setenv("KPROXY_UPSTREAM_TLS_CA_FILE", "/ca.pem")
	t.Setenv("KPROXY_UPSTREAM_SASL_MECHANISM", "SCRAM-SHA-512")
	t.Setenv("KPROXY_UPSTREAM_SASL_USERNAME", "proxy")
	t.Setenv("KPROXY_UPSTREAM_SASL_PASSWORD", "s3cret-upstream")
	t.Setenv("KPROXY_LISTEN_SASL_MODE", "terminate")
	t.Setenv("KPROXY_LISTEN_SASL_USERS", "app=file:/run/app,tools=env:TOOLS_PW")
	t.Setenv("KPROXY_LISTEN_SASL_MECHANISMS", "SCRAM-SHA-256")
	cfg, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	if !cfg.Upstream.TLS.Enabled || cfg.Upstream.TLS.CAFile != "/ca.pem" || cfg.Upstream.SASL.Password != "s3cret-upstream" {
		t.Errorf("upstream security keys not loaded: %+v %+v", cfg.Upstream.TLS, cfg.Upstream.SASL)
	}
	if cfg.Listen.SASL.Users["app"] != "file:/run/app" || cfg.Listen.SASL.Users["tools"] != "env:TOOLS_PW" || strings.Join(cfg.Listen.SASL.Mechanisms, ",") != "SCRAM-SHA-256" {
		t.Errorf("listen.sasl not loaded: %+v", cfg.Listen.SASL)
	}
	out, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "s3cret-upstream") || !strings.Contains(string(out), "[redacted]") {
		t.Errorf("password not redacted:\n%s", out)
	}
	if cfg.Upstream.SASL.Password != "s3cret-upstream" {
		t.Error("Redacted changed the original")
	}
}

func TestValidateSecurity(t *testing.T) {
	cfg := Defaults()
	cfg.Upstream.BootstrapServers = []string{"k:9092"}
	cfg.Upstream.TLS.CertFile = "/c.pem"
	cfg.Upstream.SASL.Mechanism = "SCRAM-SHA-1"
	cfg.Upstream.SASL.Password = "hunter2-secret"
	cfg.Listen.TLS.ClientCAFile = "/ca.pem"
	cfg.Listen.SASL.Mode = "terminate"
	cfg.Listen.SASL.Users = map[string]string{"app": "hunter3-secret"}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	msg := err.Error()
	for _, want := range []string{
		`upstream.tls.cert_file (KPROXY_UPSTREAM_TLS_CERT_FILE) "/c.pem": set but upstream.tls.enabled is false`,
		`upstream.tls.key_file (KPROXY_UPSTREAM_TLS_KEY_FILE) "": is empty but upstream.tls.cert_file is set`,
		`upstream.sasl.mechanism (KPROXY_UPSTREAM_SASL_MECHANISM) "SCRAM-SHA-1": want PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER`,
		`listen.tls.client_ca_file (KPROXY_LISTEN_TLS_CLIENT_CA_FILE) "/ca.pem": set but listen.tls.cert_file is empty`,
		`listen.sasl.users.app (KPROXY_LISTEN_SASL_USERS) "[redacted]": want "file:PATH" or "env:VARIABLE"`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "hunter") {
		t.Errorf("a secret leaked into a validation error:\n%s", msg)
	}

	cfg = Defaults()
	cfg.Upstream.BootstrapServers = []string{"k:9092"}
	cfg.Upstream.SASL = UpstreamSASL{Mechanism: SASLPlain, Username: "u", Password: "hunter2-secret", PasswordFile: "/pw"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "set together with upstream.sasl.password_file") || strings.Contains(err.Error(), "hunter") {
		t.Errorf("password and password_file together: %v", err)
	}
	cfg.Upstream.SASL = UpstreamSASL{Mechanism: SASLOAuthBearer}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "OAUTHBEARER needs a token file") {
		t.Errorf("OAUTHBEARER without token_file: %v", err)
	}
}

func TestClientRulesFromFileAndEnv(t *testing.T) {
	t.Setenv("KPROXY_UPSTREAM_BOOTSTRAP_SERVERS", "k:9092")
	path := writeFile(t, `
routing:
  ordering: auto
  client_rules:
    - {client_id: "^compat-kafkajs$", ordering: relaxed}
    - {client_id: "^legacy-", ordering: strict}
  fetch_wait_budget: 250ms
  hol_window: 30s
`)
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []ClientRule{{ClientID: "^compat-kafkajs$", Ordering: "relaxed"}, {ClientID: "^legacy-", Ordering: "strict"}}
	if !slices.Equal(cfg.Routing.ClientRules, want) || cfg.Routing.FetchWaitBudget != 250*time.Millisecond || cfg.Routing.HolWindow != 30*time.Second {
		t.Fatalf("routing = %+v", cfg.Routing)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}

	t.Setenv("KPROXY_ROUTING_CLIENT_RULES", "relaxed=^kafkajs-(a|b){1,2}=x$; strict = ^sarama")
	t.Setenv("KPROXY_ROUTING_FETCH_WAIT_BUDGET", "0")
	cfg, err = Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want = []ClientRule{{ClientID: "^kafkajs-(a|b){1,2}=x$", Ordering: "relaxed"}, {ClientID: "^sarama", Ordering: "strict"}}
	if !slices.Equal(cfg.Routing.ClientRules, want) || cfg.Routing.FetchWaitBudget != 0 {
		t.Fatalf("env did not override: %+v", cfg.Routing)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}

	t.Setenv("KPROXY_ROUTING_CLIENT_RULES", "^kafkajs")
	if _, err := Load(""); err == nil || !strings.Contains(err.Error(), "KPROXY_ROUTING_CLIENT_RULES") {
		t.Fatalf("malformed rules: err = %v", err)
	}
}

func TestValidateOrdering(t *testing.T) {
	cfg := Defaults()
	cfg.Upstream.BootstrapServers = []string{"k:9092"}
	cfg.Routing.Ordering = "fifo"
	cfg.Routing.ClientRules = []ClientRule{{ClientID: "^(", Ordering: "relaxed"}, {ClientID: "x", Ordering: "auto"}, {Ordering: "strict"}}
	cfg.Routing.FetchWaitBudget = 500 * time.Microsecond
	cfg.Routing.HolWindow = 0
	err := cfg.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	msg := err.Error()
	for _, want := range []string{
		`routing.ordering (KPROXY_ROUTING_ORDERING) "fifo": want strict, relaxed or auto`,
		`routing.client_rules (KPROXY_ROUTING_CLIENT_RULES) "^(": rule 1: client_id is not a regular expression`,
		`routing.client_rules (KPROXY_ROUTING_CLIENT_RULES) "auto": rule 2 (client_id "x"): ordering: want strict or relaxed`,
		`routing.client_rules (KPROXY_ROUTING_CLIENT_RULES) "": rule 3: client_id is empty`,
		`routing.fetch_wait_budget (KPROXY_ROUTING_FETCH_WAIT_BUDGET) "500µs": want 0 (off) or from 1ms`,
		`routing.hol_window (KPROXY_ROUTING_HOL_WINDOW) "0s": must be positive`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
}
