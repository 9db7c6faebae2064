package manifesttest

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"sigs.k8s.io/yaml"
)

// configKeys are the kproxy configuration keys, by section, that manifests
// may use: the keys config/kproxy.yaml in the main module documents (a test
// there keeps that file complete). A nil section is a scalar key.
var configKeys = sync.OnceValue(func() map[string][]string {
	path := filepath.Join("..", "..", "config", "kproxy.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		panic(fmt.Sprintf("the config contract: %v", err))
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		panic(fmt.Sprintf("the config contract: %s: %v", path, err))
	}
	keys := map[string][]string{}
	for section, v := range doc {
		keys[section] = nil
		if m, ok := v.(map[string]any); ok {
			keys[section] = []string{}
			for k := range m {
				keys[section] = append(keys[section], k)
			}
			sort.Strings(keys[section])
		}
	}
	return keys
})

// envKey maps a KPROXY_* environment variable back to its config key, or
// returns "" when the name matches no documented key.
func envKey(name string) string {
	for section, keys := range configKeys() {
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
