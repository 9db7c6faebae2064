package sidecar

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/kproxy/kproxy/config"
)

func TestLoggerFormatsAndLevel(t *testing.T) {
	var buf bytes.Buffer
	log, err := BuildLogger(config.Log{Level: "info", Format: "json"}, zapcore.AddSync(&buf))
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("request", zap.Int32("correlation_id", 7))
	log.Info("session closed", zap.String("reason", "client_closed"), zap.Float64("duration_s", 1.5))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("want only the info line at log.level info, got:\n%s", buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatalf("log.format json: not a JSON line: %v\n%s", err, lines[0])
	}
	if rec["level"] != "info" || rec["msg"] != "session closed" || rec["reason"] != "client_closed" || rec["duration_s"] != 1.5 {
		t.Errorf("json line: %v", rec)
	}
	if ts, _ := rec["ts"].(string); ts == "" {
		t.Errorf("ts %v: want an ISO 8601 time", rec["ts"])
	} else if _, err := time.Parse("2006-01-02T15:04:05.000Z0700", ts); err != nil {
		t.Errorf("ts %q: %v", ts, err)
	}

	buf.Reset()
	log, err = BuildLogger(config.Log{Level: "debug", Format: "console"}, zapcore.AddSync(&buf))
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("request", zap.Int32("correlation_id", 7))
	log.Warn("session closed", zap.String("reason", "bad_frame"))
	out := buf.String()
	for _, want := range []string{"\tDEBUG\t", `"correlation_id": 7`, "\tWARN\t", "session closed"} {
		if !strings.Contains(out, want) {
			t.Errorf("console output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "runtime.main") || strings.Contains(out, "goroutine") {
		t.Errorf("stack trace below error level:\n%s", out)
	}

	if _, err := BuildLogger(config.Log{Level: "loud", Format: "json"}, zapcore.AddSync(&buf)); err == nil {
		t.Error("log.level loud accepted")
	}
}
