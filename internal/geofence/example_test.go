package geofence_test

import (
	"fmt"
	"time"

	"vigil/internal/geofence"
)

// The engine's loop for one person: evaluate each fix against the fences
// that concern them, keep a State per fence, act on transitions.
func Example() {
	fences, err := geofence.ParseGeoJSON([]byte(`{"type":"FeatureCollection","features":[
	  {"type":"Feature","id":"site","properties":{"rule":"must_stay_inside","dwell_s":60},
	   "geometry":{"type":"Polygon","coordinates":[[[-1.452,53.401],[-1.446,53.401],[-1.446,53.406],[-1.452,53.406],[-1.452,53.401]]]}},
	  {"type":"Feature","id":"tanks","properties":{"rule":"must_not_enter","radius_m":40,"dwell_s":0},
	   "geometry":{"type":"Point","coordinates":[-1.449,53.404]}}]}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	idx, err := geofence.NewIndex(fences)
	if err != nil {
		fmt.Println(err)
		return
	}
	states := map[string]geofence.State{}
	t0 := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	track := []struct {
		after time.Duration
		fix   geofence.Fix
	}{
		{0, geofence.Fix{Lat: 53.4030, Lon: -1.4500, AccuracyM: 8}},                // in the site
		{1 * time.Minute, geofence.Fix{Lat: 53.4040, Lon: -1.4490, AccuracyM: 5}},  // by the tanks
		{2 * time.Minute, geofence.Fix{Lat: 53.4062, Lon: -1.4500, AccuracyM: 30}}, // at the fence: uncertain
		{3 * time.Minute, geofence.Fix{Lat: 53.4080, Lon: -1.4500, AccuracyM: 10}}, // left the site
		{4 * time.Minute, geofence.Fix{Lat: 53.4081, Lon: -1.4500, AccuracyM: 10}}, // still out after the dwell
	}
	for _, p := range track {
		at := t0.Add(p.after)
		seen := map[string]bool{}
		idx.Search(p.fix, func(f *geofence.Fence) bool {
			seen[f.ID] = true
			rel := f.Relate(p.fix)
			s, tr := geofence.Step(states[f.ID], rel, at, f.Dwell)
			states[f.ID] = s
			if tr != geofence.NoTransition && f.ActiveAt(at) {
				fmt.Printf("%v %s: %v %s, breach=%v\n", p.after, f.ID, rel, tr, f.Rule.Violated(s.Side))
			}
			return true
		})
		// Fences not visited are certainly Outside: step those with state.
		for i := range fences {
			f := &fences[i]
			if s, ok := states[f.ID]; ok && !seen[f.ID] {
				s, tr := geofence.Step(s, geofence.Outside, at, f.Dwell)
				states[f.ID] = s
				if tr != geofence.NoTransition && f.ActiveAt(at) {
					fmt.Printf("%v %s: outside %s, breach=%v\n", p.after, f.ID, tr, f.Rule.Violated(s.Side))
				}
			}
		}
	}
	// The site's first side waits for its 60 s dwell, like any crossing.

	// Output:
	// 1m0s site: inside first_inside, breach=false
	// 1m0s tanks: inside first_inside, breach=true
	// 2m0s tanks: outside exit, breach=false
	// 4m0s site: outside exit, breach=true
}
