package console

// alertRoutes are the console's routes of this page family (see routes).
var alertRoutes = []route{}
