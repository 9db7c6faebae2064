package main

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeQuickStartAndTestStages holds the README to what runs: its
// first command starts this demo in one line, and its Tests section names
// every stage scripts/test runs, the commands of which scripts/test has.
func TestReadmeQuickStartAndTestStages(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile("../../scripts/test")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "```sh\n")
	if !ok || !strings.HasPrefix(block, "go run ./cmd/kproxy-dev demo ") {
		first, _, _ := strings.Cut(block, "\n")
		t.Errorf("the README's first command is %q, want go run ./cmd/kproxy-dev demo", first)
	}
	_, tests, ok := strings.Cut(string(readme), "\n## Tests\n")
	if !ok {
		t.Fatal("README has no ## Tests section")
	}
	tests, _, _ = strings.Cut(tests, "\n## ")
	for _, stage := range []struct{ readme, script string }{
		{"`go vet ./...`", "go vet ./..."},
		{"`go test -race ./...`", "go test -race"},
		{"`-benchtime 1x`", "-benchtime 1x"},
		{"`FUZZTIME`", "scripts/fuzz"},
		{"`SOAK_DURATION`", "go run ./cmd/kproxy-dev soak"},
		{"deploy manifest", "deploy/manifesttest"},
		{"`kproxy-dev demo`", "./cmd/kproxy-dev"},
		{"compatibility matrix", "go run ./test/compat/matrix"},
		{"`.ci/install-compat-deps.sh`", ".ci/install-compat-deps.sh"},
		{"`KPROXY_COMPAT=0`", "KPROXY_COMPAT"},
	} {
		if !strings.Contains(tests, stage.readme) {
			t.Errorf("README Tests section does not mention %s", stage.readme)
		}
		if !strings.Contains(string(script), stage.script) {
			t.Errorf("scripts/test does not run %s, which the README's Tests section names", stage.script)
		}
	}
}
