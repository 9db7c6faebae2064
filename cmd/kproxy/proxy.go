package main

import (
	"context"
	"errors"
	"fmt"
	"io"
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

func checkConfig(args []string, stdout io.Writer) error {
	path, err := configFlag("check-config", args, stdout)
	if err != nil {
		return err
	}
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	out, err := cfg.YAML()
	if err != nil {
		return err
	}
	_, _ = stdout.Write(out)
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	return nil
}

func runProxy(args []string, stderr io.Writer) error {
	path, err := configFlag("run", args, stderr)
	if err != nil {
		return err
	}
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	level := zap.NewAtomicLevel()
	log, err := buildLoggerAt(cfg.Log, zapcore.Lock(os.Stderr), level)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // nothing to do about a failed flush at exit

	sigs := notifyStop()
	defer sigs.stop()
	hup := notifyReload()
	return serve(sigs, hup, path, cfg, log, level, prometheus.NewRegistry())
}

// serve runs the proxy until the first stop signal, reloading the
// configuration at path on SIGHUP (reload.go), then stops gracefully
// (signals.go) with the shutdown settings in effect.
func serve(sigs *stopSignals, hup chan os.Signal, path string, cfg config.Config, log *zap.Logger, level zap.AtomicLevel, reg *prometheus.Registry) error {
	p, err := start(sigs.begin, cfg, log, reg)
	if err != nil {
		return err
	}
	log.Info("kproxy started", zap.String("version", version), zap.String("bootstrap", p.srv.BootstrapAddr()), zap.String("admin", p.admin.Addr()), zap.Strings("upstream", cfg.Upstream.BootstrapServers))
	r := &reloader{path: path, log: log, level: level, srv: p.srv, metrics: p.metrics, running: cfg}
	p.metrics.ConfigLastReloadSuccess.Set(float64(time.Now().Unix()))
	stopReloads := make(chan struct{})
	r.watch(hup, stopReloads)
	r.watchFile(cfg.ConfigWatchInterval, stopReloads)
	<-sigs.begin.Done()
	close(stopReloads)
	cfg = r.current()
	log.Info("shutting down", zap.String("mode", cfg.ShutdownMode), zap.Duration("timeout", cfg.ShutdownTimeout))
	if err := p.stop(cfg, sigs.hurry); err != nil {
		log.Warn("shutdown incomplete", zap.Error(err))
	}
	log.Info("kproxy stopped")
	return nil
}

// proxy is kproxy running: its Kafka listeners and its admin server.
type proxy struct {
	srv     *listener.Server
	admin   *admin.Server
	metrics *metrics.Metrics
}

// start binds the admin server, then the Kafka listeners. The admin server
// comes first so that /healthz answers, and /readyz says why not ready,
// while upstream metadata is still being fetched.
func start(ctx context.Context, cfg config.Config, log *zap.Logger, reg *prometheus.Registry) (*proxy, error) {
	m := metrics.New(reg, version)
	srv, err := listener.New(cfg, log, m)
	if err != nil {
		return nil, err
	}
	adm, err := admin.Listen(cfg.Admin.Listen, admin.Handler(reg, srv, log), log)
	if err != nil {
		return nil, err
	}
	if err := srv.Start(ctx); err != nil {
		_ = adm.Shutdown(context.Background())
		return nil, err
	}
	return &proxy{srv: srv, admin: adm, metrics: m}, nil
}

// shutdown drains the Kafka side within timeout (/readyz answers 503 and
// /metrics stays up meanwhile), then stops the admin server.
func (p *proxy) shutdown(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := p.srv.Shutdown(ctx)
	actx, acancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer acancel()
	return errors.Join(err, p.admin.Shutdown(actx))
}

func newLogger(c config.Log) (*zap.Logger, error) {
	return buildLogger(c, zapcore.Lock(os.Stderr))
}

// buildLogger makes the process logger: JSON lines (log.format json) or
// human-readable lines (console), both with ISO 8601 times, stack traces
// only at error, no sampling (lifecycle lines must not be dropped).
func buildLogger(c config.Log, out zapcore.WriteSyncer) (*zap.Logger, error) {
	return buildLoggerAt(c, out, zap.NewAtomicLevel())
}

// buildLoggerAt is buildLogger with the level held in lvl, which it sets
// to c.Level: a reload changes the level through lvl.
func buildLoggerAt(c config.Log, out zapcore.WriteSyncer, lvl zap.AtomicLevel) (*zap.Logger, error) {
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
