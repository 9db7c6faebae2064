package metrics_test

import (
	"bufio"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kproxy/kproxy/internal/metrics"
)

// family is what the docs/METRICS.md's Metrics table says of one metric.
type family struct {
	typ    string
	labels []string // sorted
}

func (f family) String() string {
	return fmt.Sprintf("%s {%s}", f.typ, strings.Join(f.labels, ", "))
}

// readmeTable parses the table under "## Metrics" in docs/METRICS.md:
// | `name` | type | `label`, `label` | meaning |
func readmeTable(t *testing.T) map[string]family {
	t.Helper()
	f, err := os.Open("../../docs/METRICS.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]family{}
	in, table := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "## "):
			in = line == "## Metrics"
			continue
		case !in:
			continue
		case !strings.HasPrefix(line, "|"):
			if table {
				return out // the first table of the section only
			}
			continue
		}
		table = true
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if len(cells) != 4 {
			t.Fatalf("docs/METRICS.md Metrics table: want 4 cells (name, type, labels, meaning): %q", line)
		}
		if cells[0] == "name" || strings.HasPrefix(cells[0], "---") {
			continue
		}
		name := strings.Trim(cells[0], "`")
		var labels []string
		for l := range strings.SplitSeq(cells[2], ",") {
			if l = strings.Trim(strings.TrimSpace(l), "`"); l != "" {
				labels = append(labels, l)
			}
		}
		slices.Sort(labels)
		if _, dup := out[name]; dup {
			t.Errorf("docs/METRICS.md Metrics table lists %s twice", name)
		}
		out[name] = family{typ: cells[1], labels: labels}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("docs/METRICS.md: no table under ## Metrics")
	}
	return out
}

// registered returns every kproxy_ family metrics.New registers. A vector
// exports nothing until it has a child, so each one gets a child with
// placeholder label values (as many as it takes: the count is found by
// trying), found by reflection so that a metric added to Metrics later is
// covered without touching this test.
func registered(t *testing.T) map[string]family {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, "test")
	v := reflect.ValueOf(m).Elem()
	for i := range v.NumField() {
		get := v.Field(i).MethodByName("GetMetricWithLabelValues")
		if !get.IsValid() {
			continue
		}
		ok := false
		for n := range 10 {
			vals := make([]string, n)
			for j := range vals {
				vals[j] = "x"
			}
			if res := get.CallSlice([]reflect.Value{reflect.ValueOf(vals)}); res[1].IsNil() {
				ok = true
				break
			}
		}
		if !ok {
			t.Fatalf("Metrics.%s: no label count up to 9 fits", v.Type().Field(i).Name)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]family{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "kproxy_") {
			continue
		}
		var labels []string
		for _, l := range mf.GetMetric()[0].GetLabel() {
			labels = append(labels, l.GetName())
		}
		slices.Sort(labels)
		out[mf.GetName()] = family{typ: strings.ToLower(dto.MetricType_name[int32(mf.GetType())]), labels: labels}
	}
	return out
}

// TestReadmeMetricsTableMatchesCode: docs/METRICS.md's Metrics table and the
// registry list the same metrics, with the same types and labels. A metric
// added to the code fails here until it has its row.
func TestReadmeMetricsTableMatchesCode(t *testing.T) {
	doc, code := readmeTable(t), registered(t)
	for name, c := range code {
		d, ok := doc[name]
		switch {
		case !ok:
			t.Errorf("%s (%s) is exported but missing from docs/METRICS.md's Metrics table: add | `%s` | %s | %s | meaning |",
				name, c, name, c.typ, "`"+strings.Join(c.labels, "`, `")+"`")
		case d.typ != c.typ || !slices.Equal(d.labels, c.labels):
			t.Errorf("%s: docs/METRICS.md says %s, the code exports %s", name, d, c)
		}
	}
	for name := range doc {
		if _, ok := code[name]; !ok {
			t.Errorf("docs/METRICS.md's Metrics table lists %s, which the code does not export", name)
		}
	}
}
