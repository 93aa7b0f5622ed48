package console

// adminRoutes are the console's routes of this page family (see routes).
var adminRoutes = []route{}

// adminStore is what this page family reads from the store directly (most
// pages go through apiCall instead); part of Store.
type adminStore interface{}
