package app_test

// privacyBodies are valid request bodies for the erasure and export
// routes, for the authorisation matrix (see bodies in authz_test.go).
var privacyBodies = map[string]string{}
