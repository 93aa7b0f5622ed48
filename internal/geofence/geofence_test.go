package geofence_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/planar"

	"vigil/internal/geofence"
)

// box returns the closed ring of the rectangle [lon0, lon1] × [lat0, lat1],
// counter-clockwise.
func box(lon0, lat0, lon1, lat1 float64) orb.Ring {
	return orb.Ring{{lon0, lat0}, {lon1, lat0}, {lon1, lat1}, {lon0, lat1}, {lon0, lat0}}
}

func polygonFence(polys ...orb.Polygon) *geofence.Fence {
	return &geofence.Fence{Rule: geofence.MustNotEnter, Polygon: orb.MultiPolygon(polys), Dwell: geofence.DefaultDwell}
}

func TestRelatePolygon(t *testing.T) {
	// A yard in London spanning the prime meridian, with a building (hole)
	// in it, and a second yard (MultiPolygon) across the equator.
	yard := orb.Polygon{box(-0.01, 51.50, 0.01, 51.51), box(-0.002, 51.504, 0.002, 51.506)}
	equator := orb.Polygon{box(9.99, -0.01, 10.01, 0.01)}
	// A U shape: the notch between its arms is outside.
	u := orb.Polygon{{{0, 0}, {3, 0}, {3, 3}, {2, 3}, {2, 1}, {1, 1}, {1, 3}, {0, 3}, {0, 0}}}
	tests := []struct {
		name     string
		f        *geofence.Fence
		lon, lat float64
		want     geofence.Side
	}{
		{"yard west of meridian", polygonFence(yard), -0.005, 51.505, geofence.Inside},
		{"yard east of meridian", polygonFence(yard), 0.005, 51.505, geofence.Inside},
		{"in the building (hole)", polygonFence(yard), 0, 51.505, geofence.Outside},
		{"north of the yard", polygonFence(yard), 0, 51.52, geofence.Outside},
		{"west of the yard", polygonFence(yard), -0.011, 51.505, geofence.Outside},
		{"on the outer edge", polygonFence(yard), 0.01, 51.505, geofence.Inside},
		{"on the hole's edge", polygonFence(yard), 0.002, 51.505, geofence.Outside},
		{"second polygon, south of equator", polygonFence(yard, equator), 10, -0.005, geofence.Inside},
		{"second polygon, north of equator", polygonFence(yard, equator), 10, 0.005, geofence.Inside},
		{"between the polygons", polygonFence(yard, equator), 5, 25, geofence.Outside},
		{"U: left arm", polygonFence(u), 0.5, 2, geofence.Inside},
		{"U: notch", polygonFence(u), 1.5, 2, geofence.Outside},
		{"U: base under the notch", polygonFence(u), 1.5, 0.5, geofence.Inside},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.f.Relate(geofence.Fix{Lat: tt.lat, Lon: tt.lon}); got != tt.want {
				t.Errorf("Relate = %v, want %v", got, tt.want)
			}
		})
	}
}

// Reference points computed with PROJ's geod on the WGS84 ellipsoid, from
// (-0.1, 51.5): `echo "51.5 -0.1 AZ DIST" | geod +ellps=WGS84 -f %.10f`.
var (
	origin      = orb.Point{-0.1, 51.5}
	east1km     = orb.Point{-0.0855991857, 51.4999991160}
	west1km     = orb.Point{-0.1144008143, 51.4999991160}
	north1km    = orb.Point{-0.1, 51.5089881242}
	northEast   = orb.Point{-0.0898156699, 51.5063551230} // 1 km at azimuth 45°
	east100km   = orb.Point{1.3398957732, 51.4911611117}
	south20m    = orb.Point{-0.1, 51.4998202374}
	north20m    = orb.Point{-0.1, 51.5001797626}
	fixAt       = func(p orb.Point, acc float64) geofence.Fix { return geofence.Fix{Lon: p[0], Lat: p[1], AccuracyM: acc} }
	circleFence = func(c orb.Point, r float64) *geofence.Fence {
		return &geofence.Fence{Rule: geofence.MustStayInside, Center: c, RadiusM: r}
	}
)

// TestCircleDistance checks the circle test against geodesic distances:
// a point d metres from the centre is inside a circle of d + tol and
// outside one of d - tol, tol being 0.01% of d.
func TestCircleDistance(t *testing.T) {
	tests := []struct {
		name string
		p    orb.Point
		d    float64
	}{
		{"1 km east", east1km, 1000},
		{"1 km west", west1km, 1000},
		{"1 km north", north1km, 1000},
		{"1 km north-east", northEast, 1000},
		{"100 km east", east100km, 100_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tol := tt.d * 0.0001
			if got := circleFence(origin, tt.d+tol).Relate(fixAt(tt.p, 0)); got != geofence.Inside {
				t.Errorf("radius %.1f: %v, want inside", tt.d+tol, got)
			}
			if got := circleFence(origin, tt.d-tol).Relate(fixAt(tt.p, 0)); got != geofence.Outside {
				t.Errorf("radius %.1f: %v, want outside", tt.d-tol, got)
			}
			// Symmetric: the fix at the centre, the circle around the far point.
			if got := circleFence(tt.p, tt.d+tol).Relate(fixAt(origin, 0)); got != geofence.Inside {
				t.Errorf("swapped, radius %.1f: %v, want inside", tt.d+tol, got)
			}
		})
	}
}

func TestAccuracyGuard(t *testing.T) {
	// North edge of the square at latitude 51.5; south20m is 20 m inside
	// it, north20m 20 m outside, every other edge about 700 m away.
	square := polygonFence(orb.Polygon{box(-0.11, 51.49, -0.09, 51.5)})
	// The circle's edge is 20 m beyond east1km (1 km from the centre).
	circle := circleFence(origin, 1020)
	tests := []struct {
		name string
		f    *geofence.Fence
		fix  geofence.Fix
		want geofence.Side
	}{
		{"polygon 20 m inside, ±50 m", square, fixAt(south20m, 50), geofence.Unknown},
		{"polygon 20 m inside, ±21 m", square, fixAt(south20m, 21), geofence.Unknown},
		{"polygon 20 m inside, ±19 m", square, fixAt(south20m, 19), geofence.Inside},
		{"polygon 20 m inside, exact", square, fixAt(south20m, 0), geofence.Inside},
		{"polygon 20 m outside, ±50 m", square, fixAt(north20m, 50), geofence.Unknown},
		{"polygon 20 m outside, ±19 m", square, fixAt(north20m, 19), geofence.Outside},
		{"polygon centre, ±500 m", square, fixAt(orb.Point{-0.1, 51.495}, 500), geofence.Inside},
		{"polygon centre, ±2 km", square, fixAt(orb.Point{-0.1, 51.495}, 2000), geofence.Unknown},
		{"circle 20 m inside, ±50 m", circle, fixAt(east1km, 50), geofence.Unknown},
		{"circle 20 m inside, ±19 m", circle, fixAt(east1km, 19), geofence.Inside},
		{"circle 20 m outside, ±50 m", circleFence(origin, 980), fixAt(east1km, 50), geofence.Unknown},
		{"circle 20 m outside, ±19 m", circleFence(origin, 980), fixAt(east1km, 19), geofence.Outside},
		{"circle centre, accuracy beyond the whole circle", circle, fixAt(origin, 5000), geofence.Unknown},
		{"NaN latitude", circle, geofence.Fix{Lat: math.NaN(), Lon: -0.1}, geofence.Unknown},
		{"latitude out of range", circle, geofence.Fix{Lat: 91, Lon: -0.1}, geofence.Unknown},
		{"negative accuracy", circle, fixAt(origin, -1), geofence.Unknown},
		{"infinite accuracy", square, fixAt(south20m, math.Inf(1)), geofence.Unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.f.Relate(tt.fix); got != tt.want {
				t.Errorf("Relate = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRuleViolated(t *testing.T) {
	tests := []struct {
		rule geofence.Rule
		side geofence.Side
		want bool
	}{
		{geofence.MustStayInside, geofence.Inside, false},
		{geofence.MustStayInside, geofence.Outside, true},
		{geofence.MustStayInside, geofence.Unknown, false},
		{geofence.MustNotEnter, geofence.Inside, true},
		{geofence.MustNotEnter, geofence.Outside, false},
		{geofence.MustNotEnter, geofence.Unknown, false},
		{"other", geofence.Inside, false},
	}
	for _, tt := range tests {
		if got := tt.rule.Violated(tt.side); got != tt.want {
			t.Errorf("%s.Violated(%v) = %v, want %v", tt.rule, tt.side, got, tt.want)
		}
	}
}

func TestBoundContainsCircle(t *testing.T) {
	for _, lat := range []float64{-80, -51.5, 0, 51.5, 70, 89.5} {
		c := orb.Point{10, lat}
		f := circleFence(c, 5000)
		b := f.Bound()
		// Points just inside the circle in the four directions must be in the box.
		for _, p := range []orb.Point{{10, lat + 4.9/111.7}, {10, lat - 4.9/111.7}} {
			if p[1] <= 90 && p[1] >= -90 && f.Relate(fixAt(p, 0)) == geofence.Inside && !b.Contains(p) {
				t.Errorf("lat %v: %v inside the circle but not in its box %v", lat, p, b)
			}
		}
		if lat < 89 {
			dLon := 4999 / (111_320 * math.Cos(lat*math.Pi/180))
			for _, p := range []orb.Point{{10 + dLon*0.99, lat}, {10 - dLon*0.99, lat}} {
				if f.Relate(fixAt(p, 0)) != geofence.Inside {
					t.Fatalf("lat %v: test point %v not inside the circle", lat, p)
				}
				if !b.Contains(p) {
					t.Errorf("lat %v: %v inside the circle but not in its box %v", lat, p, b)
				}
			}
		}
	}
}

// TestRelateMatchesOrb checks the one-pass polygon scan against a plain
// reference built from orb alone: the multipolygon projected to metres
// around the fix, planar.DistanceFrom for the accuracy guard and
// planar.MultiPolygonContains for the rest.
func TestRelateMatchesOrb(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	fences := genFences(rng, 1000)
	counts := map[geofence.Side]int{}
	for i := range fences {
		f := &fences[i]
		if f.IsCircle() {
			continue
		}
		// Fixes around this fence, a fifth of them exact.
		fixes := append(genFixes(rng, fences[i:i+1], 40, true, 0, 100), genFixes(rng, fences[i:i+1], 10, true, 0, 0)...)
		for _, fix := range fixes {
			got := f.Relate(fix)
			counts[got]++
			if want := referenceRelate(f.Polygon, fix); got != want {
				t.Fatalf("fence %s, fix %+v: Relate = %v, reference %v", f.ID, fix, got, want)
			}
		}
	}
	if counts[geofence.Inside] < 2000 || counts[geofence.Outside] < 2000 || counts[geofence.Unknown] < 2000 {
		t.Fatalf("too few cases of each kind: %v", counts)
	}
}

func referenceRelate(mp orb.MultiPolygon, fix geofence.Fix) geofence.Side {
	s, c := math.Sincos(fix.Lat * math.Pi / 180)
	const a, e2 = 6378137.0, 6.69437999014e-3
	w := 1 - e2*s*s
	n := a / math.Sqrt(w)
	mLat, mLon := n*(1-e2)/w*math.Pi/180, n*c*math.Pi/180
	proj := mp.Clone()
	for _, poly := range proj {
		for _, r := range poly {
			for k := range r {
				r[k] = orb.Point{(r[k][0] - fix.Lon) * mLon, (r[k][1] - fix.Lat) * mLat}
			}
		}
	}
	if fix.AccuracyM > 0 && planar.DistanceFrom(proj, orb.Point{}) < fix.AccuracyM {
		return geofence.Unknown
	}
	if planar.MultiPolygonContains(mp, orb.Point{fix.Lon, fix.Lat}) {
		return geofence.Inside
	}
	return geofence.Outside
}
