package bench

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// agg folds one path's rounds of one workload together.
type agg struct {
	records, bytes int64
	elapsed        time.Duration
	lat            []time.Duration
	usage          usage
	childCPU       time.Duration
}

// Results holds every measurement of a run.
type Results struct {
	Opts  Options
	order []string
	by    map[string]*[3]agg
	idle  [3][]idle
	// bridge: the version bridge rows (bridge.go), a table of their own.
	bridge bridgeResults
}

func (r *Results) add(name string, path int, s sample) {
	if r.by == nil {
		r.by = map[string]*[3]agg{}
	}
	a, ok := r.by[name]
	if !ok {
		a = new([3]agg)
		r.by[name] = a
		r.order = append(r.order, name)
	}
	a[path].add(s)
}

// add folds one sample into the aggregate.
func (g *agg) add(s sample) {
	g.records += s.records
	g.bytes += s.bytes
	g.elapsed += s.elapsed
	g.lat = append(g.lat, s.lat...)
	g.usage = g.usage.add(s.usage)
	g.childCPU += s.childCPU
}

// Row is one line of the table: a value per path (direct, relay, kproxy).
type Row struct {
	Name   string
	Unit   string
	Values [3]float64
	NoBase bool // direct has no value of its own (a cost over direct)
	Diff   bool // show kproxy − relay: the goals for these rows are absolute
}

// Rows returns the table's rows in order.
func (r *Results) Rows() []Row {
	var rows []Row
	per := func(name string, f func(g *agg) float64) (v [3]float64) {
		for i := range v {
			v[i] = f(&r.by[name][i])
		}
		return v
	}
	seconds := func(g *agg) float64 { return g.elapsed.Seconds() }
	for _, name := range r.order {
		if isProcWorkload(name) {
			rows = append(rows,
				Row{Name: name, Unit: "MB/s", Values: per(name, func(g *agg) float64 { return float64(g.bytes) / 1e6 / seconds(g) })},
				Row{Name: "process CPU: " + name, Unit: "s/GB", NoBase: true, Diff: true,
					Values: per(name, func(g *agg) float64 { return g.childCPU.Seconds() / (float64(g.bytes) / 1e9) })})
			continue
		}
		switch name {
		case wProduce1K, wProduce100:
			rows = append(rows,
				Row{Name: name, Unit: "records/s", Values: per(name, func(g *agg) float64 { return float64(g.records) / seconds(g) })},
				Row{Name: name, Unit: "MB/s", Values: per(name, func(g *agg) float64 { return float64(g.bytes) / 1e6 / seconds(g) })})
		case wConsume, wFetchRaw:
			rows = append(rows, Row{Name: name, Unit: "MB/s", Values: per(name, func(g *agg) float64 { return float64(g.bytes) / 1e6 / seconds(g) })})
		default:
			for _, q := range []float64{0.50, 0.99, 0.999} {
				rows = append(rows, Row{Name: name, Unit: fmt.Sprintf("p%g µs", q*100), Diff: true,
					Values: per(name, func(g *agg) float64 { return quantile(g.lat, q) })})
			}
		}
	}
	// What the hop costs: the process's CPU and allocations per GB moved,
	// less the direct path's (the client and kfake are in every path).
	for _, name := range []string{wProduce1K, wConsume, wFetchRaw} {
		if r.by[name] == nil {
			continue
		}
		cpu := per(name, func(g *agg) float64 { return g.usage.cpu.Seconds() / (float64(g.bytes) / 1e9) })
		alloc := per(name, func(g *agg) float64 { return float64(g.usage.alloc) / 1e6 / (float64(g.bytes) / 1e9) })
		rows = append(rows,
			Row{Name: "CPU over direct: " + name, Unit: "s/GB", Values: overBase(cpu), NoBase: true, Diff: true},
			Row{Name: "allocated over direct: " + name, Unit: "MB/GB", Values: overBase(alloc), NoBase: true, Diff: true})
	}
	// What rewriting a large Metadata answer allocates, per byte of answer.
	for _, n := range bigTopics {
		name := wMetadataBig(n)
		if r.by[name] == nil {
			continue
		}
		alloc := per(name, func(g *agg) float64 { return float64(g.usage.alloc) / float64(g.bytes) })
		rows = append(rows, Row{Name: "allocated over direct: " + name, Unit: "B/answer B", Values: overBase(alloc), NoBase: true, Diff: true})
	}
	if len(r.idle[0]) > 0 {
		perConn := func(f func(idle) int64) (v [3]float64) {
			for i := range v {
				var xs []float64
				for _, m := range r.idle[i] {
					xs = append(xs, float64(f(m))/1024/float64(r.Opts.IdleConns))
				}
				v[i] = median(xs)
			}
			return overBase(v)
		}
		name := fmt.Sprintf("idle client connection (%d open)", r.Opts.IdleConns)
		rows = append(rows,
			Row{Name: name + ", Go heap+stacks over direct", Unit: "KiB/conn", Values: perConn(func(m idle) int64 { return m.goMem }), NoBase: true, Diff: true},
			Row{Name: name + ", RSS over direct", Unit: "KiB/conn", Values: perConn(func(m idle) int64 { return m.rss }), NoBase: true, Diff: true})
	}
	return rows
}

func overBase(v [3]float64) [3]float64 { return [3]float64{0, v[1] - v[0], v[2] - v[0]} }

func quantile(xs []time.Duration, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := min(int(q*float64(len(s))), len(s)-1)
	return float64(s[i]) / float64(time.Microsecond)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// WriteTable prints the machine, the options and the table (Markdown).
func (r *Results) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "machine: %d CPUs (GOMAXPROCS %d), %s, %s %s/%s\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), cpuModel(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if r.Opts.Only != "" {
		fmt.Fprintf(w, "run: --only %s, %d rounds of direct → relay → kproxy per workload, %s per throughput run\n\n", r.Opts.Only, r.Opts.Rounds, r.Opts.Duration)
	} else {
		fmt.Fprintf(w, "run: %d rounds of direct → relay → kproxy per workload, %s per throughput run, %d round trips per latency run, %d idle connections\n\n",
			r.Opts.Rounds, r.Opts.Duration, r.Opts.Samples, r.Opts.IdleConns)
	}
	fmt.Fprintln(w, "| workload | unit | direct | relay | kproxy | kproxy ÷ relay | kproxy ÷ direct | kproxy − relay |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|")
	for _, row := range r.Rows() {
		v := row.Values
		direct, vsDirect := num(v[0]), ratio(v[2], v[0])
		if row.NoBase {
			direct, vsDirect = "—", "—"
		}
		diff := ""
		if row.Diff {
			diff = fmt.Sprintf("%+.3g", v[2]-v[1])
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n",
			row.Name, row.Unit, direct, num(v[1]), num(v[2]), ratio(v[2], v[1]), vsDirect, diff)
	}
	r.bridge.write(w)
}

func num(x float64) string {
	switch {
	case x >= 1e5 || x <= -1e5:
		return fmt.Sprintf("%.0f", x)
	case x >= 100 || x <= -100:
		return fmt.Sprintf("%.1f", x)
	default:
		return fmt.Sprintf("%.3g", x)
	}
}

func ratio(a, b float64) string {
	if b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
