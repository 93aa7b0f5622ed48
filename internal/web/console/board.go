package console

// boardRoutes are the console's routes of this page family (see routes).
var boardRoutes = []route{}

// boardStore is what this page family reads from the store directly (most
// pages go through apiCall instead); part of Store.
type boardStore interface{}
