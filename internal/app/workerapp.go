package app

import (
	"net/http"

	"vigil/internal/web/workerapp"
)

// registerWorkerApp mounts the worker app (/app and /app/...): static
// files only; the app talks to the JSON API and the device API from the
// browser.
func (a *App) registerWorkerApp(mux *http.ServeMux) error {
	workerapp.New().Register(mux)
	return nil
}
