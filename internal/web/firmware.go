package web

// firmwareRoutes are the firmware release, rollout and compliance API
// routes (issue 8).
var firmwareRoutes = []Route{}
