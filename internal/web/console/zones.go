package console

// zoneRoutes are the console's routes of this page family (see routes).
var zoneRoutes = []route{}

// zonesStore is what this page family reads from the store directly (most
// pages go through apiCall instead); part of Store.
type zonesStore interface{}
