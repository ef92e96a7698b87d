package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server is a running keyhaven: listeners and the handler chain.
type Server struct {
	cfg            Config
	log            *slog.Logger
	metrics        *metrics
	metricsHandler http.Handler
	verifier       TokenVerifier
	planes         planes
	defaultTenant  string
	tlsConfig      *tls.Config
	portalKey      string // authenticates the portal's forwarded client address (portal.go)

	audit interface {
		Middleware(http.Handler) http.Handler
	}
	handler   http.Handler // main listener chain
	miHandler http.Handler // loopback MI listener chain

	mu         sync.Mutex
	https      *http.Server
	miServer   *http.Server
	addr       net.Addr
	background sync.WaitGroup
}

// NewLogger builds the process logger from the configuration.
func NewLogger(w io.Writer, format, level string) *slog.Logger {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "debug":
		lv = slog.LevelDebug
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func (s *Server) buildHandlers() {
	s.metricsHandler = promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})
	// Audit sits inside authentication, so events name the caller, and
	// outside the planes, so every request (refused ones too) is recorded.
	var routed http.Handler = http.HandlerFunc(s.route)
	mi := s.planes.mi
	if s.audit != nil {
		routed = s.audit.Middleware(routed)
		if mi != nil {
			mi = s.audit.Middleware(mi)
		}
	}
	s.handler = s.instrument(s.plane, s.authenticate(routed))
	if mi != nil {
		s.miHandler = s.instrument(func(*http.Request) string { return "mi" }, mi)
	}
}

// Handler returns the main handler chain (used by in-process tests).
func (s *Server) Handler() http.Handler { return s.handler }

// Addr is the bound HTTPS address once Serve has started listening.
func (s *Server) Addr() net.Addr { s.mu.Lock(); defer s.mu.Unlock(); return s.addr }

// Serve listens and serves until ctx is done, then shuts down gracefully:
// new connections are refused, in-flight requests finish (up to the shutdown
// timeout), background loops stop.
func (s *Server) Serve(ctx context.Context, ready func(addr fmtStringer)) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.cfg.Listen, err)
	}
	hs := &http.Server{
		Handler:           s.handler,
		TLSConfig:         s.tlsConfig,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.mu.Lock()
	s.https = hs
	s.addr = ln.Addr()
	s.mu.Unlock()

	errc := make(chan error, 2)
	go func() { errc <- hs.ServeTLS(ln, "", "") }()

	var mi *http.Server
	if s.miHandler != nil && s.cfg.MIListen != "" {
		mln, err := net.Listen("tcp", s.cfg.MIListen)
		if err != nil {
			_ = hs.Close()
			return fmt.Errorf("listen %s (managed-identity endpoint): %w", s.cfg.MIListen, err)
		}
		if ip := mln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
			_ = mln.Close()
			_ = hs.Close()
			return fmt.Errorf("--mi-listen %s: the plain-HTTP managed-identity endpoint must listen on a loopback address", s.cfg.MIListen)
		}
		mi = &http.Server{Handler: s.miHandler, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: s.cfg.MaxHeaderBytes}
		s.mu.Lock()
		s.miServer = mi
		s.mu.Unlock()
		go func() { errc <- mi.Serve(mln) }()
	}
	if ready != nil {
		ready(ln.Addr())
	}

	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	case <-ctx.Done():
	}
	s.log.Info("shutting down: finishing in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err = hs.Shutdown(sctx)
	if mi != nil {
		_ = mi.Shutdown(sctx)
	}
	s.background.Wait()
	return err
}

// every runs fn every d until ctx is done, logging failures.
func (s *Server) every(ctx context.Context, name string, d time.Duration, fn func(context.Context) (int, error)) {
	if d <= 0 {
		return
	}
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				n, err := fn(ctx)
				if err != nil && ctx.Err() == nil {
					s.log.Error(name+" failed", "err", err)
				} else if n > 0 {
					s.log.Info(name, "count", n)
				}
			}
		}
	}()
}
