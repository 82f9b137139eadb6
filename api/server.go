package api

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/drkit/drkit/internal/drill"
	"github.com/drkit/drkit/snapshots"
)

// shutdownGrace bounds how long in-flight requests may take once drd stops.
const shutdownGrace = 3 * time.Second

// Options configure a Server.
type Options struct {
	// Addr is host:port to listen on.
	Addr string
	// Gatherer provides /metrics.
	Gatherer prometheus.Gatherer
	// Ready reports whether drd as a whole is ready; nil means always ready.
	Ready func() error
	Log   *slog.Logger

	// Version is drd's version, reported by /api/v1/status.
	Version string
	// Clusters are what the JSON API serves.
	Clusters []Cluster
	// Schedules lists the periodic jobs and their recent runs; nil means none.
	Schedules func(ctx context.Context) []snapshots.JobStatus
	// Drills lists the drills drd ran, newest first; nil means none.
	Drills func(ctx context.Context) ([]drill.Report, error)
	// Tokens authenticate API requests; nil means none are configured.
	Tokens *Tokens
	// TLS, if set, makes the listener serve HTTPS; with ClientCAs set, a
	// verified client certificate authenticates a request.
	TLS *tls.Config
	// ProtectAll requires authentication on /healthz, /readyz and /metrics too.
	ProtectAll bool
}

// Server is drd's HTTP listener, run as a lifecycle component.
type Server struct {
	opts  Options
	http  *http.Server
	addr  atomic.Pointer[net.Addr]
	ready chan struct{}
	jobs  jobs
	// runCtx is Run's context: jobs started by requests live as long as drd.
	runCtx atomic.Pointer[context.Context]
}

// NewServer returns a server; it listens only when Run is called.
func NewServer(opts Options) *Server {
	s := &Server{opts: opts, ready: make(chan struct{})}
	mux := http.NewServeMux()
	open := func(h http.HandlerFunc) http.HandlerFunc {
		if opts.ProtectAll {
			return s.read(h)
		}
		return h
	}
	metrics := promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{
		EnableOpenMetrics: true,
		ErrorLog:          slog.NewLogLogger(opts.Log.Handler(), slog.LevelError),
	})
	mux.HandleFunc("GET /healthz", open(s.healthz))
	mux.HandleFunc("GET /readyz", open(s.readyz))
	mux.HandleFunc("GET /metrics", open(metrics.ServeHTTP))
	s.routes(mux)
	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         opts.TLS,
		ErrorLog:          slog.NewLogLogger(opts.Log.Handler(), slog.LevelWarn),
	}
	return s
}

// jobCtx is the context jobs run under: drd's, once Run has started.
func (s *Server) jobCtx() context.Context {
	if c := s.runCtx.Load(); c != nil {
		return *c
	}
	return context.Background()
}

// Name implements lifecycle.Component.
func (s *Server) Name() string { return "http" }

// Run listens on Addr and serves until ctx is done, then drains in-flight requests.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s (drd.listen): %w", s.opts.Addr, err)
	}
	if s.opts.TLS != nil {
		ln = tls.NewListener(ln, s.opts.TLS)
	}
	s.runCtx.Store(&ctx)
	addr := ln.Addr()
	s.addr.Store(&addr)
	close(s.ready)
	s.opts.Log.Info("listening", "addr", addr.String(), "tls", s.opts.TLS != nil, "api_auth", s.authenticated())

	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := s.http.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down http: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http: %w", err)
	}
	return nil
}

// Ready implements lifecycle.ReadyChecker: ready once listening.
func (s *Server) Ready() error {
	select {
	case <-s.ready:
		return nil
	default:
		return errors.New("not listening yet")
	}
}

// Addr returns the address the server listens on, or nil before it does.
func (s *Server) Addr() net.Addr {
	if a := s.addr.Load(); a != nil {
		return *a
	}
	return nil
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if s.opts.Ready != nil {
		if err := s.opts.Ready(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
