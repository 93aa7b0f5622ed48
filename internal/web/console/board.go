package console

// boardRoutes are the console's routes of this page family (see routes).
var boardRoutes = []route{}
