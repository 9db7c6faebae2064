package bench

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/listener"
	"github.com/kproxy/kproxy/internal/metrics"
)

// startProxy starts an in-process kproxy on cfg and waits until it has
// fetched upstream metadata; a kproxy that started and did not get there
// within 10s is shut down.
func startProxy(cfg config.Config) (*listener.Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	srv, err := listener.New(cfg, zap.NewNop(), metrics.NewNop())
	if err != nil {
		return nil, err
	}
	if err := srv.Start(context.Background()); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(10 * time.Second); !srv.Ready(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			stopProxy(srv)
			return nil, errors.New("kproxy did not fetch upstream metadata within 10s")
		}
	}
	return srv, nil
}

// stopProxy shuts an in-process kproxy down, waiting at most 5s.
func stopProxy(srv *listener.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
}
