package geofence_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/paulmach/orb"

	"vigil/internal/geofence"
)

// A UK-sized area (Land's End to Aberdeen, Pembroke to Lowestoft).
const (
	minLon, maxLon = -5.7, 1.7
	minLat, maxLat = 50.0, 58.6
)

// genFences makes n fences spread over the area: 60% star-shaped
// polygons of 10–40 vertices (one in seven with a hole), 40% circles,
// 50 m to 2 km across (log-uniform), half of each rule.
func genFences(rng *rand.Rand, n int) []geofence.Fence {
	fs := make([]geofence.Fence, n)
	for i := range fs {
		c := orb.Point{minLon + rng.Float64()*(maxLon-minLon), minLat + rng.Float64()*(maxLat-minLat)}
		r := 25 * math.Pow(40, rng.Float64()) // radius 25 m – 1 km
		f := geofence.Fence{ID: fmt.Sprintf("f%05d", i), Rule: geofence.MustNotEnter, Dwell: 30 * time.Second}
		if rng.IntN(2) == 0 {
			f.Rule = geofence.MustStayInside
		}
		if rng.Float64() < 0.4 {
			f.Center, f.RadiusM = c, math.Round(r*10)/10
		} else {
			k := 10 + rng.IntN(31)
			outer := make(orb.Ring, 0, k+1)
			for j := range k {
				a := 2 * math.Pi * (float64(j) + 0.8*rng.Float64()) / float64(k)
				outer = append(outer, offset(c, r*(0.55+0.45*rng.Float64()), a))
			}
			outer = append(outer, outer[0])
			poly := orb.Polygon{outer}
			if rng.IntN(7) == 0 {
				h := r * 0.25
				poly = append(poly, orb.Ring{offset(c, h, 0), offset(c, h, 1.5*math.Pi), offset(c, h, math.Pi), offset(c, h, 0.5*math.Pi), offset(c, h, 0)})
			}
			f.Polygon = orb.MultiPolygon{poly}
		}
		fs[i] = f
	}
	return fs
}

// offset returns the point d metres from c in direction a (radians from
// east, counter-clockwise), on a local flat approximation.
func offset(c orb.Point, d, a float64) orb.Point {
	return orb.Point{
		c[0] + d*math.Cos(a)/(111_320*math.Cos(c[1]*math.Pi/180)),
		c[1] + d*math.Sin(a)/111_200,
	}
}

// genFixes makes n fixes with accuracies from minAcc to maxAcc metres:
// uniform over the area, or (near) uniform over the box of a random fence
// grown by 100 m, which puts most of them inside or at the edge of one.
func genFixes(rng *rand.Rand, fences []geofence.Fence, n int, near bool, minAcc, maxAcc float64) []geofence.Fix {
	fixes := make([]geofence.Fix, n)
	for i := range fixes {
		acc := minAcc + rng.Float64()*(maxAcc-minAcc)
		if !near {
			fixes[i] = geofence.Fix{Lon: minLon + rng.Float64()*(maxLon-minLon), Lat: minLat + rng.Float64()*(maxLat-minLat), AccuracyM: acc}
			continue
		}
		b := fences[rng.IntN(len(fences))].Bound()
		dLat, dLon := 100/111_200.0, 100/(111_320*math.Cos(b.Max[1]*math.Pi/180))
		fixes[i] = geofence.Fix{
			Lon:       b.Min[0] - dLon + rng.Float64()*(b.Max[0]-b.Min[0]+2*dLon),
			Lat:       b.Min[1] - dLat + rng.Float64()*(b.Max[1]-b.Min[1]+2*dLat),
			AccuracyM: acc,
		}
	}
	return fixes
}
