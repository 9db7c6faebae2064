package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/cli"
	"github.com/kproxy/kproxy/internal/sessioninfo"
)

// kproxy sessions: an operator's look at a running kproxy, from its admin
// server's /debug/sessions, printed as a table (or passed through as JSON).
// It speaks HTTP only, so it works through `kubectl port-forward`.

func runSessions(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("kproxy sessions [--admin ADDR] [--json] [--limit N]",
		"Prints what each client session of a running kproxy is doing, from its\nadmin server's /debug/sessions (docs/METRICS.md, \"Seeing inside a running sidecar\").")
	defaultAdmin := os.Getenv(config.EnvVar("admin.listen"))
	if defaultAdmin == "" {
		defaultAdmin = config.Defaults().Admin.Listen
	}
	addr := fs.String("admin", defaultAdmin, "kproxy admin server, host:port or URL (default: "+config.EnvVar("admin.listen")+" or admin.listen's default)")
	asJSON := fs.Bool("json", false, "print /debug/sessions as it is served")
	limit := fs.Int("limit", 100, "at most this many sessions, the most stuck first")
	if err := cli.Parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	body, err := fetchSessions(*addr, *limit)
	if err != nil {
		return err
	}
	if *asJSON {
		_, err := stdout.Write(body)
		return err
	}
	var page sessioninfo.Page
	if err := json.Unmarshal(body, &page); err != nil {
		return fmt.Errorf("%s: not a /debug/sessions answer: %w", *addr, err)
	}
	renderSessions(stdout, page)
	return nil
}

func fetchSessions(addr string, limit int) ([]byte, error) {
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	url := strings.TrimRight(base, "/") + "/debug/sessions?limit=" + strconv.Itoa(limit)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w\n(is kproxy's admin server at %s? For a pod: kubectl port-forward pod/NAME 9644, then --admin 127.0.0.1:9644)", err, addr)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s: %s: %s", url, resp.Status, e.Error)
		}
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return body, nil
}

// renderSessions prints one line per session and, indented under it, one
// per lane; a lane whose oldest request is past its own timeout is marked
// with "!" and STUCK.
func renderSessions(w io.Writer, page sessioninfo.Page) {
	if len(page.Sessions) == 0 {
		fmt.Fprintf(w, "no sessions (%d open)\n", page.Total)
		return
	}
	header := []string{"CLIENT", "BROKER", "CLIENT ID", "SOFTWARE", "PRINCIPAL", "ORDERING", "AGE", "IN", "OUT", "REQS", "IN FLIGHT", "HELD", "FETCH WAIT"}
	rows := [][]string{header}
	var lanes [][][]string // per session, its lane rows
	for _, s := range page.Sessions {
		ordering := orDash(s.Ordering)
		if s.OrderingReason != "" {
			ordering += " (" + s.OrderingReason + ")"
		}
		held := strconv.Itoa(s.Held.Answers)
		if s.Held.Answers > 0 {
			held += " " + millis(s.Held.LongestMs)
		}
		fetchWait := s.FetchWait.State
		if s.FetchWait.State == sessioninfo.FetchWaitCapping {
			fetchWait += " " + millis(s.FetchWait.BudgetMs)
		}
		rows = append(rows, []string{
			s.Client, s.Broker, orDash(s.ClientID), orDash(strings.TrimSpace(s.SoftwareName + " " + s.SoftwareVersion)),
			orDash(s.Principal), ordering, millis(s.AgeMs), size(s.BytesIn), size(s.BytesOut),
			strconv.FormatInt(s.Requests, 10), strconv.Itoa(s.InFlight), held, fetchWait,
		})
		var lr [][]string
		if s.Bridged != "" {
			lr = append(lr, []string{"bridged", s.Bridged, "", "", "", ""})
		}
		for _, l := range s.Lanes {
			oldest, mark := "", ""
			if o := l.Oldest; o != nil {
				oldest = "oldest " + o.API + " " + millis(o.AgeMs)
				if o.TimeoutMs > 0 {
					oldest += " of " + millis(o.TimeoutMs)
				}
				if o.Overdue {
					mark = "STUCK"
				}
			}
			lr = append(lr, []string{l.Group, orDash(l.Upstream), l.State, strconv.Itoa(l.InFlight) + " in flight", oldest, mark})
		}
		lanes = append(lanes, lr)
	}
	sessionWidths := widths(rows)
	var all [][]string
	for _, lr := range lanes {
		all = append(all, lr...)
	}
	laneWidths := widths(all)
	writeRow(w, "", rows[0], sessionWidths)
	for i, row := range rows[1:] {
		writeRow(w, "", row, sessionWidths)
		for _, l := range lanes[i] {
			prefix := "    "
			if l[len(l)-1] != "" {
				prefix = "  ! "
			}
			writeRow(w, prefix, l, laneWidths)
		}
	}
	if page.Total > len(page.Sessions) {
		fmt.Fprintf(w, "(%d of %d sessions shown, the most stuck first; --limit for more)\n", len(page.Sessions), page.Total)
	}
}

func widths(rows [][]string) []int {
	var out []int
	for _, r := range rows {
		for i, c := range r {
			if i == len(out) {
				out = append(out, 0)
			}
			out[i] = max(out[i], len([]rune(c)))
		}
	}
	return out
}

func writeRow(w io.Writer, prefix string, cells []string, widths []int) {
	var b strings.Builder
	b.WriteString(prefix)
	for i, c := range cells {
		b.WriteString(c)
		if i < len(cells)-1 {
			b.WriteString(strings.Repeat(" ", widths[i]-len([]rune(c))+2))
		}
	}
	fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// millis prints a duration the way a person reads it at a glance.
func millis(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	switch {
	case d < time.Second:
		return strconv.FormatInt(ms, 10) + "ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	case d < time.Hour:
		return d.Truncate(time.Second).String()
	}
	return d.Truncate(time.Minute).String()
}

func size(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + "B"
	}
	v, suffix := float64(n), ""
	for _, s := range []string{"KiB", "MiB", "GiB", "TiB"} {
		v /= unit
		suffix = s
		if v < unit {
			break
		}
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + suffix
}
