// Package sidecar starts and stops kproxy as a process runs it: the Kafka
// listeners behind an admin server, and the process logger. The production
// command (cmd/kproxy) and the developer command (cmd/kproxy-dev) share it.
package sidecar

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/admin"
	"github.com/kproxy/kproxy/internal/listener"
	"github.com/kproxy/kproxy/internal/metrics"
)

// Proxy is kproxy running: its Kafka listeners and its admin server.
type Proxy struct {
	Server  *listener.Server
	Admin   *admin.Server
	Metrics *metrics.Metrics
}

// Start binds the admin server, then the Kafka listeners. The admin server
// comes first so that /healthz answers, and /readyz says why not ready,
// while upstream metadata is still being fetched.
func Start(ctx context.Context, cfg config.Config, log *zap.Logger, reg *prometheus.Registry, version string) (*Proxy, error) {
	m := metrics.New(reg, version)
	srv, err := listener.New(cfg, log, m)
	if err != nil {
		return nil, err
	}
	debug := admin.DebugSessions(srv, admin.DebugAllowed(cfg.Admin.Listen, cfg.Admin.DebugEndpoints))
	adm, err := admin.Listen(cfg.Admin.Listen, admin.Handler(reg, srv, log, debug), log)
	if err != nil {
		return nil, err
	}
	if err := srv.Start(ctx); err != nil {
		_ = adm.Shutdown(context.Background())
		return nil, err
	}
	return &Proxy{Server: srv, Admin: adm, Metrics: m}, nil
}

// Shutdown drains the Kafka side within timeout (/readyz answers 503 and
// /metrics stays up meanwhile), then stops the admin server.
func (p *Proxy) Shutdown(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := p.Server.Shutdown(ctx)
	actx, acancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer acancel()
	return errors.Join(err, p.Admin.Shutdown(actx))
}

// NewLogger is the process logger, writing to stderr.
func NewLogger(c config.Log) (*zap.Logger, error) {
	return BuildLogger(c, zapcore.Lock(os.Stderr))
}

// NewLoggerAt is NewLogger with its level held in lvl, which it sets to
// c.Level: a reload changes the level through lvl.
func NewLoggerAt(c config.Log, lvl zap.AtomicLevel) (*zap.Logger, error) {
	return BuildLoggerAt(c, zapcore.Lock(os.Stderr), lvl)
}

// BuildLogger makes the process logger: JSON lines (log.format json) or
// human-readable lines (console), both with ISO 8601 times, stack traces
// only at error, no sampling (lifecycle lines must not be dropped).
func BuildLogger(c config.Log, out zapcore.WriteSyncer) (*zap.Logger, error) {
	return BuildLoggerAt(c, out, zap.NewAtomicLevel())
}

// BuildLoggerAt is BuildLogger with the level held in lvl.
func BuildLoggerAt(c config.Log, out zapcore.WriteSyncer, lvl zap.AtomicLevel) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, err
	}
	lvl.SetLevel(level)
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	switch c.Format {
	case "console":
		ec.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	default:
		enc = zapcore.NewJSONEncoder(ec)
	}
	core := zapcore.NewCore(enc, out, lvl)
	return zap.New(core, zap.AddCaller(), zap.AddStacktrace(zapcore.ErrorLevel), zap.ErrorOutput(out)), nil
}
