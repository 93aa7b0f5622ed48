package console

// settingsRoutes are the console's routes of this page family (see routes).
var settingsRoutes = []route{}

// settingsStore is what this page family reads from the store directly (most
// pages go through apiCall instead); part of Store.
type settingsStore interface{}
