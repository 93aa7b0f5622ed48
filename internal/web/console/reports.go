package console

// reportRoutes are the console's routes of this page family (see routes).
var reportRoutes = []route{}

// reportsStore is what this page family reads from the store directly (most
// pages go through apiCall instead); part of Store.
type reportsStore interface{}
