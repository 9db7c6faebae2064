package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// projectEnv are KPROXY_* variables of the project's own scripts, not
// configuration: scripts/test, .ci/install-compat-deps.sh and the bench's
// child processes read them, and a test run that exports them must not
// fail here.
var projectEnv = map[string]bool{
	"KPROXY_COMPAT":          true,
	"KPROXY_COMPAT_UNPINNED": true,
	"KPROXY_BENCH_CHILD":     true,
}

// Keys lists every configuration key, dotted, in the order of Config.
func Keys() []string {
	return leafKeys("", reflect.TypeFor[Config](), nil)
}

func leafKeys(prefix string, t reflect.Type, out []string) []string {
	for i := range t.NumField() {
		key := t.Field(i).Tag.Get("mapstructure")
		if prefix != "" {
			key = prefix + "." + key
		}
		if ft := t.Field(i).Type; ft.Kind() == reflect.Struct && ft != durationType {
			out = leafKeys(key, ft, out)
		} else {
			out = append(out, key)
		}
	}
	return out
}

// mapKeys are the keys whose values are maps: their sub-keys are the map's
// own (group names, node ids, user names) and are set through the map's
// one variable.
var mapKeys = []string{"routing.groups", "listen.broker_ports", "listen.sasl.users"}

// envKey is the key whose environment variable sets key: the map's for a
// map entry (routing.groups.fetch is set by KPROXY_ROUTING_GROUPS).
func envKey(key string) string {
	for _, m := range mapKeys {
		if strings.HasPrefix(key, m+".") {
			return m
		}
	}
	return key
}

// unknownFileKeys reports every key of the YAML document raw (under prefix,
// shaped like t) that Config does not have, suggesting the nearest key.
func unknownFileKeys(prefix string, raw map[string]any, t reflect.Type) []error {
	fields := map[string]reflect.Type{}
	candidates := append(Keys(), sectionKeys()...)
	for i := range t.NumField() {
		name := t.Field(i).Tag.Get("mapstructure")
		fields[name] = t.Field(i).Type
		if prefix != "" {
			candidates = append(candidates, prefix+"."+name)
		}
	}
	names := make([]string, 0, len(raw))
	for k := range raw {
		names = append(names, k)
	}
	sort.Strings(names)
	var problems []error
	for _, name := range names {
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		ft, ok := fields[strings.ToLower(name)]
		if !ok {
			problems = append(problems, fmt.Errorf("%s: unknown key%s", key, suggest(key, candidates)))
			continue
		}
		switch {
		case ft.Kind() == reflect.Struct && ft != durationType:
			if m, ok := raw[name].(map[string]any); ok {
				problems = append(problems, unknownFileKeys(key, m, ft)...)
			}
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			items, _ := raw[name].([]any)
			for i, item := range items {
				if m, ok := item.(map[string]any); ok {
					problems = append(problems, unknownFileKeys(fmt.Sprintf("%s[%d]", key, i), m, ft.Elem())...)
				}
			}
		}
	}
	return problems
}

// sectionKeys are the keys that hold other keys (upstream, upstream.tls, …).
func sectionKeys() []string {
	seen := map[string]bool{}
	var out []string
	for _, k := range Keys() {
		for i := strings.Index(k, "."); i >= 0; i = next(k, i) {
			if s := k[:i]; !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out
}

func next(s string, i int) int {
	j := strings.Index(s[i+1:], ".")
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

// unknownEnv reports every KPROXY_* variable in environ that sets no key,
// suggesting the nearest one. Variables that cfg names as where a client
// password is (listen.sasl.users "env:VARIABLE") are not configuration and
// may share the prefix.
func unknownEnv(environ []string, cfg Config) []error {
	known := map[string]string{} // variable → key
	for _, k := range Keys() {
		known[EnvVar(k)] = k
	}
	for _, ref := range cfg.Listen.SASL.Users {
		if kind, name, ok := strings.Cut(ref, ":"); ok && kind == "env" {
			known[name] = ""
		}
	}
	vars := make([]string, 0, len(known))
	for v, k := range known {
		if k != "" {
			vars = append(vars, v)
		}
	}
	var names []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix+"_") || projectEnv[name] {
			continue
		}
		if _, ok := known[name]; !ok {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var problems []error
	for _, name := range names {
		hint := suggest(name, vars)
		if hint != "" {
			hint = strings.TrimSuffix(hint, "?") + " (" + known[nearest(name, vars)] + ")?"
		}
		problems = append(problems, fmt.Errorf("%s: unknown environment variable%s", name, hint))
	}
	return problems
}

// suggest is ", did you mean X?" for the candidate nearest to name, or ""
// when none is near enough to be a plausible typo.
func suggest(name string, candidates []string) string {
	best := nearest(name, candidates)
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %s?", best)
}

// nearest is the candidate at the smallest edit distance from name, on the
// whole name or on its last part (a key put in the wrong section), if that
// distance is at most a third of the name's last part (and at least 2).
func nearest(name string, candidates []string) string {
	last := lastPart(name)
	limit := max(2, len(last)/3)
	best, bestDist, bestFull := "", limit+1, 0
	for _, c := range candidates {
		cl, l := strings.ToLower(lastPart(c)), strings.ToLower(last)
		full := editDistance(strings.ToLower(name), strings.ToLower(c))
		d := min(full, editDistance(l, cl))
		if len(l) >= 4 && (strings.HasPrefix(cl, l) || strings.HasPrefix(l, cl)) {
			d = min(d, 1) // a shortened or lengthened name: order, ordering
		}
		// Nearest by name, then by whole key (the same section wins).
		if d < bestDist || d == bestDist && full < bestFull {
			best, bestDist, bestFull = c, d, full
		}
	}
	return best
}

func lastPart(s string) string {
	if i := strings.LastIndexAny(s, "."); i >= 0 {
		return s[i+1:]
	}
	return s
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
