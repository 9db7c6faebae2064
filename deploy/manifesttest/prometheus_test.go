package manifesttest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestPrometheusScrapeConfig: deploy/prometheus/prometheus.yml scrapes
// kproxy's admin server where kproxy serves it (/metrics on 9644), and
// promtool accepts it when installed.
func TestPrometheusScrapeConfig(t *testing.T) {
	file := filepath.Join(deployDir(t), "prometheus", "prometheus.yml")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ScrapeConfigs []struct {
			JobName       string `json:"job_name"`
			MetricsPath   string `json:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `json:"targets"`
			} `json:"static_configs"`
		} `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	want := "127.0.0.1:" + strconv.Itoa(adminPort)
	found := false
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				if target == want && (sc.MetricsPath == "" || sc.MetricsPath == "/metrics") {
					found = true
				}
			}
		}
	}
	if !found {
		t.Errorf("prometheus.yml: no job scrapes %s/metrics (kproxy's admin server)", want)
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed")
	}
	if out, err := exec.Command(promtool, "check", "config", file).CombinedOutput(); err != nil {
		t.Errorf("promtool check config: %v\n%s", err, out)
	}
}
