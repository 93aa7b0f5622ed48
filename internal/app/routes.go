package app

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"vigil/internal/enrol"
	"vigil/internal/gateway/httpgw"
)

// publicHandler serves the HTTPS listener: the device API, the JSON API for
// people (behind sign-in), acknowledge links and SMS callbacks, and the web
// console (/, /static/, /console/). Every route is registered here; anything
// else is a JSON 404.
func (a *App) publicHandler() http.Handler {
	mux := http.NewServeMux()
	a.httpgw.Register(mux)
	enr := enrol.New(enrol.Config{}, a.store, a.devCA, a.deps.Clock, a.log.With("component", "enrol"))
	a.api.SetEnroller(enr)
	mux.Handle(httpgw.EnrolPattern, httpgw.EnrolHandler(enr, a.log.With("component", "enrol")))
	var aud enrol.Auditor
	if a.audit != nil {
		aud = a.audit
	}
	mux.Handle(httpgw.RenewPattern, httpgw.RenewHandler(enrol.NewRenewer(enrol.RenewConfig{}, a.store, a.devCA, aud, a.deps.Clock, a.log.With("component", "enrol")), a.log.With("component", "enrol")))
	mux.Handle("/api/v1/", a.api.Handler())
	if err := a.registerConsole(mux); err != nil {
		a.log.Error("web console not served", "err", err)
	}
	if err := a.registerWorkerApp(mux); err != nil {
		a.log.Error("worker app not served", "err", err)
	}
	if err := a.registerFirmware(mux); err != nil {
		a.log.Error("firmware updates not served", "err", err)
	}
	if err := a.registerPublic(mux); err != nil {
		a.log.Error("acknowledge links and SMS callbacks not served", "err", err)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpgw.WriteError(w, http.StatusNotFound, "not_found", "", "no such route")
	})
	return a.harden(mux)
}

// harden adds the headers every response carries and turns a handler panic
// into a generic 500 (the detail goes to the log only).
func (a *App) harden(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Content-Security-Policy", "default-src 'none'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
		hd.Set("Cache-Control", "no-store")
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				a.log.Error("handler panic", "method", r.Method, "pattern", r.Pattern, "panic", v)
				httpgw.WriteError(w, http.StatusInternalServerError, "internal", "", "internal error")
			}
		}()
		h.ServeHTTP(w, r)
	})
}

// adminHandler serves the admin listener (loopback by default): metrics and
// health. /healthz says the process runs; /readyz that the store and the bus
// answer. Neither reveals a version.
func (a *App) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := a.store.Ping(ctx); err != nil {
			a.log.Warn("not ready: store", "err", err)
			http.Error(w, "store not ready", http.StatusServiceUnavailable)
			return
		}
		if err := a.bus.Ping(ctx); err != nil {
			a.log.Warn("not ready: bus", "err", err)
			http.Error(w, "bus not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.NotFound(w, r)
	})
	return a.harden(mux)
}
