package geofence_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/paulmach/orb"

	"vigil/internal/geofence"
)

// TestIndexMatchesBruteForce: for random fences and fixes (fixed seed),
// Search visits exactly the fences whose box meets the fix's box, and
// every fence it does not visit is Outside.
func TestIndexMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	fences := genFences(rng, 2000)
	idx, err := geofence.NewIndex(fences)
	if err != nil {
		t.Fatal(err)
	}
	if idx.Len() != len(fences) {
		t.Fatalf("Len = %d, want %d", idx.Len(), len(fences))
	}
	bounds := make([]orb.Bound, len(fences))
	for i := range fences {
		bounds[i] = fences[i].Bound()
	}
	fixes := append(genFixes(rng, fences, 3000, true, 0, 100), genFixes(rng, fences, 1000, false, 0, 2000)...)
	fixes = append(fixes, genFixes(rng, fences, 1000, true, 0, 0)...)
	visitedSome, insideSome := 0, 0
	for _, fix := range fixes {
		var got []string
		idx.Search(fix, func(f *geofence.Fence) bool {
			got = append(got, f.ID)
			return true
		})
		var want []string
		fb := geofence.FixBound(fix)
		for i := range fences {
			f := &fences[i]
			rel := f.Relate(fix)
			if bounds[i].Intersects(fb) {
				want = append(want, f.ID)
			} else if rel != geofence.Outside {
				t.Fatalf("fix %+v: fence %s not in the box but %v", fix, f.ID, rel)
			}
			if rel == geofence.Inside {
				insideSome++
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("fix %+v: Search visited %v, brute force %v", fix, got, want)
		}
		if len(got) > 0 {
			visitedSome++
		}
	}
	// The test means something only if many fixes hit fences.
	if visitedSome < 2000 || insideSome < 500 {
		t.Fatalf("only %d fixes near a fence, %d inside one: generator broken", visitedSome, insideSome)
	}
}

func TestIndexSearchStops(t *testing.T) {
	fences := genFences(rand.New(rand.NewPCG(3, 4)), 50)
	for i := range fences { // all at one place
		fences[i].Polygon = nil
		fences[i].Center, fences[i].RadiusM = fences[0].Center, 100
	}
	idx, err := geofence.NewIndex(fences)
	if err != nil {
		t.Fatal(err)
	}
	fix := geofence.Fix{Lon: fences[0].Center[0], Lat: fences[0].Center[1], AccuracyM: 10}
	n := 0
	idx.Search(fix, func(*geofence.Fence) bool { n++; return n < 3 })
	if n != 3 {
		t.Errorf("visited %d fences after stopping at 3", n)
	}
	n = 0
	idx.Search(fix, func(*geofence.Fence) bool { n++; return true })
	if n != len(fences) {
		t.Errorf("visited %d fences, want %d", n, len(fences))
	}
	for _, bad := range []geofence.Fix{{Lat: math.NaN()}, {Lat: 95}, {Lon: fix.Lon, Lat: fix.Lat, AccuracyM: -1}} {
		idx.Search(bad, func(*geofence.Fence) bool { t.Errorf("invalid fix %+v visited a fence", bad); return false })
	}
}

func TestIndexCopiesFences(t *testing.T) {
	fences := genFences(rand.New(rand.NewPCG(5, 6)), 3)
	idx, err := geofence.NewIndex(fences)
	if err != nil {
		t.Fatal(err)
	}
	fences[0].ID = "changed"
	idx.Search(geofence.Fix{Lon: 0, Lat: 54, AccuracyM: 1e6}, func(f *geofence.Fence) bool {
		if f.ID == "changed" {
			t.Error("the index shares the caller's slice")
		}
		return true
	})
}
