package geofence

// FixBound is the box Index.Search looks in, for the brute-force check.
var FixBound = fixBound
