package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

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
	path, err := configFlag("kproxy run [--config FILE]", "Runs the proxy until SIGINT or SIGTERM, then drains within shutdown_timeout.", args, stdout, stderr)
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

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, cfg, log, prometheus.NewRegistry())
}

// serve runs the proxy until ctx ends, then shuts down gracefully.
func serve(ctx context.Context, cfg config.Config, log *zap.Logger, reg *prometheus.Registry) error {
	p, err := sidecar.Start(ctx, cfg, log, reg, version)
	if err != nil {
		return err
	}
	log.Info("kproxy started", zap.String("version", version), zap.String("bootstrap", p.Server.BootstrapAddr()), zap.String("admin", p.Admin.Addr()), zap.Strings("upstream", cfg.Upstream.BootstrapServers))
	<-ctx.Done()
	log.Info("shutting down", zap.Float64("timeout_s", cfg.ShutdownTimeout.Seconds()))
	if err := p.Shutdown(cfg.ShutdownTimeout); err != nil {
		log.Warn("shutdown incomplete", zap.Error(err))
	}
	log.Info("kproxy stopped")
	return nil
}
