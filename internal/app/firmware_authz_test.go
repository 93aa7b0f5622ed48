package app_test

// firmwareBodies are valid request bodies for the firmware routes, for the
// authorisation matrix (see bodies in authz_test.go). The matrix world has
// no release and no rollout: creating one answers 400 (no such approved
// image) and a rollout path's literal {id} 400 (not a rollout id), both
// after the permission check.
var firmwareBodies = map[string]string{
	"POST /api/v1/orgs/{org}/firmware/rollouts":     `{"name":"pilot","image":"watch-1.1.0.img","percent":10}`,
	"PUT /api/v1/orgs/{org}/firmware/rollouts/{id}": `{"percent":50}`,
}
