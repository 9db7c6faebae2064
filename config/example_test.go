package config

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// exampleOnly are keys without a default whose value in config/kproxy.yaml
// is an example.
var exampleOnly = map[string]bool{"upstream.bootstrap_servers": true}

// TestExampleFileDocumentsEveryKey keeps config/kproxy.yaml complete: every
// key of Config is in it, set to its default, with its environment variable
// named. Adding a key to Config without documenting it fails here.
func TestExampleFileDocumentsEveryKey(t *testing.T) {
	t.Setenv("KPROXY_UPSTREAM_BOOTSTRAP_SERVERS", "") // empty: the file's value counts
	data, err := os.ReadFile("kproxy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load("kproxy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defaults := leaves("", reflect.ValueOf(Defaults()), map[string]any{})
	loaded := leaves("", reflect.ValueOf(cfg), map[string]any{})
	for key, def := range defaults {
		if !inDoc(doc, key) {
			t.Errorf("config/kproxy.yaml lacks %s (default %v)", key, def)
			continue
		}
		if !strings.Contains(string(data), EnvVar(key)) {
			t.Errorf("config/kproxy.yaml does not name %s's environment variable %s", key, EnvVar(key))
		}
		// fmt renders maps sorted and nil and empty lists alike.
		if got, want := fmt.Sprint(loaded[key]), fmt.Sprint(def); got != want && !exampleOnly[key] {
			t.Errorf("config/kproxy.yaml sets %s to %s, not its default %s", key, got, want)
		}
	}
}

// inDoc reports whether the dotted key is set in the parsed YAML document.
func inDoc(doc map[string]any, key string) bool {
	section, rest, nested := strings.Cut(key, ".")
	v, ok := doc[section]
	if !ok || !nested {
		return ok
	}
	m, ok := v.(map[string]any)
	return ok && inDoc(m, rest)
}
