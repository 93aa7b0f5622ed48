package app

// wireAlertNotes gives the JSON API what its alert notes API (POST
// /api/v1/alerts/{id}/notes) needs. Nothing yet: the handler finds the
// store's AddAlertEntry (web.AlertNoteStore) on the store the API was
// built with (a.store, a store.Store, has it).
func (a *App) wireAlertNotes() {}
