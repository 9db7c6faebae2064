package manifesttest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"
)

// decodeKproxyConfig parses kproxy YAML and lists every key in it that the
// config contract does not document.
func decodeKproxyConfig(data string) (map[string]any, []error) {
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(data), &cfg); err != nil {
		return nil, []error{fmt.Errorf("kproxy config is not YAML: %w", err)}
	}
	if len(cfg) == 0 {
		return nil, []error{fmt.Errorf("kproxy config is empty")}
	}
	var errs []error
	for top, v := range cfg {
		keys, ok := configKeys()[top]
		if !ok {
			errs = append(errs, fmt.Errorf("unknown top-level config key %q (documented: %v)", top, sortedSections()))
			continue
		}
		if keys == nil {
			continue
		}
		section, ok := v.(map[string]any)
		if !ok {
			errs = append(errs, fmt.Errorf("config key %q must be a mapping, got %T", top, v))
			continue
		}
		for k := range section {
			if !slices.Contains(keys, k) {
				errs = append(errs, fmt.Errorf("unknown config key %s.%s (documented: %v)", top, k, keys))
			}
		}
	}
	return cfg, errs
}

// parseKproxyConfig is decodeKproxyConfig reporting to t.
func parseKproxyConfig(t *testing.T, where, data string) map[string]any {
	t.Helper()
	cfg, errs := decodeKproxyConfig(data)
	for _, err := range errs {
		t.Errorf("%s: %v", where, err)
	}
	return cfg
}

func sortedSections() []string {
	var s []string
	for k := range configKeys() {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

// checkGracePeriod checks that the kubelet waits longer than kproxy's
// shutdown_timeout before it kills the sidecar.
func checkGracePeriod(t *testing.T, d *appsv1.Deployment, shutdownTimeout string) {
	t.Helper()
	if shutdownTimeout == "" {
		shutdownTimeout = defaultSetting(t, "shutdown_timeout")
	}
	st, err := time.ParseDuration(shutdownTimeout)
	if err != nil {
		t.Errorf("%s: shutdown_timeout %q: %v", d.Name, shutdownTimeout, err)
		return
	}
	grace := 30 * time.Second // the Kubernetes default
	if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	if grace <= st {
		t.Errorf("%s: terminationGracePeriodSeconds (%v) must exceed shutdown_timeout (%v)", d.Name, grace, st)
	}
}

func TestConfigMapKproxyConfig(t *testing.T) {
	m := loadManifests(t)
	for name, cm := range m.configMaps {
		data, ok := cm.Data[configFileName]
		if !ok {
			t.Errorf("ConfigMap %s: no %s key", name, configFileName)
			continue
		}
		cfg := parseKproxyConfig(t, "ConfigMap "+name, data)
		listen, _ := cfg["listen"].(map[string]any)
		bootstrap, _ := listen["bootstrap"].(string)
		if host, _, err := net.SplitHostPort(bootstrap); err != nil || !net.ParseIP(host).IsLoopback() {
			t.Errorf("ConfigMap %s: listen.bootstrap %q must be a loopback address in a pod", name, bootstrap)
		}
	}
}

func TestDecodeKproxyConfigRejectsUnknownKeys(t *testing.T) {
	for _, bad := range []string{"upstreams: {}\n", "listen:\n  bootstrap_port: 1\n", "log: json\n", "a: [\n"} {
		if _, errs := decodeKproxyConfig(bad); len(errs) == 0 {
			t.Errorf("config %q was accepted", bad)
		}
	}
}

// TestConfigAcceptedByKproxy runs `kproxy check-config` on the ConfigMap's
// config with the sidecar's environment.
func TestConfigAcceptedByKproxy(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kproxy")
	}
	root := filepath.Dir(deployDir(t))
	bin := filepath.Join(t.TempDir(), "kproxy")
	build := exec.Command("go", "build", "-o", bin, "./cmd/kproxy")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/kproxy: %v\n%s", err, out)
	}
	m := loadManifests(t)
	for file, ds := range m.deployments {
		for _, d := range ds {
			spec := d.Spec.Template.Spec
			sidecar := findContainer(slices.Concat(spec.InitContainers, spec.Containers), sidecarName)
			if sidecar == nil {
				continue
			}
			data := ""
			for _, v := range spec.Volumes {
				if cm, ok := m.configMaps[volumeConfigMap(v.ConfigMap)]; ok {
					data = cm.Data[configFileName]
				}
			}
			cfgFile := filepath.Join(t.TempDir(), configFileName)
			if err := os.WriteFile(cfgFile, []byte(data), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin, "check-config", "--config", cfgFile)
			cmd.Env = os.Environ()
			for _, e := range sidecar.Env {
				cmd.Env = append(cmd.Env, e.Name+"="+e.Value)
			}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s: kproxy check-config rejects the config with the sidecar's env: %v\n%s", file, err, out)
			}
		}
	}
}
