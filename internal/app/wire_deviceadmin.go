package app

// wireDeviceAdmin gives the JSON API what its device registration API
// (POST /api/v1/orgs/{org}/devices) needs. Nothing, today: the API
// registers through device.Registry over the directory SetAuth gave it
// (the app's store, which is a device.Store), with the API's clock, so a
// device is registered exactly as `vigil device add` registers it.
func (a *App) wireDeviceAdmin() {}
