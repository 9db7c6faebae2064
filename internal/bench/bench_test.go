package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestQuickRunHasEveryRow runs the bench in quick mode and checks the table
// has every row with a value on each path. No thresholds: timing goals are
// the bench's to report, not a test's to assert.
func TestQuickRunHasEveryRow(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster, a relay and kproxy")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	opts := Quick()
	opts.Duration = 200 * time.Millisecond
	opts.Samples = 50
	opts.IdleConns = 50
	res, err := Measure(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, w := range []string{wProduce1K, wProduce100, wConsume, wFetchRaw, wApiVers, wMetadata, wMix} {
		want[w] = false
	}
	for _, n := range bigTopics {
		want[wMetadataBig(n)] = false
	}
	for _, w := range []string{wProcProduce, wProcConsume, wProcProduceTLS, wProcConsumeTLS, wShortLived(false, 0), wShortLived(true, 0), wShortLived(true, shortLivedGap)} {
		want[w] = false
	}
	rows := res.Rows()
	for _, row := range rows {
		if _, ok := want[row.Name]; ok {
			want[row.Name] = true
		}
		if row.NoBase || row.Diff && strings.HasPrefix(row.Name, "CPU") {
			continue
		}
		for i, v := range row.Values {
			if v <= 0 {
				t.Errorf("%s %s: path %d has no value (%v)", row.Name, row.Unit, i, v)
			}
		}
	}
	for w, seen := range want {
		if !seen {
			t.Errorf("no row for %q", w)
		}
	}
	for _, w := range []string{wBridgeProduce, wBridgeConsume, wBridgeConsume1K} {
		a := res.bridge.by[w]
		if a == nil {
			t.Errorf("no version bridge row for %q", w)
			continue
		}
		for i, g := range a {
			if g.bytes <= 0 {
				t.Errorf("version bridge, %s, %s: nothing moved", w, bridgeClients[i])
			}
		}
	}
	var buf bytes.Buffer
	res.WriteTable(&buf)
	out := buf.String()
	for _, s := range []string{"kproxy ÷ relay", "kproxy ÷ direct", "CPU over direct", "allocated over direct", "idle client connection", "p99.9 µs", "B/answer B", "process CPU: ", "legacy ÷ modern"} {
		if !strings.Contains(out, s) {
			t.Errorf("table lacks %q:\n%s", s, out)
		}
	}
	t.Logf("\n%s", out)
}
