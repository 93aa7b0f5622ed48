package web

// alertNoteRoutes are API routes of this family (see Routes).
var alertNoteRoutes = []Route{}
