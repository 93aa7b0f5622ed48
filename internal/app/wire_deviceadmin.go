package app

// wireDeviceAdmin gives the JSON API what its device registration API needs.
func (a *App) wireDeviceAdmin() {}
