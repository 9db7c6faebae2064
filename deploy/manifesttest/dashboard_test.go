package manifesttest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// exportedMetrics are the series names kproxy exports (the metrics contract;
// histograms with their _bucket series).
var exportedMetrics = []string{
	"kproxy_client_connections",
	"kproxy_client_connections_total",
	"kproxy_upstream_connections",
	"kproxy_upstream_dial_errors_total",
	"kproxy_requests_total",
	"kproxy_request_duration_seconds",
	"kproxy_request_duration_seconds_bucket",
	"kproxy_inflight_requests",
	"kproxy_bytes_total",
	"kproxy_frame_errors_total",
	"kproxy_session_closes_total",
	"kproxy_rewrites_total",
	"kproxy_build_info",
	"kproxy_response_hold_seconds",
	"kproxy_response_hold_seconds_bucket",
	"kproxy_fetch_wait_capped_total",
	"kproxy_hol_wait_avoided_seconds_total",
	"kproxy_session_ordering_total",
}

// dashboardMetrics must each appear in some panel: what issue 4 asks the
// dashboard to show.
var dashboardMetrics = []string{
	"kproxy_requests_total",
	"kproxy_request_duration_seconds_bucket",
	"kproxy_response_hold_seconds_bucket",
	"kproxy_hol_wait_avoided_seconds_total",
	"kproxy_fetch_wait_capped_total",
	"kproxy_client_connections",
	"kproxy_upstream_connections",
	"kproxy_bytes_total",
	"kproxy_frame_errors_total",
	"kproxy_session_closes_total",
	"kproxy_upstream_dial_errors_total",
}

var metricName = regexp.MustCompile(`\bkproxy_[a-zA-Z0-9_:]*`)

const datasourceUID = "${DS_PROMETHEUS}"

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // rows
}

type dashboard struct {
	Title         string  `json:"title"`
	UID           string  `json:"uid"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(deployDir(t), "grafana", "kproxy-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("kproxy-dashboard.json: %v", err)
	}
	return d
}

// flatten lists every panel, including those nested in collapsed rows.
func flatten(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, flatten(p.Panels)...)
	}
	return out
}

// unknownMetrics lists the kproxy_* names in s that kproxy does not export.
func unknownMetrics(s string) []string {
	var bad []string
	for _, name := range metricName.FindAllString(s, -1) {
		if !slices.Contains(exportedMetrics, name) {
			bad = append(bad, name)
		}
	}
	return bad
}

func TestDashboardQueriesExportedMetrics(t *testing.T) {
	d := loadDashboard(t)
	if d.Title == "" || d.UID == "" {
		t.Error("dashboard needs a title and a uid")
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d: want 36 or later", d.SchemaVersion)
	}

	hasDS := false
	for _, v := range d.Templating.List {
		if v.Name == "DS_PROMETHEUS" {
			hasDS = v.Type == "datasource" && string(v.Query) == `"prometheus"`
		}
		if bad := unknownMetrics(string(v.Query)); len(bad) > 0 {
			t.Errorf("variable %s queries metrics kproxy does not export: %v", v.Name, bad)
		}
	}
	if !hasDS {
		t.Error("no datasource variable DS_PROMETHEUS of type prometheus")
	}

	ids := map[int]string{}
	used := map[string]bool{}
	for _, p := range flatten(d.Panels) {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panel id %d used by %q and %q", p.ID, prev, p.Title)
		}
		ids[p.ID] = p.Title
		if p.GridPos == nil || p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: bad gridPos %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != datasourceUID {
			t.Errorf("panel %q: datasource must be %s", p.Title, datasourceUID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no queries", p.Title)
		}
		for _, q := range p.Targets {
			if q.Datasource != nil && q.Datasource.UID != datasourceUID {
				t.Errorf("panel %q query %s: datasource must be %s", p.Title, q.RefID, datasourceUID)
			}
			names := metricName.FindAllString(q.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q query %s queries no kproxy metric: %q", p.Title, q.RefID, q.Expr)
			}
			if bad := unknownMetrics(q.Expr); len(bad) > 0 {
				t.Errorf("panel %q query %s: metrics kproxy does not export: %v", p.Title, q.RefID, bad)
			}
			for _, n := range names {
				used[n] = true
				if strings.HasSuffix(n, "_total") && !strings.Contains(q.Expr, "rate(") && !strings.Contains(q.Expr, "increase(") {
					t.Errorf("panel %q query %s: counter %s without rate() or increase()", p.Title, q.RefID, n)
				}
				if strings.HasSuffix(n, "_bucket") && !strings.Contains(q.Expr, "histogram_quantile(") {
					t.Errorf("panel %q query %s: %s outside histogram_quantile()", p.Title, q.RefID, n)
				}
			}
		}
	}
	for _, m := range dashboardMetrics {
		if !used[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
}

// TestDashboardPromQLParses hands every panel query to promtool as a
// recording rule, when promtool is installed (Debian's prometheus package).
func TestDashboardPromQLParses(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed")
	}
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for _, p := range flatten(loadDashboard(t).Panels) {
		for _, q := range p.Targets {
			expr, err := json.Marshal(q.Expr) // a JSON string is a valid YAML scalar
			if err != nil {
				t.Fatal(err)
			}
			n++
			fmt.Fprintf(&rules, "      - record: dashboard:query_%d\n        expr: %s\n", n, expr)
		}
	}
	file := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(file, []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
}
