package web

// rotaRoutes are the on-call rota API routes (see Routes).
var rotaRoutes = []Route{}
