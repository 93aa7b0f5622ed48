package console

// reportRoutes are the console's routes of this page family (see routes).
var reportRoutes = []route{}
