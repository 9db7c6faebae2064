package main

import (
	"errors"
	"fmt"
	"io"

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
	cfg, problems := config.Check(path)
	if errors.As(problems, new(*config.FileError)) {
		return problems
	}
	out, err := cfg.YAML()
	if err != nil {
		return err
	}
	_, _ = stdout.Write(out)
	if problems != nil {
		return fmt.Errorf("invalid configuration:\n%w", problems)
	}
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
	log, err := sidecar.NewLogger(cfg.Log)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // nothing to do about a failed flush at exit

	sigs := notifyStop()
	defer sigs.stop()
	return serve(sigs, cfg, log, prometheus.NewRegistry())
}

// serve runs the proxy until the first stop signal, then stops gracefully
// (signals.go).
func serve(sigs *stopSignals, cfg config.Config, log *zap.Logger, reg *prometheus.Registry) error {
	p, err := sidecar.Start(sigs.begin, cfg, log, reg, version)
	if err != nil {
		return err
	}
	log.Info("kproxy started", zap.String("version", version), zap.String("bootstrap", p.Server.BootstrapAddr()), zap.String("admin", p.Admin.Addr()), zap.Strings("upstream", cfg.Upstream.BootstrapServers))
	<-sigs.begin.Done()
	log.Info("shutting down", zap.String("mode", cfg.ShutdownMode), zap.Float64("timeout_s", cfg.ShutdownTimeout.Seconds()))
	if err := stop(p, cfg, sigs.hurry); err != nil {
		log.Warn("shutdown incomplete", zap.Error(err))
	}
	log.Info("kproxy stopped")
	return nil
}
