package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestCheckConfigAcceptsExample(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"check-config", "--config", "../../config/kproxy.yaml"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "bootstrap: 127.0.0.1:9092") {
		t.Fatalf("effective configuration not printed:\n%s", out.String())
	}
}

func TestCheckConfigListsEveryProblem(t *testing.T) {
	t.Setenv("KPROXY_UPSTREAM_BOOTSTRAP_SERVERS", "")
	t.Setenv("KPROXY_LOG_LEVEL", "loud")
	t.Setenv("KPROXY_LISTEN_BOOTSTRAP", "localhost")
	var out, errOut bytes.Buffer
	if code := run([]string{"check-config"}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{"KPROXY_UPSTREAM_BOOTSTRAP_SERVERS", `log.level (KPROXY_LOG_LEVEL) "loud"`, `listen.bootstrap (KPROXY_LISTEN_BOOTSTRAP) "localhost": missing port`} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("missing %q in:\n%s", want, errOut.String())
		}
	}
}

func TestVersionAndUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"version"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "kproxy ") {
		t.Fatalf("version: exit %d, %q", code, out.String())
	}
	if code := run([]string{"frobnicate"}, &out, &errOut); code != 2 {
		t.Fatalf("unknown command: exit %d, want 2", code)
	}
}
