package web

// privacyRoutes are the data-protection API routes: erasing a person and
// exporting everything held about them (issue 9).
var privacyRoutes = []Route{}
