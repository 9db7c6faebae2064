package manifesttest

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

const (
	adminPort      = 9644
	configFileName = "kproxy.yaml"
	sidecarName    = "kproxy"
)

// manifests holds every document of deploy/kubernetes/*.yaml, decoded.
type manifests struct {
	configMaps  map[string]*corev1.ConfigMap    // by metadata.name
	deployments map[string][]*appsv1.Deployment // by file base name
}

// readDocuments splits a multi-document YAML file, dropping documents that
// hold nothing but comments.
func readDocuments(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := utilyaml.NewYAMLReader(bufio.NewReader(f))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if s := string(bytes.TrimSpace(j)); s != "null" && s != "" {
			docs = append(docs, doc)
		}
	}
}

// decodeStrict decodes one manifest into the Kubernetes type its apiVersion
// and kind name, failing on unknown or duplicate fields.
func decodeStrict(doc []byte) (any, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, err
	}
	var obj any
	switch tm.APIVersion + " " + tm.Kind {
	case "v1 ConfigMap":
		obj = &corev1.ConfigMap{}
	case "apps/v1 Deployment":
		obj = &appsv1.Deployment{}
	default:
		return nil, errors.New("unexpected apiVersion/kind " + tm.APIVersion + "/" + tm.Kind)
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, err
	}
	return obj, nil
}

func loadManifests(t *testing.T) manifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(deployDir(t), "kubernetes", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no manifests in deploy/kubernetes")
	}
	m := manifests{configMaps: map[string]*corev1.ConfigMap{}, deployments: map[string][]*appsv1.Deployment{}}
	for _, path := range files {
		docs := readDocuments(t, path)
		if len(docs) == 0 {
			t.Errorf("%s: no YAML documents", path)
		}
		for i, doc := range docs {
			obj, err := decodeStrict(doc)
			if err != nil {
				t.Errorf("%s document %d: %v", filepath.Base(path), i, err)
				continue
			}
			switch o := obj.(type) {
			case *corev1.ConfigMap:
				if _, dup := m.configMaps[o.Name]; dup {
					t.Errorf("%s: ConfigMap %q defined twice", filepath.Base(path), o.Name)
				}
				m.configMaps[o.Name] = o
			case *appsv1.Deployment:
				base := filepath.Base(path)
				m.deployments[base] = append(m.deployments[base], o)
			}
		}
	}
	return m
}

func TestDecodeStrictRejectsUnknownFields(t *testing.T) {
	// A typo'd field must fail, or the strict decode proves nothing.
	doc := []byte(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec:
  template:
    spec:
      containers:
        - name: app
          image: app
          imagePullPolcy: Always
`)
	if _, err := decodeStrict(doc); err == nil || !strings.Contains(err.Error(), "imagePullPolcy") {
		t.Fatalf("decodeStrict accepted an unknown field: err = %v", err)
	}
	if _, err := decodeStrict([]byte("apiVersion: v1\nkind: Service\n")); err == nil {
		t.Fatal("decodeStrict accepted a kind the test does not check")
	}
}

func TestManifestsDecodeStrictly(t *testing.T) {
	m := loadManifests(t)
	if len(m.configMaps) == 0 {
		t.Error("no ConfigMap in deploy/kubernetes")
	}
	for _, name := range []string{"deployment.yaml", "deployment-legacy-sidecar.yaml"} {
		if len(m.deployments[name]) != 1 {
			t.Errorf("%s: want exactly one Deployment, got %d", name, len(m.deployments[name]))
		}
	}
}

func TestNativeSidecar(t *testing.T) {
	m := loadManifests(t)
	for _, d := range m.deployments["deployment.yaml"] {
		spec := d.Spec.Template.Spec
		sidecar := findContainer(spec.InitContainers, sidecarName)
		if sidecar == nil {
			t.Fatalf("%s: no init container %q", d.Name, sidecarName)
		}
		if sidecar.RestartPolicy == nil || *sidecar.RestartPolicy != corev1.ContainerRestartPolicyAlways {
			t.Errorf("%s: init container %q must have restartPolicy: Always (native sidecar)", d.Name, sidecarName)
		}
		if findContainer(spec.Containers, sidecarName) != nil {
			t.Errorf("%s: %q is both an init container and a container", d.Name, sidecarName)
		}
		checkSidecarPod(t, m, d, sidecar)
	}
}

func TestLegacySidecar(t *testing.T) {
	m := loadManifests(t)
	for _, d := range m.deployments["deployment-legacy-sidecar.yaml"] {
		spec := d.Spec.Template.Spec
		if len(spec.InitContainers) != 0 {
			t.Errorf("%s: the legacy form must not rely on init containers", d.Name)
		}
		sidecar := findContainer(spec.Containers, sidecarName)
		if sidecar == nil {
			t.Fatalf("%s: no container %q", d.Name, sidecarName)
		}
		checkSidecarPod(t, m, d, sidecar)
	}
}

// checkSidecarPod checks what both sidecar forms share: probes, env,
// resources, security, scrape annotations, config mount and the app's
// bootstrap address.
func checkSidecarPod(t *testing.T, m manifests, d *appsv1.Deployment, sidecar *corev1.Container) {
	t.Helper()
	tmpl := d.Spec.Template
	if d.Spec.Selector == nil {
		t.Errorf("%s: no selector", d.Name)
	} else {
		for k, v := range d.Spec.Selector.MatchLabels {
			if tmpl.Labels[k] != v {
				t.Errorf("%s: selector %s=%s does not match the pod template labels", d.Name, k, v)
			}
		}
	}

	// /readyz needs the Kafka cluster: it gates the start (a native
	// sidecar's app starts once it passes), not readiness, which would
	// take the app's pod out of its Service for every Kafka outage.
	checkHTTPProbe(t, d.Name+" startupProbe", sidecar, sidecar.StartupProbe, "/readyz")
	checkHTTPProbe(t, d.Name+" livenessProbe", sidecar, sidecar.LivenessProbe, "/healthz")
	checkHTTPProbe(t, d.Name+" readinessProbe", sidecar, sidecar.ReadinessProbe, "/healthz")

	for annotation, want := range map[string]string{
		"prometheus.io/scrape": "true",
		"prometheus.io/port":   "9644",
		"prometheus.io/path":   "/metrics",
	} {
		if got := tmpl.Annotations[annotation]; got != want {
			t.Errorf("%s: pod annotation %s = %q, want %q", d.Name, annotation, got, want)
		}
	}

	env := map[string]string{}
	for _, e := range sidecar.Env {
		if envKey(e.Name) == "" && !goRuntimeEnv[e.Name] {
			t.Errorf("%s: env %s is neither KPROXY_ + a documented config key nor a Go runtime variable", d.Name, e.Name)
		}
		env[e.Name] = e.Value
	}
	if got := env["KPROXY_ADMIN_LISTEN"]; got != "0.0.0.0:9644" {
		t.Errorf("%s: KPROXY_ADMIN_LISTEN = %q, want 0.0.0.0:9644 so that probes and Prometheus reach it", d.Name, got)
	}
	if env["KPROXY_UPSTREAM_BOOTSTRAP_SERVERS"] == "" {
		t.Errorf("%s: KPROXY_UPSTREAM_BOOTSTRAP_SERVERS is not set", d.Name)
	}

	podSC := tmpl.Spec.SecurityContext
	all := append(append([]corev1.Container{}, tmpl.Spec.InitContainers...), tmpl.Spec.Containers...)
	for i := range all {
		c := &all[i]
		checkResources(t, d.Name, c)
		checkSecurity(t, d.Name, podSC, c)
	}

	checkConfigMount(t, m, d, sidecar)

	appUsesProxy := false
	for _, c := range tmpl.Spec.Containers {
		if c.Name == sidecarName {
			continue
		}
		for _, e := range c.Env {
			appUsesProxy = appUsesProxy || strings.Contains(e.Value, "127.0.0.1:9092")
		}
		for _, a := range append(append([]string{}, c.Command...), c.Args...) {
			appUsesProxy = appUsesProxy || strings.Contains(a, "127.0.0.1:9092")
		}
	}
	if !appUsesProxy {
		t.Errorf("%s: no app container points at the proxy on 127.0.0.1:9092", d.Name)
	}
}

// volumeConfigMap is the ConfigMap a volume names, "" if none.
func volumeConfigMap(src *corev1.ConfigMapVolumeSource) string {
	if src == nil {
		return ""
	}
	return src.Name
}

func findContainer(cs []corev1.Container, name string) *corev1.Container {
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	return nil
}

// checkHTTPProbe checks that p is an HTTP GET of path on the admin port.
func checkHTTPProbe(t *testing.T, what string, c *corev1.Container, p *corev1.Probe, path string) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("%s: want an httpGet probe", what)
		return
	}
	if p.HTTPGet.Path != path {
		t.Errorf("%s: path %q, want %q", what, p.HTTPGet.Path, path)
	}
	if port := resolvePort(c, p.HTTPGet.Port); port != adminPort {
		t.Errorf("%s: port %s resolves to %d, want %d", what, p.HTTPGet.Port.String(), port, adminPort)
	}
}

// resolvePort turns a probe port (number or container port name) into a
// number, 0 if the name is not declared.
func resolvePort(c *corev1.Container, port intstr.IntOrString) int32 {
	if port.Type == intstr.Int {
		return port.IntVal
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return p.ContainerPort
		}
	}
	return 0
}

func checkResources(t *testing.T, deployment string, c *corev1.Container) {
	t.Helper()
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if q, ok := c.Resources.Requests[r]; !ok || q.IsZero() {
			t.Errorf("%s container %s: no %s request", deployment, c.Name, r)
		}
	}
	if q, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok || q.IsZero() {
		t.Errorf("%s container %s: no memory limit", deployment, c.Name)
	}
}

func checkSecurity(t *testing.T, deployment string, pod *corev1.PodSecurityContext, c *corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil {
		t.Errorf("%s container %s: no securityContext", deployment, c.Name)
		return
	}
	nonRoot := sc.RunAsNonRoot
	if nonRoot == nil && pod != nil {
		nonRoot = pod.RunAsNonRoot
	}
	if nonRoot == nil || !*nonRoot {
		t.Errorf("%s container %s: runAsNonRoot is not true", deployment, c.Name)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s container %s: readOnlyRootFilesystem is not true", deployment, c.Name)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s container %s: allowPrivilegeEscalation is not false", deployment, c.Name)
	}
	dropsAll := false
	if sc.Capabilities != nil {
		for _, cap := range sc.Capabilities.Drop {
			dropsAll = dropsAll || cap == "ALL"
		}
	}
	if !dropsAll {
		t.Errorf("%s container %s: capabilities do not drop ALL", deployment, c.Name)
	}
}

// checkConfigMount checks that --config names a file that the sidecar
// mounts from a ConfigMap defined next to it, and that the pod's grace period
// outlasts the config's shutdown_timeout.
func checkConfigMount(t *testing.T, m manifests, d *appsv1.Deployment, sidecar *corev1.Container) {
	t.Helper()
	args := append(append([]string{}, sidecar.Command...), sidecar.Args...)
	configPath := ""
	for i, a := range args {
		if a == "--config" && i+1 < len(args) {
			configPath = args[i+1]
		}
	}
	if configPath == "" {
		t.Errorf("%s: sidecar has no --config argument", d.Name)
		return
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range d.Spec.Template.Spec.Volumes {
		volumes[v.Name] = v
	}
	for _, mnt := range sidecar.VolumeMounts {
		if _, ok := volumes[mnt.Name]; !ok {
			t.Errorf("%s: volumeMount %q names no volume", d.Name, mnt.Name)
		}
	}
	for _, mnt := range sidecar.VolumeMounts {
		rel, err := filepath.Rel(mnt.MountPath, configPath)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		v := volumes[mnt.Name]
		if v.ConfigMap == nil {
			t.Errorf("%s: %s is mounted from volume %q, which is not a ConfigMap", d.Name, configPath, mnt.Name)
			return
		}
		cm, ok := m.configMaps[v.ConfigMap.Name]
		if !ok {
			t.Errorf("%s: volume %q names ConfigMap %q, which deploy/kubernetes does not define", d.Name, mnt.Name, v.ConfigMap.Name)
			return
		}
		data, ok := cm.Data[rel]
		if !ok {
			t.Errorf("%s: ConfigMap %q has no key %q for %s", d.Name, cm.Name, rel, configPath)
			return
		}
		cfg := parseKproxyConfig(t, cm.Name, data)
		checkGracePeriod(t, d, effectiveSetting(cfg, sidecar.Env, "shutdown_timeout"))
		return
	}
	t.Errorf("%s: no volumeMount holds %s", d.Name, configPath)
}
