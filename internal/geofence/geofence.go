// Package geofence decides where a lone worker is relative to the zones an
// organisation draws for them: circles and polygons with a rule
// ("must_stay_inside" a site, "must_not_enter" a hazard), a dwell time
// before a crossing counts, an accuracy guard and an optional weekly
// schedule.
//
// The pieces, all pure and free of I/O:
//
//   - ParseGeoJSON / MarshalGeoJSON: the fences of one organisation as a
//     GeoJSON FeatureCollection (strict; errors are *Error values that name
//     the feature and the field and never echo coordinates, names or ids).
//   - Fence.Relate: a Fix (position + accuracy radius) is Inside, Outside
//     or Unknown ("uncertain": the accuracy circle crosses the boundary).
//   - Index: an R-tree of fence bounding boxes for "which of 10,000
//     fences could this fix be in" (used for must_not_enter fences).
//   - Step: the per (person, fence) state machine that turns a stream of
//     relations into Enter / Exit transitions after a dwell time, ignoring
//     uncertain and out-of-order fixes.
//   - Fence.ActiveAt: the schedule, in the fence's IANA time zone.
//
// Geometry: coordinates are WGS84 longitude/latitude, as in GeoJSON.
// Point-in-polygon is orb/planar's test on the raw degrees (the same
// planar model as PostGIS ST_Contains on SRID 4326 geometry; a point on
// the boundary counts as inside, a point on a hole's boundary as outside).
// Distances in metres (circle radius, accuracy guard) come from a local
// equirectangular projection with the WGS84 ellipsoid's radii of
// curvature at the fix (for circles: at the mean latitude of fix and
// centre), measured with orb/planar: within 0.01% of the WGS84 geodesic
// distance up to 100 km at latitudes up to 70° (checked against PROJ's
// geod in the tests). Fences must not cross the antimeridian
// (±180°), which Validate enforces for polygons and the index assumes for
// circles.
//
// Time is an input: nothing here reads the clock. Fence values are plain
// data; an Index is immutable after NewIndex and safe for concurrent
// Search. The package imports only the standard library,
// github.com/paulmach/orb (and orb/planar) and github.com/tidwall/rtree; it
// must not import other vigil packages, SQL, the bus or HTTP. It does not
// use orb/geojson, which pulls in the MongoDB BSON driver.
package geofence

import (
	"math"
	"time"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/planar"
)

// Rule says which side of a fence is the safe one.
type Rule string

const (
	// MustStayInside: being outside is a breach (a site, a patrol area).
	MustStayInside Rule = "must_stay_inside"
	// MustNotEnter: being inside is a breach (a hazard, a restricted area).
	MustNotEnter Rule = "must_not_enter"
)

// Violated reports whether a person confirmed on side s of a fence with
// rule r is in breach: Outside a MustStayInside fence or Inside a
// MustNotEnter fence. Unknown is never a breach.
func (r Rule) Violated(s Side) bool {
	switch r {
	case MustStayInside:
		return s == Outside
	case MustNotEnter:
		return s == Inside
	}
	return false
}

// Limits. ParseGeoJSON enforces all of them; Validate those that apply to
// one fence.
const (
	MaxInputBytes       = 32 << 20  // GeoJSON document
	MaxFeatures         = 10_000    // fences in one document
	MaxVerticesPerFence = 10_000    // positions in one fence, closing positions included
	MaxVertices         = 1_000_000 // positions in one document
	MaxRadiusM          = 100_000   // circle radius in metres
	MaxDwell            = 24 * time.Hour
	MaxTextLen          = 200    // bytes in a name, an id or an assignee id
	MaxAssign           = 10_000 // assignees of one fence
	DefaultDwell        = 30 * time.Second
)

// Fence is one zone of an organisation. It is either a polygon fence
// (Polygon non-empty) or a circle (RadiusM > 0 around Center), never both.
// The organisation is the caller's business: keep one Index per
// organisation.
type Fence struct {
	// ID is the caller's key for the fence; GeoJSON may carry it as the
	// feature's "id". May be empty; ParseGeoJSON rejects duplicates.
	ID   string
	Name string
	Rule Rule
	// Polygon holds one or more polygons, each an outer ring followed by
	// its holes, [lon, lat] in degrees, every ring closed (first position
	// repeated at the end). A GeoJSON Polygon is a MultiPolygon of one.
	Polygon orb.MultiPolygon
	// Center and RadiusM describe a circle fence.
	Center  orb.Point
	RadiusM float64
	// Dwell is how long a person must be seen continuously on the other
	// side before a crossing counts (see Step). Whole seconds, at most
	// MaxDwell; 0 means the first fix on the other side counts.
	Dwell time.Duration
	// Schedule limits when the fence applies; nil means always.
	Schedule *Schedule
	// Assign lists person or group ids the fence applies to; empty means
	// the caller's default (typically: everyone in the organisation).
	Assign []string
}

// IsCircle reports whether f is a circle fence.
func (f *Fence) IsCircle() bool { return len(f.Polygon) == 0 }

// ActiveAt reports whether f's schedule covers t (always, without one).
func (f *Fence) ActiveAt(t time.Time) bool { return f.Schedule.ActiveAt(t) }

// Fix is one reported position: WGS84 degrees and the radius in metres
// within which the true position lies (as phones and trackers report it;
// 0 when unknown to be worse than exact).
type Fix struct {
	Lat, Lon  float64
	AccuracyM float64
}

func (x Fix) valid() bool {
	return x.Lat >= -90 && x.Lat <= 90 && x.Lon >= -180 && x.Lon <= 180 &&
		x.AccuracyM >= 0 && x.AccuracyM <= math.MaxFloat32
}

// Side is where a person is relative to a fence: Inside, Outside, or
// Unknown when it cannot be told.
type Side uint8

const (
	// Unknown: for Relate, the fix's accuracy circle crosses the fence's
	// boundary (or the fix is invalid: NaN, out of range, negative
	// accuracy); for a State, no side has been confirmed yet.
	Unknown Side = iota
	Inside
	Outside
)

func (s Side) String() string {
	switch s {
	case Inside:
		return "inside"
	case Outside:
		return "outside"
	}
	return "unknown"
}

// Relate tells where fix is relative to f, ignoring the schedule. With an
// accuracy of a metres it is Inside or Outside only if the whole circle of
// radius a around the fix is on that side: a fix 20 m inside the edge
// with an accuracy of 50 m is Unknown. A boundary exactly at distance a
// counts as not crossed; with accuracy 0 a point on the boundary is Inside.
func (f *Fence) Relate(fix Fix) Side {
	if !fix.valid() {
		return Unknown
	}
	p := orb.Point{fix.Lon, fix.Lat}
	if f.IsCircle() {
		mLat, mLon := metresPerDegree((fix.Lat + f.Center[1]) / 2)
		d := planar.Distance(orb.Point{0, 0}, orb.Point{(f.Center[0] - p[0]) * mLon, (f.Center[1] - p[1]) * mLat})
		switch {
		case math.Abs(d-f.RadiusM) < fix.AccuracyM:
			return Unknown
		case d <= f.RadiusM:
			return Inside
		}
		return Outside
	}
	switch scanRings(f.Polygon, p, fix.AccuracyM) {
	case nearEdge:
		return Unknown
	case outsideBoxes:
		return Outside
	}
	if planar.MultiPolygonContains(f.Polygon, p) {
		return Inside
	}
	return Outside
}

type scanResult uint8

const (
	inBox        scanResult = iota // p is in some outer ring's box: ask orb/planar
	outsideBoxes                   // p is outside every outer ring's box: Outside
	nearEdge                       // some ring passes closer than the accuracy
)

// scanRings makes one pass over mp's rings, projected on the fly to metres
// around p (equirectangular with the WGS84 radii of curvature at p's
// latitude), nothing allocated. It reports nearEdge if some segment passes
// closer than a metres to p (orb/planar's segment distance, after a cheap
// test that skips segments wholly more than a away along an axis), else
// whether p lies in the bounding box of some polygon's outer ring (the
// projection keeps the order of coordinates, so this is exactly orb's box
// test, without its cost), where orb/planar's point-in-polygon must decide.
func scanRings(mp orb.MultiPolygon, p orb.Point, a float64) scanResult {
	mLat, mLon := metresPerDegree(p[1])
	a2 := a * a
	origin := orb.Point{0, 0}
	res := outsideBoxes
	for _, poly := range mp {
		for j, r := range poly {
			if len(r) == 0 {
				continue
			}
			prev := orb.Point{(r[0][0] - p[0]) * mLon, (r[0][1] - p[1]) * mLat}
			minX, maxX, minY, maxY := prev[0], prev[0], prev[1], prev[1]
			for _, q := range r[1:] {
				cur := orb.Point{(q[0] - p[0]) * mLon, (q[1] - p[1]) * mLat}
				minX, maxX = min(minX, cur[0]), max(maxX, cur[0])
				minY, maxY = min(minY, cur[1]), max(maxY, cur[1])
				if a > 0 && !(prev[0] > a && cur[0] > a || prev[0] < -a && cur[0] < -a ||
					prev[1] > a && cur[1] > a || prev[1] < -a && cur[1] < -a) &&
					planar.DistanceFromSegmentSquared(prev, cur, origin) < a2 {
					return nearEdge
				}
				prev = cur
			}
			if j == 0 && minX <= 0 && maxX >= 0 && minY <= 0 && maxY >= 0 {
				res = inBox
			}
		}
	}
	return res
}

// WGS84 ellipsoid.
const (
	wgs84A  = 6378137.0
	wgs84E2 = 6.69437999014e-3 // first eccentricity squared
	// minMetresPerDegLat is the shortest degree of latitude (at the
	// equator), used to pad boxes conservatively.
	minMetresPerDegLat = 110_574.0
)

// metresPerDegree returns the length in metres of one degree of latitude
// and one degree of longitude at latitude lat (degrees), from the WGS84
// meridional and prime-vertical radii of curvature.
func metresPerDegree(lat float64) (mLat, mLon float64) {
	s, c := math.Sincos(lat * (math.Pi / 180))
	w := 1 - wgs84E2*s*s
	n := wgs84A / math.Sqrt(w)
	m := n * (1 - wgs84E2) / w
	return m * (math.Pi / 180), n * math.Abs(c) * (math.Pi / 180)
}

// padDegrees returns half the height and half the width in degrees of a
// box that surely contains every point within d metres of a point at
// latitude lat (1% slack on top, never wrapping).
func padDegrees(lat, d float64) (dLat, dLon float64) {
	dLat = d / minMetresPerDegLat * 1.01
	far := math.Abs(lat) + dLat
	if far >= 89.9 {
		return dLat, 360
	}
	_, mLon := metresPerDegree(far)
	return dLat, d / mLon * 1.01
}

// Bound returns a box in degrees that contains the whole fence (for a
// circle, a slightly padded box around it). The index is built from it.
func (f *Fence) Bound() orb.Bound {
	if f.IsCircle() {
		dLat, dLon := padDegrees(f.Center[1], f.RadiusM)
		return clampBound(orb.Bound{
			Min: orb.Point{f.Center[0] - dLon, f.Center[1] - dLat},
			Max: orb.Point{f.Center[0] + dLon, f.Center[1] + dLat},
		})
	}
	return f.Polygon.Bound()
}

// fixBound is the box a fix's accuracy circle surely lies in.
func fixBound(fix Fix) orb.Bound {
	dLat, dLon := padDegrees(fix.Lat, fix.AccuracyM)
	return clampBound(orb.Bound{
		Min: orb.Point{fix.Lon - dLon, fix.Lat - dLat},
		Max: orb.Point{fix.Lon + dLon, fix.Lat + dLat},
	})
}

func clampBound(b orb.Bound) orb.Bound {
	b.Min[0], b.Max[0] = max(b.Min[0], -180), min(b.Max[0], 180)
	b.Min[1], b.Max[1] = max(b.Min[1], -90), min(b.Max[1], 90)
	return b
}
