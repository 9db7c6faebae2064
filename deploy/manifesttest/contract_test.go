package manifesttest

import (
	"path/filepath"
	"strings"
	"testing"
)

// configKeys are the kproxy configuration keys, by section, that manifests
// may use (the config contract; see config/kproxy.yaml in the main module).
// A nil section is a scalar key.
var configKeys = map[string][]string{
	"upstream":         {"bootstrap_servers"},
	"listen":           {"bootstrap", "advertised_host", "broker_port_base", "broker_ports"},
	"routing":          {"groups", "ordering"},
	"admin":            {"listen"},
	"log":              {"level", "format"},
	"limits":           {"max_frame_bytes", "max_inflight_per_connection"},
	"shutdown_timeout": nil,
}

// envKey maps a KPROXY_* environment variable back to its config key, or
// returns "" when the name matches no documented key.
func envKey(name string) string {
	for section, keys := range configKeys {
		if keys == nil {
			if name == envName(section) {
				return section
			}
			continue
		}
		for _, k := range keys {
			if key := section + "." + k; name == envName(key) {
				return key
			}
		}
	}
	return ""
}

// envName is the environment variable for a config key:
// KPROXY_ + the key upper-cased with dots turned into underscores.
func envName(key string) string {
	return "KPROXY_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// deployDir is the absolute path of deploy/ (go test runs in the package
// directory, deploy/manifesttest).
func deployDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}
