package console

// zoneRoutes are the console's routes of this page family (see routes).
var zoneRoutes = []route{}
