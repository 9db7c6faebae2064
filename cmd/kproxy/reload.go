package main

import (
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/listener"
	"github.com/kproxy/kproxy/internal/metrics"
)

// ownLiveKeys are the settings this command applies itself on reload: the
// log level at once, the shutdown settings at the next stop.
var ownLiveKeys = []string{"log.level", "shutdown_timeout", "shutdown_mode", "shutdown_quiet_period"}

// reloader re-reads the configuration file and the environment on SIGHUP
// and applies what can change while kproxy runs (listener.LiveKeys,
// ownLiveKeys); every other change is logged as needing a restart and left
// as it is. A file or environment that does not load or validate is
// refused with every problem logged, and the running configuration stays.
type reloader struct {
	path    string
	log     *zap.Logger
	level   zap.AtomicLevel
	srv     *listener.Server
	metrics *metrics.Metrics

	mu      sync.Mutex
	running config.Config // what is in effect: the start-up values of restart-only keys
}

// current is the configuration in effect.
func (r *reloader) current() config.Config {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running
}

// notifyReload catches SIGHUP from now on (Go's default ends the process),
// for reloader.watch.
func notifyReload() chan os.Signal {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return hup
}

// watch reloads on every signal on hup until stop is closed.
func (r *reloader) watch(hup chan os.Signal, stop <-chan struct{}) {
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-stop:
				return
			case <-hup:
				_ = r.reload()
			}
		}
	}()
}

// watchFile reloads when the file at r.path changes, looking every
// interval, until stop is closed.
func (r *reloader) watchFile(interval time.Duration, stop <-chan struct{}) {
	if interval <= 0 || r.path == "" {
		return
	}
	last, _ := fileStamp(r.path)
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			st, err := fileStamp(r.path)
			if err != nil || st == last {
				continue // a missing file is not a new configuration
			}
			last = st
			_ = r.reload()
		}
	}()
}

// fileStamp identifies a version of a file: a rewrite (or the symlink
// swap of a ConfigMap update) changes its modification time or size.
func fileStamp(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	return fi.ModTime().String() + "/" + strconv.FormatInt(fi.Size(), 10), nil
}

func (r *reloader) reload() error {
	next, err := config.Check(r.path)
	if err != nil {
		r.failed(err)
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	live := append(slices.Clone(listener.LiveKeys), ownLiveKeys...)
	running := r.running
	var applied, restart []string
	for _, key := range config.Diff(r.running, next) {
		if isLive(live, key) {
			applied = append(applied, key)
		} else {
			restart = append(restart, key)
		}
	}
	copyLive(&running, next)
	if err := r.srv.Reload(running); err != nil {
		r.failed(err)
		return err
	}
	level, _ := zapcore.ParseLevel(running.Log.Level) // validated
	r.level.SetLevel(level)
	r.running = running
	r.log.Info("configuration reloaded", zap.Strings("applied", applied))
	if len(restart) > 0 {
		r.log.Warn("configuration changes need a restart; the running values stay", zap.Strings("keys", restart))
	}
	r.metrics.ConfigReloads.WithLabelValues(metrics.ReloadSuccess).Inc()
	r.metrics.ConfigLastReloadSuccess.Set(float64(time.Now().Unix()))
	return nil
}

// failed logs every problem of a refused reload, then counts it, so that
// whoever sees the count finds the log line.
func (r *reloader) failed(err error) {
	r.log.Warn("configuration reload refused; the running configuration stays", zap.Strings("problems", problemList(err)))
	r.metrics.ConfigReloads.WithLabelValues(metrics.ReloadFailure).Inc()
}

// problemList flattens joined errors, one problem each.
func problemList(err error) []string {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []string{err.Error()}
	}
	var out []string
	for _, e := range j.Unwrap() {
		out = append(out, problemList(e)...)
	}
	return out
}

// isLive reports whether key is one of live or under one of them.
func isLive(live []string, key string) bool {
	return slices.ContainsFunc(live, func(l string) bool { return key == l || strings.HasPrefix(key, l+".") })
}

// copyLive copies the settings that change while kproxy runs from next.
func copyLive(running *config.Config, next config.Config) {
	running.Routing.Groups = next.Routing.Groups
	running.Routing.Ordering = next.Routing.Ordering
	running.Routing.ClientRules = next.Routing.ClientRules
	running.Routing.FetchWaitBudget = next.Routing.FetchWaitBudget
	running.Routing.HolWindow = next.Routing.HolWindow
	running.Limits.MaxInflightPerConnection = next.Limits.MaxInflightPerConnection
	running.Limits.MaxClientConnections = next.Limits.MaxClientConnections
	running.Limits.UpstreamAnswerGrace = next.Limits.UpstreamAnswerGrace
	running.Limits.ClientIdleTimeout = next.Limits.ClientIdleTimeout
	running.Limits.ClientWriteTimeout = next.Limits.ClientWriteTimeout
	running.Upstream.TLS = next.Upstream.TLS
	running.Upstream.SASL = next.Upstream.SASL
	running.Log.Level = next.Log.Level
	running.ShutdownTimeout = next.ShutdownTimeout
	running.ShutdownMode = next.ShutdownMode
	running.ShutdownQuietPeriod = next.ShutdownQuietPeriod
}
