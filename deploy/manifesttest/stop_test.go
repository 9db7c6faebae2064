package manifesttest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// defaultSetting is a top-level scalar's default, from the config contract
// (config/kproxy.yaml).
func defaultSetting(t *testing.T, key string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "kproxy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	v, _ := doc[key].(string)
	return v
}

// effectiveSetting is a top-level scalar as the sidecar sees it: its
// environment variable, else the config file, else "" (the default).
func effectiveSetting(cfg map[string]any, env []corev1.EnvVar, key string) string {
	for _, e := range env {
		if e.Name == envName(key) {
			return e.Value
		}
	}
	v, _ := cfg[key].(string)
	return v
}

// sidecarConfig is the kproxy config file a Deployment's sidecar mounts
// (the ConfigMap's only file in these manifests) and the sidecar.
func sidecarConfig(t *testing.T, m manifests, file string) (map[string]any, *corev1.Container) {
	t.Helper()
	for _, d := range m.deployments[file] {
		spec := d.Spec.Template.Spec
		sidecar := findContainer(spec.Containers, sidecarName)
		if sidecar == nil {
			sidecar = findContainer(spec.InitContainers, sidecarName)
		}
		for _, v := range spec.Volumes {
			if v.ConfigMap == nil {
				continue
			}
			if cm, ok := m.configMaps[v.ConfigMap.Name]; ok {
				return parseKproxyConfig(t, cm.Name, cm.Data[configFileName]), sidecar
			}
		}
	}
	t.Fatalf("%s: no sidecar config", file)
	return nil, nil
}

// TestLegacySidecarWaitsForTheApp: in the legacy form both containers get
// SIGTERM together, so kproxy must wait for the app's last connection
// (shutdown_mode wait_for_clients, the default) and the file must say so.
func TestLegacySidecarWaitsForTheApp(t *testing.T) {
	m := loadManifests(t)
	cfg, sidecar := sidecarConfig(t, m, "deployment-legacy-sidecar.yaml")
	mode := effectiveSetting(cfg, sidecar.Env, "shutdown_mode")
	if mode == "" {
		mode = defaultSetting(t, "shutdown_mode")
	}
	if mode != "wait_for_clients" {
		t.Errorf("legacy sidecar: shutdown_mode %q; the app's last commit needs wait_for_clients", mode)
	}
	data, err := os.ReadFile(filepath.Join(deployDir(t), "kubernetes", "deployment-legacy-sidecar.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, word := range []string{"SIGTERM", "wait_for_clients", "shutdown_timeout", "terminationGracePeriodSeconds"} {
		if !strings.Contains(string(data), word) {
			t.Errorf("deployment-legacy-sidecar.yaml: the comments do not explain the stop (no %q)", word)
		}
	}
}

// TestComposeStopGracePeriod: Docker kills a container 10s after SIGTERM
// unless stop_grace_period says otherwise; kproxy's stop may take
// shutdown_timeout.
func TestComposeStopGracePeriod(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(deployDir(t), "docker-compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Services map[string]struct {
			StopGracePeriod string `json:"stop_grace_period"`
			Environment     any    `json:"environment"`
		} `json:"services"`
	}
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	kproxy := c.Services["kproxy"]
	timeout := environment(t, kproxy.Environment)["KPROXY_SHUTDOWN_TIMEOUT"]
	if timeout == "" {
		timeout = defaultSetting(t, "shutdown_timeout")
	}
	st, err := time.ParseDuration(timeout)
	if err != nil {
		t.Fatalf("shutdown_timeout %q: %v", timeout, err)
	}
	if kproxy.StopGracePeriod == "" {
		t.Fatalf("docker-compose.yaml: kproxy has no stop_grace_period (Docker's 10s is below shutdown_timeout %v)", st)
	}
	grace, err := time.ParseDuration(kproxy.StopGracePeriod)
	if err != nil {
		t.Fatalf("docker-compose.yaml: stop_grace_period %q: %v", kproxy.StopGracePeriod, err)
	}
	if grace <= st {
		t.Errorf("docker-compose.yaml: stop_grace_period %v must exceed shutdown_timeout %v", grace, st)
	}
}
