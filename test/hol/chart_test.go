package hol

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
)

const (
	recordedRun  = "testdata/run.json"
	checkedChart = "../../docs/hol.svg"
)

// TestChartFromRecordedRun redraws the README's chart from the checked-in
// recording: it must parse as SVG, draw a line per recorded series and a
// bar per bench row, and equal the checked-in docs/hol.svg (regenerate it
// with the command in the README when the drawing changes).
func TestChartFromRecordedRun(t *testing.T) {
	rec, err := ReadRecording(recordedRun)
	if err != nil {
		t.Fatal(err)
	}
	paths := map[string]bool{}
	gaps := 0
	for _, s := range rec.Series {
		if s.Measure == MeasureLatency {
			paths[s.Path] = true
		} else {
			gaps++
		}
	}
	for _, p := range []string{"direct", "kproxy strict", "kproxy strict + budget 200ms", "kproxy relaxed"} {
		if !paths[p] {
			t.Errorf("the recording has no Heartbeat latency series for %q", p)
		}
	}
	if gaps == 0 || len(rec.Bench) == 0 {
		t.Errorf("the recording has %d sarama gap series and %d bench rows", gaps, len(rec.Bench))
	}

	var out bytes.Buffer
	if err := WriteSVG(&out, rec); err != nil {
		t.Fatal(err)
	}
	elems := parseSVG(t, out.Bytes())
	drawn := 0
	for _, s := range rec.Series {
		if len(s.Points) > 0 {
			drawn++
		}
	}
	if elems["polyline"] != drawn {
		t.Errorf("%d polylines for %d series with points", elems["polyline"], drawn)
	}
	if elems["rect"] != 1+len(rec.Bench) { // the background, then a bar per row
		t.Errorf("%d rects for %d bench rows", elems["rect"], len(rec.Bench))
	}
	checked, err := os.ReadFile(checkedChart)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(checked, out.Bytes()) {
		t.Errorf("%s differs from the chart drawn from %s: regenerate it (README, \"Answer ordering\")", checkedChart, recordedRun)
	}
}

// parseSVG decodes b as XML, requires an <svg> root in the SVG namespace,
// and counts the elements by name.
func parseSVG(t *testing.T, b []byte) map[string]int {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.Strict = true
	count := map[string]int{}
	depth := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v", err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if depth == 0 && (el.Name.Local != "svg" || el.Name.Space != "http://www.w3.org/2000/svg") {
				t.Fatalf("root element %v, want svg in the SVG namespace", el.Name)
			}
			count[el.Name.Local]++
			depth++
		case xml.EndElement:
			depth--
		}
	}
	if count["svg"] != 1 || depth != 0 {
		t.Fatalf("want one closed svg root: %v", count)
	}
	return count
}

func TestParseBenchTable(t *testing.T) {
	table := `machine: 2 CPUs
| workload | unit | direct | relay | kproxy | kproxy ÷ relay | kproxy ÷ direct | kproxy − relay |
|---|---|---:|---:|---:|---:|---:|---:|
| produce 1 KiB records (kgo) | records/s | 885809 | 594705 | 672083 | 1.13 | 0.76 |  |
| ApiVersions round trip | p99.9 µs | 350.6 | 596.3 | 729.5 | 1.22 | 2.08 | +133 |
| CPU over direct: consume 1 MiB batches (kgo) | s/GB | — | 0.968 | 0.162 | 0.17 | — | -0.807 |
| fetch | MB/s | 1 | 0 | 1 | — | 1 | |
`
	rows, err := ParseBenchTable(strings.NewReader(table))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Ratio != 1.13 || !rows[0].HigherIsBetter() || rows[1].Unit != "p99.9 µs" || rows[1].HigherIsBetter() {
		t.Errorf("rows: %+v", rows)
	}
	if _, err := ParseBenchTable(strings.NewReader("| a | b |\n|---|---|\n")); err == nil {
		t.Error("a table without the ratio column parsed")
	}
}
