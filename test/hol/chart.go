package hol

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
)

// The chart is hand-written SVG: no plotting package, no browser, the same
// bytes for the same recording.

const (
	chartWidth  = 960.0
	plotLeft    = 70.0
	plotRight   = 700.0 // the legend is to the right
	latTop      = 60.0
	latBottom   = 380.0
	latMinMs    = 0.1
	latMaxMs    = 20000.0
	benchTop    = 470.0
	benchRowH   = 20.0
	benchLeft   = 430.0
	benchRight  = 900.0
	benchMaxRat = 2.0
)

// pathColors are the paths' colors; raw clients solid, sarama gaps dashed.
var pathColors = map[string]string{
	"direct":                       "#555555",
	"kproxy strict":                "#d62728",
	"kproxy strict + budget 200ms": "#ff7f0e",
	"kproxy relaxed":               "#2ca02c",
}

func colorOf(path string) string {
	if c, ok := pathColors[path]; ok {
		return c
	}
	return "#1f77b4"
}

// WriteSVG draws rec: Heartbeat latency over the run on a log scale, per
// path, with sarama's gaps between Heartbeat answers as steps (each spans
// the time between two answers, at the height of that time), and below it
// the bench's kproxy ÷ relay ratios.
func WriteSVG(w io.Writer, rec Recording) error {
	var b bytes.Buffer
	height := benchTop + 40
	if len(rec.Bench) > 0 {
		height = benchTop + 60 + benchRowH*float64(len(rec.Bench)) + 30
	}
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n",
		chartWidth, height, chartWidth, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	text(&b, plotLeft, 24, "start", 16, "bold", "Heartbeat behind a long-poll Fetch on one socket")
	text(&b, plotLeft, 44, "start", 12, "", fmt.Sprintf("answer latency of a raw id-matching client (solid) and sarama's gaps between Heartbeat answers (dashed), %.0f s run", rec.DurationS))
	latencyPanel(&b, rec)
	if len(rec.Bench) > 0 {
		benchPanel(&b, rec.Bench)
	}
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

func latencyPanel(b *bytes.Buffer, rec Recording) {
	dur := max(rec.DurationS, 1)
	x := func(s float64) float64 { return plotLeft + (plotRight-plotLeft)*math.Min(s, dur)/dur }
	y := func(ms float64) float64 {
		ms = math.Min(math.Max(ms, latMinMs), latMaxMs)
		f := (math.Log10(ms) - math.Log10(latMinMs)) / (math.Log10(latMaxMs) - math.Log10(latMinMs))
		return latBottom - (latBottom-latTop)*f
	}
	// Grid: decades of milliseconds, and every 5 s.
	for ms := latMinMs; ms <= latMaxMs; ms *= 10 {
		line(b, plotLeft, y(ms), plotRight, y(ms), "#dddddd", "")
		text(b, plotLeft-6, y(ms)+4, "end", 11, "", msLabel(ms))
	}
	step := 5.0
	if dur > 60 {
		step = 10
	}
	for s := 0.0; s <= dur+1e-9; s += step {
		line(b, x(s), latTop, x(s), latBottom, "#eeeeee", "")
		text(b, x(s), latBottom+16, "middle", 11, "", fmt.Sprintf("%.0f s", s))
	}
	line(b, plotLeft, latBottom, plotRight, latBottom, "#000000", "")
	line(b, plotLeft, latTop, plotLeft, latBottom, "#000000", "")
	text(b, (plotLeft+plotRight)/2, latBottom+34, "middle", 12, "", "time into the run (latency: when the Heartbeat was sent; gap: when its answer arrived)")
	fmt.Fprintf(b, `<text x="18" y="%.1f" text-anchor="middle" font-size="12" transform="rotate(-90 18 %.1f)">milliseconds (log scale)</text>`+"\n",
		(latTop+latBottom)/2, (latTop+latBottom)/2)
	// sarama's session timeout: a gap past it loses the group.
	line(b, plotLeft, y(SaramaSessionTimeout.Seconds()*1000), plotRight, y(SaramaSessionTimeout.Seconds()*1000), "#9467bd", "2,3")
	text(b, plotRight-4, y(SaramaSessionTimeout.Seconds()*1000)-4, "end", 11, "", "sarama session timeout")

	legendY := latTop
	for _, s := range rec.Series {
		if len(s.Points) == 0 {
			continue
		}
		dash := ""
		if s.Measure == MeasureGap {
			dash = "6,4"
		}
		var pts strings.Builder
		for i, p := range s.Points {
			if i > 0 {
				pts.WriteByte(' ')
			}
			if s.Measure == MeasureGap {
				// A step: the gap spans from the answer before to this one.
				fmt.Fprintf(&pts, "%.1f,%.1f ", x(math.Max(p[0]-p[1]/1000, 0)), y(p[1]))
			}
			fmt.Fprintf(&pts, "%.1f,%.1f", x(p[0]), y(p[1]))
		}
		attrs := ""
		if dash != "" {
			attrs = fmt.Sprintf(` stroke-dasharray="%s"`, dash)
		}
		fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="1.8"%s points="%s"><title>%s</title></polyline>`+"\n",
			colorOf(s.Path), attrs, pts.String(), esc(s.Client+", "+s.Path+": "+s.Measure))
		if s.Measure == MeasureLatency {
			for _, p := range s.Points {
				fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="2" fill="%s"/>`+"\n", x(p[0]), y(p[1]), colorOf(s.Path))
			}
		}
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"%s/>`+"\n",
			plotRight+16, legendY, plotRight+40, legendY, colorOf(s.Path), attrs)
		label := s.Path
		if s.Measure == MeasureGap {
			label = "sarama gap, " + s.Path
		}
		text(b, plotRight+46, legendY+4, "start", 11, "", label)
		legendY += 18
	}
}

func benchPanel(b *bytes.Buffer, rows []BenchRatio) {
	top := benchTop
	text(b, plotLeft, top, "start", 16, "bold", "kproxy ÷ blind TCP relay (kproxy-dev bench)")
	text(b, plotLeft, top+20, "start", 12, "", "throughput: higher is better; latency: lower is better; 1 = as fast as a relay that parses nothing")
	top += 40
	maxRatio := benchMaxRat
	for _, r := range rows {
		maxRatio = math.Max(maxRatio, math.Ceil(r.Ratio*2)/2)
	}
	x := func(v float64) float64 { return benchLeft + (benchRight-benchLeft)*v/maxRatio }
	for i, r := range rows {
		yy := top + float64(i)*benchRowH
		better := r.Ratio >= 1 == r.HigherIsBetter() || r.Ratio == 1
		color := "#2ca02c"
		if !better {
			color = "#ff7f0e"
		}
		text(b, benchLeft-8, yy+benchRowH*0.65, "end", 11, "", r.Workload+" · "+r.Unit)
		fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", benchLeft, yy+3, x(r.Ratio)-benchLeft, benchRowH-6, color)
		text(b, x(r.Ratio)+4, yy+benchRowH*0.65, "start", 11, "", fmt.Sprintf("%.2f", r.Ratio))
	}
	bottom := top + float64(len(rows))*benchRowH
	line(b, x(1), top-4, x(1), bottom+4, "#000000", "3,3")
	for v := 0.0; v <= maxRatio+1e-9; v += 0.5 {
		text(b, x(v), bottom+18, "middle", 11, "", fmt.Sprintf("%.1f", v))
	}
}

func line(b *bytes.Buffer, x1, y1, x2, y2 float64, color, dash string) {
	attrs := ""
	if dash != "" {
		attrs = fmt.Sprintf(` stroke-dasharray="%s"`, dash)
	}
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"%s/>`+"\n", x1, y1, x2, y2, color, attrs)
}

func text(b *bytes.Buffer, x, y float64, anchor string, size int, weight, s string) {
	w := ""
	if weight != "" {
		w = fmt.Sprintf(` font-weight="%s"`, weight)
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="%s" font-size="%d"%s>%s</text>`+"\n", x, y, anchor, size, w, esc(s))
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func msLabel(ms float64) string {
	switch {
	case ms >= 1000:
		return fmt.Sprintf("%.0f s", ms/1000)
	case ms >= 1:
		return fmt.Sprintf("%.0f ms", ms)
	}
	return fmt.Sprintf("%.1f ms", ms)
}
