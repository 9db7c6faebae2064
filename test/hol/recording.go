package hol

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Recording is what the head-of-line chart is drawn from: the experiment's
// Heartbeat timings per client and path, and a `kproxy-dev bench` run's ratios
// against the blind relay. The experiment writes it (-record) and redraws
// the chart from it (-from), so the chart in the README can be regenerated
// without running the clients again.
type Recording struct {
	Note      string       `json:"note"` // how the run was made
	DurationS float64      `json:"duration_s"`
	Series    []Series     `json:"series"`
	Bench     []BenchRatio `json:"bench,omitempty"`
}

// Series is one client on one path.
type Series struct {
	Client string `json:"client"`
	Path   string `json:"path"`
	// Measure is MeasureLatency (request written to answer read) or
	// MeasureGap (time since the previous Heartbeat answer, what the
	// broker's session timer sees).
	Measure string `json:"measure"`
	// Points are [seconds into the run, milliseconds]: for a latency, when
	// the request was written; for a gap, when the answer that ends it
	// arrived.
	Points [][2]float64 `json:"points"`
}

// Series measures.
const (
	MeasureLatency = "latency"
	MeasureGap     = "gap"
)

// BenchRatio is one row of `kproxy-dev bench`: kproxy's figure over the relay's.
type BenchRatio struct {
	Workload string  `json:"workload"`
	Unit     string  `json:"unit"`
	Ratio    float64 `json:"ratio"`
}

// HigherIsBetter: throughput rows; for latencies lower is better.
func (b BenchRatio) HigherIsBetter() bool { return b.Unit == "records/s" || b.Unit == "MB/s" }

// LatencySeries turns answer times and latencies into a series over the
// time each request was written: Heartbeats answered together behind one
// Fetch spread out by how long each waited.
func LatencySeries(client, path string, start time.Time, answered []time.Time, latencies []time.Duration) Series {
	s := Series{Client: client, Path: path, Measure: MeasureLatency, Points: [][2]float64{}}
	for i := range min(len(answered), len(latencies)) {
		sent := answered[i].Add(-latencies[i])
		s.Points = append(s.Points, [2]float64{round3(sent.Sub(start).Seconds()), round3(ms(latencies[i]))})
	}
	slices.SortStableFunc(s.Points, func(a, b [2]float64) int { return cmp.Compare(a[0], b[0]) })
	return s
}

// GapSeries turns answer times into the gaps between them.
func GapSeries(client, path string, start time.Time, answered []time.Time) Series {
	s := Series{Client: client, Path: path, Measure: MeasureGap, Points: [][2]float64{}}
	for i := 1; i < len(answered); i++ {
		s.Points = append(s.Points, [2]float64{round3(answered[i].Sub(start).Seconds()), round3(ms(answered[i].Sub(answered[i-1])))})
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func round3(x float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'f', 3, 64), 64)
	return v
}

// ParseBenchTable reads the Markdown table `kproxy-dev bench` prints and keeps
// the throughput and latency rows' "kproxy ÷ relay" column (the cost rows
// are differences over direct, not comparable on one axis).
func ParseBenchTable(r io.Reader) ([]BenchRatio, error) {
	var out []BenchRatio
	col := -1
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "|") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if col < 0 {
			for i, c := range cells {
				if c == "kproxy ÷ relay" {
					col = i
				}
			}
			continue
		}
		if len(cells) <= col || strings.HasPrefix(cells[0], "---") || cells[1] == "" {
			continue
		}
		unit := cells[1]
		if unit != "records/s" && unit != "MB/s" && !strings.HasSuffix(unit, " µs") {
			continue
		}
		ratio, err := strconv.ParseFloat(cells[col], 64)
		if err != nil {
			continue // "—": no relay figure
		}
		out = append(out, BenchRatio{Workload: cells[0], Unit: unit, Ratio: ratio})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if col < 0 {
		return nil, fmt.Errorf("no \"kproxy ÷ relay\" column: not a kproxy bench table")
	}
	return out, nil
}

// ReadRecording loads a recording written by WriteRecording.
func ReadRecording(path string) (Recording, error) {
	var rec Recording
	b, err := os.ReadFile(path)
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("%s: %w", path, err)
	}
	return rec, nil
}

// WriteRecording saves rec as indented JSON, one point per line at most.
func WriteRecording(path string, rec Recording) error {
	b, err := json.MarshalIndent(rec, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
