package app_test

// firmwareBodies are valid request bodies for the firmware routes, for the
// authorisation matrix (see bodies in authz_test.go).
var firmwareBodies = map[string]string{}
