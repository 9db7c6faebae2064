package config

import (
	"go.yaml.in/yaml/v3"
)

// YAML renders the effective configuration for `kproxy check-config`.
// Secrets are redacted.
func (c Config) YAML() ([]byte, error) {
	return yaml.Marshal(c.Redacted())
}

// redacted replaces a secret's value in output.
const redacted = "[redacted]"

// Redacted returns a copy safe to print or log: every secret value is
// replaced. File paths and "file:"/"env:" references are kept, since they
// name where a secret is, not what it is.
func (c Config) Redacted() Config {
	if c.Upstream.SASL.Password != "" {
		c.Upstream.SASL.Password = redacted
	}
	if c.Listen.SASL.Users != nil {
		users := make(map[string]string, len(c.Listen.SASL.Users))
		for u, ref := range c.Listen.SASL.Users {
			if !IsSecretRef(ref) {
				ref = redacted
			}
			users[u] = ref
		}
		c.Listen.SASL.Users = users
	}
	return c
}
