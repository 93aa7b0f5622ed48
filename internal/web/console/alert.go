package console

// alertRoutes are the console's routes of this page family (see routes).
var alertRoutes = []route{}

// alertStore is what this page family reads from the store directly (most
// pages go through apiCall instead); part of Store.
type alertStore interface{}
