package console

// accountRoutes are the console's routes of this page family (see routes).
var accountRoutes = []route{}

// accountStore is what this page family reads from the store directly (most
// pages go through apiCall instead); part of Store.
type accountStore interface{}
