package console

// adminRoutes are the console's routes of this page family (see routes).
var adminRoutes = []route{}
