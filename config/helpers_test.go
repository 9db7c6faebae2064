package config

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// Helpers shared by the config tests.

// leaves flattens a Config into its keys (as Load knows them) and values.
func leaves(prefix string, v reflect.Value, out map[string]any) map[string]any {
	t := v.Type()
	for i := range t.NumField() {
		key := t.Field(i).Tag.Get("mapstructure")
		if prefix != "" {
			key = prefix + "." + key
		}
		if f := v.Field(i); f.Kind() == reflect.Struct {
			leaves(key, f, out)
		} else {
			out[key] = f.Interface()
		}
	}
	return out
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kproxy.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
