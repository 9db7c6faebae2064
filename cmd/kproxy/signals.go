package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/sidecar"
)

// stopSignals turns SIGTERM and SIGINT into the stages of a stop: the
// first ends begin; each later one is a token on hurry, which ends the
// stage under way (the wait for clients, then the wait for requests in
// flight).
type stopSignals struct {
	begin  context.Context
	hurry  chan struct{}
	cancel func()
}

func notifyStop() *stopSignals {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	begin, cancel := context.WithCancel(context.Background())
	s := &stopSignals{begin: begin, hurry: make(chan struct{}, 2)}
	done := make(chan struct{})
	s.cancel = func() {
		signal.Stop(sigs)
		cancel()
		close(done)
	}
	go func() {
		for {
			select {
			case <-sigs:
			case <-done:
				return
			}
			if begin.Err() == nil {
				cancel()
				continue
			}
			select {
			case s.hurry <- struct{}{}:
			default:
			}
		}
	}()
	return s
}

func (s *stopSignals) stop() { s.cancel() }

// inFlightReserve is the part of shutdown_timeout kept for requests in
// flight when the wait for clients ends: enough for a client's long-poll
// Fetch (5 s for kgo), never more than a third of the whole.
func inFlightReserve(timeout time.Duration) time.Duration {
	return min(5*time.Second, timeout/3)
}

// stop ends the proxy within cfg.ShutdownTimeout of its call. With
// shutdown_mode wait_for_clients it first waits for the app's client
// connections to go (WaitForClients), for at most the timeout less
// inFlightReserve; then it stops accepting, lets requests in flight finish
// and closes what is left at the deadline. A token on hurry ends the stage
// under way.
func stop(p *sidecar.Proxy, cfg config.Config, hurry <-chan struct{}) error {
	deadline := time.Now().Add(cfg.ShutdownTimeout)
	if cfg.ShutdownMode == config.ShutdownWaitForClients {
		wait, cancel := context.WithDeadline(context.Background(), deadline.Add(-inFlightReserve(cfg.ShutdownTimeout)))
		stopOnHurry(wait, cancel, hurry)
		p.Server.WaitForClients(wait, cfg.ShutdownQuietPeriod)
		cancel()
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	stopOnHurry(ctx, cancel, hurry)
	err := p.Server.Shutdown(ctx)
	actx, acancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer acancel()
	return errors.Join(err, p.Admin.Shutdown(actx))
}

func stopOnHurry(ctx context.Context, cancel func(), hurry <-chan struct{}) {
	go func() {
		select {
		case <-hurry:
			cancel()
		case <-ctx.Done():
		}
	}()
}
