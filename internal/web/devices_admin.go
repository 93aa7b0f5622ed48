package web

// deviceAdminRoutes are API routes of this family (see Routes).
var deviceAdminRoutes = []Route{}
