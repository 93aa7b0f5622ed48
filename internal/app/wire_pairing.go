package app

// wirePairing gives the JSON API what its worker-app pairing API needs.
func (a *App) wirePairing() {}
