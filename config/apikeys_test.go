package config

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestEveryAPIKeyPlaced holds DefaultGroups and docs/API_KEYS.md to kmsg:
// every key kmsg knows is in exactly one default group, and the document
// has a row for it naming that group and a reason. A kmsg upgrade that adds
// a key fails here until someone decides where it goes.
func TestEveryAPIKeyPlaced(t *testing.T) {
	placed := map[string]string{}
	for g, apis := range DefaultGroups() {
		for _, api := range apis {
			if prev, dup := placed[api]; dup {
				t.Errorf("%s is in default groups %q and %q", api, prev, g)
			}
			placed[api] = g
		}
	}
	rows := apiKeyRows(t)
	for k := range int16(kmsg.MaxKey + 1) {
		if kmsg.RequestForKey(k) == nil {
			continue
		}
		name := kmsg.NameForKey(k)
		row, documented := rows[k]
		delete(rows, k)
		g, ok := placed[name]
		if !ok {
			t.Errorf("key %d %s is in no default group: place it in config.DefaultGroups and docs/API_KEYS.md", k, name)
			continue
		}
		delete(placed, name)
		switch {
		case !documented:
			t.Errorf("docs/API_KEYS.md has no row for key %d %s", k, name)
		case row.name != name || row.group != g:
			t.Errorf("docs/API_KEYS.md row for key %d says %s in %q; the code has %s in %q", k, row.name, row.group, name, g)
		case len(row.why) < 10:
			t.Errorf("docs/API_KEYS.md row for key %d %s gives no reason", k, name)
		}
	}
	for api, g := range placed {
		t.Errorf("default group %q names %s, which kmsg does not know", g, api)
	}
	for k, row := range rows {
		t.Errorf("docs/API_KEYS.md has a row for key %d %s, which kmsg does not know", k, row.name)
	}
}

type apiKeyRow struct{ name, group, why string }

// apiKeyRows reads the "| key | API | group | why |" table.
func apiKeyRows(t *testing.T) map[int16]apiKeyRow {
	t.Helper()
	doc, err := os.ReadFile("../docs/API_KEYS.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile(`^\| (\d+) \| (\w+) \| (\w+) \| (.*) \|$`)
	rows := map[int16]apiKeyRow{}
	for _, line := range strings.Split(string(doc), "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		k, err := strconv.ParseInt(m[1], 10, 16)
		if err != nil {
			t.Fatalf("docs/API_KEYS.md: %q: %v", line, err)
		}
		if _, dup := rows[int16(k)]; dup {
			t.Errorf("docs/API_KEYS.md has two rows for key %d", k)
		}
		rows[int16(k)] = apiKeyRow{m[2], m[3], m[4]}
	}
	if len(rows) == 0 {
		t.Fatal("docs/API_KEYS.md: no key table found")
	}
	return rows
}

// TestLoadDerivesDefaultGroup: an API a file moves out of its default group
// lands in "default" in the effective configuration, and one the file moves
// into a group leaves "default", with no conflict.
func TestLoadDerivesDefaultGroup(t *testing.T) {
	path := writeFile(t, `
upstream:
  bootstrap_servers: [k:9092]
routing:
  groups:
    admin: [CreateTopics, Metadata]
`)
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	def := strings.Join(cfg.Routing.Groups[DefaultGroupName], ",")
	for _, want := range []string{"ListOffsets", "CreateACLs", "FindCoordinator"} {
		if !strings.Contains(","+def+",", ","+want+",") {
			t.Errorf("default group lacks %s, which no group names: %s", want, def)
		}
	}
	if strings.Contains(","+def+",", ",Metadata,") {
		t.Errorf("default group still lists Metadata, which the file moved to admin: %s", def)
	}
	if got := cfg.Routing.Groups["coordination"]; !strings.Contains(strings.Join(got, ","), "StreamsGroupHeartbeat") {
		t.Errorf("coordination = %v, want the default list", got)
	}
	out, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"- StreamsGroupHeartbeat", "- ListOffsets", "- FindCoordinator"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("check-config output lacks %q", want)
		}
	}
}

// TestShareSessionSplitRefused: ShareFetch and ShareAcknowledge share one
// share-session epoch; a configuration that splits them names both.
func TestShareSessionSplitRefused(t *testing.T) {
	for name, groups := range map[string]map[string][]string{
		"two groups":      {"fetch": {"Fetch", "ShareFetch"}, "acks": {"ShareAcknowledge"}},
		"one left behind": {"fetch": {"Fetch", "ShareAcknowledge"}},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := Defaults()
			cfg.Upstream.BootstrapServers = []string{"k:9092"}
			cfg.Routing.Groups = completeGroups(groups)
			err := cfg.Validate()
			if err == nil {
				t.Fatal("split accepted")
			}
			for _, want := range []string{"ShareFetch", "ShareAcknowledge", "share-session epoch"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q: %v", want, err)
				}
			}
		})
	}
	cfg := Defaults()
	cfg.Upstream.BootstrapServers = []string{"k:9092"}
	cfg.Routing.Groups = completeGroups(map[string][]string{"fetch": {"Fetch"}, "share": {"ShareFetch", "ShareAcknowledge"}})
	if err := cfg.Validate(); err != nil {
		t.Errorf("both in one group of their own rejected: %v", err)
	}
}
