// Package admin is kproxy's HTTP server for operators: Prometheus metrics
// and the health endpoints a kubelet or a load balancer probes.
//
//	/metrics  Prometheus exposition of the registry handed in
//	/healthz  200 while the process serves
//	/readyz   200 once the proxy is ready, else 503 with a JSON reason
//	/debug/sessions  what each client session is doing (DebugSessions)
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// Readiness is what /readyz asks of the proxy.
type Readiness interface {
	// Ready reports whether the listeners are bound and upstream metadata
	// has been fetched.
	Ready() bool
	// NotReadyReason says in a few words why Ready is false.
	NotReadyReason() string
}

// Handler serves /metrics from g and /healthz and /readyz from r, and what
// opts add.
func Handler(g prometheus.Gatherer, r Readiness, log *zap.Logger, opts ...Option) http.Handler {
	mux := http.NewServeMux()
	for _, o := range opts {
		o(mux)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:      zap.NewStdLog(log.Named("metrics")),
		ErrorHandling: promhttp.ContinueOnError, // a partial scrape beats none
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"ok": true})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if r.Ready() {
			writeJSON(w, http.StatusOK, readyz{Ready: true})
			return
		}
		reason := r.NotReadyReason()
		if reason == "" { // became ready between the two calls
			reason = "starting"
		}
		writeJSON(w, http.StatusServiceUnavailable, readyz{Ready: false, Reason: reason})
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, "kproxy admin: /metrics /healthz /readyz /debug/sessions\n")
	})
	return mux
}

type readyz struct {
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Server is the admin HTTP server on one address.
type Server struct {
	log  *zap.Logger
	http *http.Server
	ln   net.Listener
	done chan struct{}
}

// Listen binds addr and serves h until Shutdown.
func Listen(addr string, h http.Handler, log *zap.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin.listen %q: %w", addr, err)
	}
	s := &Server{
		log: log,
		http: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      30 * time.Second, // a scrape is small; a stuck scraper is not kept
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          zap.NewStdLog(log.Named("http")),
		},
		ln:   ln,
		done: make(chan struct{}),
	}
	log.Info("listening", zap.String("listener", "admin"), zap.String("addr", ln.Addr().String()))
	go func() {
		defer close(s.done)
		if err := s.http.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin server stopped", zap.Error(err))
		}
	}()
	return s, nil
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Shutdown stops accepting and waits, until ctx ends, for requests being
// served; then it closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if err != nil {
		_ = s.http.Close()
	}
	<-s.done
	return err
}
