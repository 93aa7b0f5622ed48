package app

import "net/http"

// registerWorkerApp mounts the worker app (/app).
func (a *App) registerWorkerApp(mux *http.ServeMux) error {
	_ = mux
	return nil
}
