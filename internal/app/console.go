package app

import (
	"net/http"

	webconsole "vigil/internal/web/console"
)

// registerConsole mounts the supervisors' web console (sign-in page at /,
// /static/, /console/) on the public mux, built from the app's sign-in
// service, store, alert lifecycle and audit log. Its live region follows
// the API's feed (/api/v1/orgs/{org}/feed), so it needs no hub of its own.
func (a *App) registerConsole(mux *http.ServeMux) error {
	c, err := webconsole.New(webconsole.Deps{Auth: a.auth, Store: a.store, Alerts: a.safety.Alerts(), Audit: a.audit,
		API: a.api.Handler(), Log: a.log.With("component", "console"),
		Tiles: a.cfg.Console.Tiles, Attribution: a.cfg.Console.TilesAttribution})
	if err != nil {
		return err
	}
	c.Register(mux)
	return nil
}
