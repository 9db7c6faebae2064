package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/sidecar"
)

func checkConfig(args []string, stdout, stderr io.Writer) error {
	path, err := configFlag("kproxy check-config [--config FILE]", "Prints the effective configuration (secrets redacted), or every problem in it.", args, stdout, stderr)
	if err != nil {
		return err
	}
	// An invalid configuration is not printed: a value that failed to
	// parse would show as the default that replaced it.
	cfg, problems := config.Check(path)
	if errors.As(problems, new(*config.FileError)) {
		return problems
	}
	if problems != nil {
		return fmt.Errorf("invalid configuration:\n%w", problems)
	}
	out, err := cfg.YAML()
	if err != nil {
		return err
	}
	_, _ = stdout.Write(out)
	return nil
}

func runProxy(args []string, stdout, stderr io.Writer) error {
	path, err := configFlag("kproxy run [--config FILE]", "Runs the proxy until SIGINT or SIGTERM, then stops as shutdown_mode says, within shutdown_timeout.", args, stdout, stderr)
	if err != nil {
		return err
	}
	cfg, err := config.Check(path)
	if err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	level := zap.NewAtomicLevel()
	log, err := sidecar.NewLoggerAt(cfg.Log, level)
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
	p, err := sidecar.Start(sigs.begin, cfg, log, reg, version)
	if err != nil {
		return err
	}
	log.Info("kproxy started", zap.String("version", version), zap.String("bootstrap", p.Server.BootstrapAddr()), zap.String("admin", p.Admin.Addr()), zap.Strings("upstream", cfg.Upstream.BootstrapServers))
	r := &reloader{path: path, log: log, level: level, srv: p.Server, metrics: p.Metrics, running: cfg}
	p.Metrics.ConfigLastReloadSuccess.Set(float64(time.Now().Unix()))
	stopReloads := make(chan struct{})
	r.watch(hup, stopReloads)
	r.watchFile(cfg.ConfigWatchInterval, stopReloads)
	<-sigs.begin.Done()
	close(stopReloads)
	cfg = r.current()
	log.Info("shutting down", zap.String("mode", cfg.ShutdownMode), zap.Float64("timeout_s", cfg.ShutdownTimeout.Seconds()))
	if err := stop(p, cfg, sigs.hurry); err != nil {
		log.Warn("shutdown incomplete", zap.Error(err))
	}
	log.Info("kproxy stopped")
	return nil
}
