package web

// pairingRoutes are API routes of this family (see Routes).
var pairingRoutes = []Route{}
