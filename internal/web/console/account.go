package console

// accountRoutes are the console's routes of this page family (see routes).
var accountRoutes = []route{}
