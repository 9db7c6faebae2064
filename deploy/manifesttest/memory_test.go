package manifesttest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// The memory a sidecar needs beyond limits.max_buffered_bytes, in two
// layers (deploy/kubernetes/README.md, "Memory").
const (
	// goHeadroom: Go heap and runtime memory outside the budget (the
	// runtime, goroutine stacks, the pools' idle buffers, garbage not yet
	// collected). GOMEMLIMIT must leave this much above the budget, or the
	// collector runs almost continuously once the budget is spent.
	goHeadroom = 64 << 20
	// kernelHeadroom: what the container's cgroup is charged outside the
	// Go runtime (the mapped binary, socket buffers, splice pipes). The
	// container limit must leave this much above GOMEMLIMIT, which is a
	// soft limit, so that the kernel never OOM-kills first.
	kernelHeadroom = 32 << 20
)

// goRuntimeEnv are the non-KPROXY_ variables a sidecar may set.
var goRuntimeEnv = map[string]bool{"GOMEMLIMIT": true}

// parseGoMemLimit parses GOMEMLIMIT's syntax: a byte count with an
// optional B, KiB, MiB, GiB or TiB suffix.
func parseGoMemLimit(s string) (int64, error) {
	units := []struct {
		suffix string
		shift  uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}
	num, shift := s, uint(0)
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, shift = n, u.shift
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("GOMEMLIMIT %q: want a positive byte count with an optional B, KiB, MiB, GiB or TiB suffix", s)
	}
	return n << shift, nil
}

// parseComposeBytes parses a Compose byte value (mem_limit): a number with
// an optional k, m or g suffix (powers of 1024), each with or without a
// trailing b.
func parseComposeBytes(s string) (int64, error) {
	num := strings.TrimSuffix(strings.ToLower(s), "b")
	shift := uint(0)
	for unit, sh := range map[string]uint{"k": 10, "m": 20, "g": 30} {
		if n, ok := strings.CutSuffix(num, unit); ok {
			num, shift = n, sh
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q: want a positive byte count with an optional k, m or g suffix", s)
	}
	return n << shift, nil
}

// defaultLimit is limits.<key>'s default, from the config contract.
func defaultLimit(t *testing.T, key string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "kproxy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Limits map[string]any `json:"limits"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	return yamlScalar(doc.Limits[key])
}

// bufferedBytes is limits.max_buffered_bytes as kproxy sees it: env over
// the config file (nil for none) over the default.
func bufferedBytes(t *testing.T, cfg map[string]any, env map[string]string) int64 {
	t.Helper()
	v, ok := env[envName("limits.max_buffered_bytes")]
	if !ok {
		limits, _ := cfg["limits"].(map[string]any)
		if b, set := limits["max_buffered_bytes"]; set {
			v, ok = yamlScalar(b), true
		}
	}
	if !ok {
		v = defaultLimit(t, "max_buffered_bytes")
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("limits.max_buffered_bytes %q: %v", v, err)
	}
	return n
}

// memorySizingProblems says what is wrong with a sidecar's memory limit
// for its budget: it must hold the budget plus both headrooms, with
// GOMEMLIMIT between them.
func memorySizingProblems(budget int64, goMemLimit string, limit int64) []string {
	const mib = 1 << 20
	var problems []string
	if limit < budget+goHeadroom+kernelHeadroom {
		problems = append(problems, fmt.Sprintf("memory limit %d MiB, want at least limits.max_buffered_bytes (%d MiB) + %d MiB for the Go runtime + %d MiB outside it",
			limit/mib, budget/mib, goHeadroom/mib, kernelHeadroom/mib))
	}
	if goMemLimit == "" {
		return append(problems, "GOMEMLIMIT is not set: the Go runtime does not read the container's memory limit, and without it the heap may grow to twice what is live before a collection")
	}
	soft, err := parseGoMemLimit(goMemLimit)
	if err != nil {
		return append(problems, err.Error())
	}
	if soft < budget+goHeadroom {
		problems = append(problems, fmt.Sprintf("GOMEMLIMIT %d MiB, want at least limits.max_buffered_bytes (%d MiB) + %d MiB", soft/mib, budget/mib, goHeadroom/mib))
	}
	if soft > limit-kernelHeadroom {
		problems = append(problems, fmt.Sprintf("GOMEMLIMIT %d MiB, want at most the memory limit (%d MiB) - %d MiB", soft/mib, limit/mib, kernelHeadroom/mib))
	}
	return problems
}

func checkMemorySizing(t *testing.T, where string, budget int64, goMemLimit string, limit int64) {
	t.Helper()
	for _, p := range memorySizingProblems(budget, goMemLimit, limit) {
		t.Errorf("%s: %s", where, p)
	}
}

func envMap(env []corev1.EnvVar) map[string]string {
	m := map[string]string{}
	for _, e := range env {
		m[e.Name] = e.Value
	}
	return m
}

// TestSidecarMemorySized: the container memory limit of each sidecar
// holds limits.max_buffered_bytes from its mounted config, the Go
// runtime's headroom and the kernel's, and GOMEMLIMIT sits between.
func TestSidecarMemorySized(t *testing.T) {
	m := loadManifests(t)
	for _, file := range []string{"deployment.yaml", "deployment-legacy-sidecar.yaml"} {
		cfg, sidecar := sidecarConfig(t, m, file)
		if sidecar == nil {
			t.Fatalf("%s: no sidecar", file)
		}
		env := envMap(sidecar.Env)
		q, ok := sidecar.Resources.Limits[corev1.ResourceMemory]
		if !ok {
			t.Errorf("%s: the sidecar has no memory limit", file)
			continue
		}
		checkMemorySizing(t, file, bufferedBytes(t, cfg, env), env["GOMEMLIMIT"], q.Value())
	}
}

// TestComposeMemorySized is TestSidecarMemorySized for the Compose file,
// where kproxy is configured by its environment alone.
func TestComposeMemorySized(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(deployDir(t), "docker-compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Services map[string]struct {
			MemLimit    string `json:"mem_limit"`
			Environment any    `json:"environment"`
		} `json:"services"`
	}
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	kproxy := c.Services["kproxy"]
	if kproxy.MemLimit == "" {
		t.Fatal("docker-compose.yaml: kproxy has no mem_limit")
	}
	limit, err := parseComposeBytes(kproxy.MemLimit)
	if err != nil {
		t.Fatalf("docker-compose.yaml: mem_limit %v", err)
	}
	env := environment(t, kproxy.Environment)
	checkMemorySizing(t, "docker-compose.yaml", bufferedBytes(t, nil, env), env["GOMEMLIMIT"], limit)
}

func TestMemoryParsers(t *testing.T) {
	for in, want := range map[string]int64{"192MiB": 192 << 20, "1GiB": 1 << 30, "4096": 4096, "10B": 10, "2KiB": 2048} {
		if got, err := parseGoMemLimit(in); err != nil || got != want {
			t.Errorf("parseGoMemLimit(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "192M", "192 MiB", "-1", "MiB", "1.5GiB"} {
		if _, err := parseGoMemLimit(bad); err == nil {
			t.Errorf("parseGoMemLimit(%q) accepted", bad)
		}
	}
	for in, want := range map[string]int64{"256m": 256 << 20, "256M": 256 << 20, "1g": 1 << 30, "512k": 512 << 10, "1000": 1000, "1000b": 1000, "64mb": 64 << 20} {
		if got, err := parseComposeBytes(in); err != nil || got != want {
			t.Errorf("parseComposeBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "m", "256MiB", "1.5g"} {
		if _, err := parseComposeBytes(bad); err == nil {
			t.Errorf("parseComposeBytes(%q) accepted", bad)
		}
	}
}

// TestMemorySizingCatchesTheOldManifests: the check fails a 256Mi
// container with the default 256 MiB budget, with and without GOMEMLIMIT,
// and passes the budget with both headrooms.
func TestMemorySizingCatchesTheOldManifests(t *testing.T) {
	for _, goMemLimit := range []string{"", "200MiB", "250MiB", "320MiB", "bogus"} {
		if p := memorySizingProblems(256<<20, goMemLimit, 256<<20); len(p) == 0 {
			t.Errorf("GOMEMLIMIT %q: a 256 MiB budget in a 256Mi container passed", goMemLimit)
		}
	}
	if p := memorySizingProblems(256<<20, "320MiB", 352<<20); len(p) != 0 {
		t.Errorf("a 256 MiB budget, GOMEMLIMIT 320MiB and a 352Mi limit failed: %v", p)
	}
}
