package app_test

// privacyBodies are valid request bodies for the erasure and export
// routes, for the authorisation matrix (see bodies in authz_test.go).
var privacyBodies = map[string]string{
	"POST /api/v1/people/{id}/erase": `{"reason":"GDPR Art. 17 request of 2026-01-05"}`,
}
