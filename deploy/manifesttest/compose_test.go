package manifesttest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// composeFile is the part of deploy/docker-compose.yaml the test checks.
type composeFile struct {
	Services map[string]struct {
		Build *struct {
			Context    string `json:"context"`
			Dockerfile string `json:"dockerfile"`
		} `json:"build"`
		NetworkMode string `json:"network_mode"`
		// Environment is a mapping or a list of NAME=value.
		Environment any      `json:"environment"`
		Volumes     []string `json:"volumes"`
	} `json:"services"`
}

// environment returns a service's environment as a map, whichever form
// the file uses.
func environment(t *testing.T, env any) map[string]string {
	t.Helper()
	out := map[string]string{}
	switch e := env.(type) {
	case nil:
	case map[string]any:
		for k, v := range e {
			out[k] = yamlScalar(v)
		}
	case []any:
		for _, item := range e {
			s, _ := item.(string)
			k, v, _ := strings.Cut(s, "=")
			out[k] = v
		}
	default:
		t.Errorf("environment has unexpected type %T", env)
	}
	return out
}

// yamlScalar renders a decoded scalar (string or number) as Compose passes
// it to the container.
func yamlScalar(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := yaml.Marshal(v)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// TestComposeUsesDocumentedKeys keeps the Compose example, which nothing
// here runs, consistent with the config contract and the repository layout.
func TestComposeUsesDocumentedKeys(t *testing.T) {
	dir := deployDir(t)
	data, err := os.ReadFile(filepath.Join(dir, "docker-compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("docker-compose.yaml: %v", err)
	}
	kproxy, ok := c.Services["kproxy"]
	if !ok {
		t.Fatal("docker-compose.yaml: no kproxy service")
	}
	if kproxy.Build == nil {
		t.Fatal("docker-compose.yaml: kproxy is not built from the Dockerfile")
	}
	dockerfile := filepath.Join(dir, kproxy.Build.Context, kproxy.Build.Dockerfile)
	if _, err := os.Stat(dockerfile); err != nil {
		t.Errorf("docker-compose.yaml: kproxy build: %v", err)
	}
	env := environment(t, kproxy.Environment)
	for name := range env {
		if strings.HasPrefix(name, "KPROXY_") && envKey(name) == "" {
			t.Errorf("docker-compose.yaml: %s is not KPROXY_ + a documented config key", name)
		}
	}
	if env["KPROXY_UPSTREAM_BOOTSTRAP_SERVERS"] == "" {
		t.Error("docker-compose.yaml: KPROXY_UPSTREAM_BOOTSTRAP_SERVERS is not set")
	}
	if got := env["KPROXY_ADMIN_LISTEN"]; got != "0.0.0.0:9644" {
		t.Errorf("docker-compose.yaml: KPROXY_ADMIN_LISTEN = %q, want 0.0.0.0:9644", got)
	}
	for _, name := range []string{"app", "prometheus"} {
		s, ok := c.Services[name]
		if !ok {
			t.Errorf("docker-compose.yaml: no %s service", name)
			continue
		}
		if s.NetworkMode != "service:kproxy" {
			t.Errorf("docker-compose.yaml: %s has network_mode %q, want service:kproxy", name, s.NetworkMode)
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(filepath.Join(dir, src)); err != nil {
					t.Errorf("docker-compose.yaml: %s mounts %s: %v", name, src, err)
				}
			}
		}
	}
}
