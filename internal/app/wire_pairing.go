package app

// wirePairing gives the JSON API what its worker-app pairing API needs.
// Nothing to set: POST /api/v1/me/device registers through
// device.Registry over the directory the API already has (the store,
// given in SetAuth), as `vigil device add` and `device assign` do.
func (a *App) wirePairing() {}
