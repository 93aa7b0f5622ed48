package app

import (
	"context"
	"net/http"
)

// startFirmware starts the firmware rollout and compliance loops (issue 8).
func (a *App) startFirmware(ctx context.Context) error { return nil }

// registerFirmware serves the device-facing update repositories (issue 8).
func (a *App) registerFirmware(mux *http.ServeMux) error { return nil }
