package web

// retentionRoutes are the retention API routes (see Routes).
var retentionRoutes = []Route{}
