package geofence_test

import (
	"math/rand/v2"
	"sync"
	"testing"

	"vigil/internal/geofence"
)

// The benchmark world: 10,000 fences over a UK-sized area (genFences) and
// 65,536 fixes of each kind, the same in every benchmark and in the
// PostGIS comparison (postgis_test.go).
var world = sync.OnceValue(func() *benchWorld {
	rng := rand.New(rand.NewPCG(42, 10_000))
	w := &benchWorld{fences: genFences(rng, 10_000)}
	idx, err := geofence.NewIndex(w.fences)
	if err != nil {
		panic(err)
	}
	w.idx = idx
	const n = 1 << 16
	w.fixes = map[string][]geofence.Fix{
		"uniform": genFixes(rng, w.fences, n, false, 5, 50),
		"near":    genFixes(rng, w.fences, n, true, 5, 50),
	}
	// The same positions with no accuracy radius: pure containment, what
	// ST_Contains answers.
	for _, kind := range []string{"uniform", "near"} {
		exact := make([]geofence.Fix, n)
		for i, f := range w.fixes[kind] {
			exact[i] = geofence.Fix{Lat: f.Lat, Lon: f.Lon}
		}
		w.fixes[kind+"/exact"] = exact
	}
	return w
})

type benchWorld struct {
	fences []geofence.Fence
	idx    *geofence.Index
	fixes  map[string][]geofence.Fix
}

// evaluate is one point evaluation: an index search and an exact Relate
// for each candidate. It returns the number of candidates and of fences
// the fix is certainly inside.
func evaluate(idx *geofence.Index, fix geofence.Fix) (candidates, inside int) {
	idx.Search(fix, func(f *geofence.Fence) bool {
		candidates++
		if f.Relate(fix) == geofence.Inside {
			inside++
		}
		return true
	})
	return candidates, inside
}

// BenchmarkEvaluate10k measures point evaluations (index search + Relate
// of every candidate, accuracy 5–50 m) against 10,000 fences: fixes
// uniform over the area, and fixes near fences (in the box of a random
// fence grown by 100 m). One op is one fix.
func BenchmarkEvaluate10k(b *testing.B) {
	w := world()
	for _, kind := range []string{"uniform", "near"} {
		b.Run(kind, func(b *testing.B) {
			fixes := w.fixes[kind]
			cand := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				c, _ := evaluate(w.idx, fixes[i&(len(fixes)-1)])
				cand += c
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "evals/s")
			b.ReportMetric(float64(cand)/float64(b.N), "candidates/eval")
		})
	}
}

// BenchmarkContains10k is the side-by-side with PostGIS: which of the
// 10,000 fences contain a point (accuracy 0), in Go (index + Relate) and
// in PostGIS (ST_Contains over a GiST index, one query per point or 1,000
// points per query); see postgis_test.go. One op is one point.
func BenchmarkContains10k(b *testing.B) {
	w := world()
	for _, kind := range []string{"uniform", "near"} {
		fixes := w.fixes[kind+"/exact"]
		b.Run("go/"+kind, func(b *testing.B) {
			found := 0
			b.ResetTimer()
			for i := range b.N {
				_, in := evaluate(w.idx, fixes[i&(len(fixes)-1)])
				found += in
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "points/s")
			b.ReportMetric(float64(found)/float64(b.N), "hits/point")
		})
		b.Run("postgis-one/"+kind, func(b *testing.B) { benchPostGIS(b, fixes, 1) })
		b.Run("postgis-batch1000/"+kind, func(b *testing.B) { benchPostGIS(b, fixes, 1000) })
	}
}

func BenchmarkRelate(b *testing.B) {
	w := world()
	var poly, circle *geofence.Fence
	for i := range w.fences {
		if f := &w.fences[i]; f.IsCircle() && circle == nil {
			circle = f
		} else if !f.IsCircle() && poly == nil && len(f.Polygon[0][0]) > 30 {
			poly = f
		}
	}
	for name, f := range map[string]*geofence.Fence{"polygon": poly, "circle": circle} {
		b.Run(name, func(b *testing.B) {
			// Fixes around this fence.
			near := genFixes(rand.New(rand.NewPCG(1, 1)), []geofence.Fence{*f}, 1024, true, 5, 50)
			b.ResetTimer()
			for i := range b.N {
				f.Relate(near[i&1023])
			}
		})
	}
}

func BenchmarkNewIndex10k(b *testing.B) {
	fences := world().fences
	b.ReportAllocs()
	for range b.N {
		if _, err := geofence.NewIndex(fences); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseGeoJSON10k(b *testing.B) {
	data, err := geofence.MarshalGeoJSON(world().fences)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		if _, err := geofence.ParseGeoJSON(data); err != nil {
			b.Fatal(err)
		}
	}
}
