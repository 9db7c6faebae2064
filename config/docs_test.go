package config

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The configuration reference: docs/CONFIGURATION.md's key table, with the
// security keys in docs/SECURITY.md's. These tests hold them, the code's
// defaults and config/kproxy.yaml (example_test.go) against each other.
var referenceDocs = []string{"../docs/CONFIGURATION.md", "../docs/SECURITY.md"}

// docRow is one row of a key table: | `key`, `key` | default | meaning |.
type docRow struct {
	file, def string
}

var (
	backticked = regexp.MustCompile("`([^`]*)`")
	keyLike    = regexp.MustCompile(`^[a-z]+(_[a-z]+)*(\.[a-z]+(_[a-z]+)*)*$`)
)

// referenceTables reads every key row of the reference's tables.
func referenceTables(t *testing.T) map[string]docRow {
	t.Helper()
	rows := map[string]docRow{}
	for _, path := range referenceDocs {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if !strings.HasPrefix(line, "| `") {
				continue
			}
			cells := strings.Split(strings.Trim(line, "|"), "|")
			if len(cells) < 3 {
				continue
			}
			for _, m := range backticked.FindAllStringSubmatch(cells[0], -1) {
				key := m[1]
				if !keyLike.MatchString(key) {
					continue // a wildcard, a value
				}
				if prev, dup := rows[key]; dup {
					t.Errorf("%s: %s is documented twice (also in %s)", filepath.Base(path), key, prev.file)
				}
				rows[key] = docRow{file: filepath.Base(path), def: strings.TrimSpace(cells[1])}
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return rows
}

// docDefault is how the reference writes a default value.
func docDefault(v any) string {
	switch v := v.(type) {
	case []string:
		if len(v) == 0 {
			return "[]"
		}
		return strings.Join(v, ", ")
	case []ClientRule:
		if len(v) == 0 {
			return "[]"
		}
	case map[int32]int, map[string]string:
		if reflect.ValueOf(v).Len() == 0 {
			return "{}"
		}
	}
	return fmt.Sprint(v)
}

// TestReferenceDocumentsEveryKeyWithItsDefault: every key of Config has a
// row in the reference, every row names a key, and each row's default is
// the code's. A default written in words, "(…)" or nothing, stands for an
// empty value.
func TestReferenceDocumentsEveryKeyWithItsDefault(t *testing.T) {
	rows := referenceTables(t)
	defaults := leaves("", reflect.ValueOf(Defaults()), map[string]any{})
	for _, key := range Keys() {
		row, ok := rows[key]
		if !ok {
			t.Errorf("%s is not in the configuration reference (docs/CONFIGURATION.md)", key)
			continue
		}
		def := defaults[key]
		if key == "routing.groups" {
			continue // TestReferenceDefaultGroups
		}
		m := backticked.FindStringSubmatch(row.def)
		if m == nil || !strings.HasPrefix(row.def, "`") {
			if !reflect.ValueOf(def).IsZero() && docDefault(def) != "[]" && docDefault(def) != "{}" {
				t.Errorf("%s: %s gives no default (%q); the code's is %s", row.file, key, row.def, docDefault(def))
			}
			continue
		}
		if d, isDuration := def.(time.Duration); isDuration {
			got, err := time.ParseDuration(m[1])
			if err != nil || got != d {
				t.Errorf("%s: %s defaults to %s; the code's is %s", row.file, key, m[1], d)
			}
			continue
		}
		if m[1] != docDefault(def) {
			t.Errorf("%s: %s defaults to %s; the code's is %s", row.file, key, m[1], docDefault(def))
		}
	}
	known := map[string]bool{}
	for _, k := range Keys() {
		known[k] = true
	}
	for key, row := range rows {
		if !known[key] && strings.ContainsAny(key, "._") { // a value (librdkafka) is not a key
			t.Errorf("%s documents %s, which is not a configuration key", row.file, key)
		}
	}
}

// TestReferenceDefaultGroups holds the reference's "Default groups" table
// against DefaultGroups: a row for every group, and every API a row names
// in its group. (Every key's place is held to the code in API_KEYS.md by
// TestEveryAPIKeyPlaced; this table only summarizes.)
func TestReferenceDefaultGroups(t *testing.T) {
	data, err := os.ReadFile(referenceDocs[0])
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\nDefault groups")
	if !ok {
		t.Fatal("docs/CONFIGURATION.md: no \"Default groups\" table")
	}
	_, section, _ = strings.Cut(section, "\n|")
	api := map[string]bool{}
	for _, name := range knownAPIs() {
		api[name] = true
	}
	rows := map[string]bool{}
	for _, line := range strings.Split("|"+section, "\n") {
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		group := strings.TrimSpace(cells[0])
		if len(cells) != 2 || strings.HasPrefix(group, "-") || strings.TrimSpace(cells[1]) == "APIs" {
			continue
		}
		rows[group] = true
		members := map[string]bool{}
		for _, a := range DefaultGroups()[group] {
			members[a] = true
		}
		for _, word := range strings.FieldsFunc(cells[1], func(r rune) bool { return r == ',' || r == ' ' || r == '(' || r == ')' || r == ';' }) {
			if api[word] && !members[word] {
				t.Errorf("docs/CONFIGURATION.md: group %s names %s, which the code puts elsewhere", group, word)
			}
		}
	}
	for g := range DefaultGroups() {
		if !rows[g] {
			t.Errorf("docs/CONFIGURATION.md: no row for group %s", g)
		}
	}
	if len(rows) != len(DefaultGroups()) {
		t.Errorf("docs/CONFIGURATION.md lists groups %v; the code has %d", rows, len(DefaultGroups()))
	}
}

// TestEveryDocumentedVariableWorks: every KPROXY_* variable that the docs,
// the example file or the deployment files name sets a key (or is one of
// the project's own script variables).
func TestEveryDocumentedVariableWorks(t *testing.T) {
	known := map[string]bool{}
	for _, k := range Keys() {
		known[EnvVar(k)] = true
	}
	for v := range projectEnv {
		known[v] = true
	}
	variable := regexp.MustCompile(`KPROXY_[A-Z0-9_]*[A-Z0-9]`)
	var files []string
	for _, pattern := range []string{"../README.md", "../docs/*.md", "kproxy.yaml", "../deploy/*/*", "../deploy/*", "../Dockerfile", "../test/compat/*.md"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	checked := 0
	for _, f := range files {
		if fi, err := os.Stat(f); err != nil || fi.IsDir() {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range variable.FindAllString(string(data), -1) {
			checked++
			if !known[v] {
				t.Errorf("%s names %s, which sets no configuration key", f, v)
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d variables found in %d files: is the glob right?", checked, len(files))
	}
}
