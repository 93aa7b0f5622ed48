package safety_test

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"vigil/internal/event"
	"vigil/internal/safety"
	"vigil/internal/web"
)

const zones = `{"type":"FeatureCollection","features":[
 {"type":"Feature","id":"site","geometry":{"type":"Point","coordinates":[-0.1,51.5]},
  "properties":{"name":"site","rule":"must_stay_inside","radius_m":200,"dwell_s":30}},
 {"type":"Feature","id":"yard","geometry":{"type":"Polygon","coordinates":[[[-0.2,51.6],[-0.19,51.6],[-0.19,51.61],[-0.2,51.61],[-0.2,51.6]]]},
  "properties":{"name":"yard","rule":"must_not_enter","dwell_s":0}}]}`

// TestGeofences: on duty, leaving a must-stay-inside zone for longer than
// its dwell raises geofence_exit; a single jittery fix outside does not;
// entering a must-not-enter zone raises geofence_enter; off duty nothing
// is evaluated.
func TestGeofences(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, safety.Config{})
		ctx := context.Background()
		if _, err := web.ImportZones(ctx, w.st, "acme", strings.NewReader(zones), time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := w.eng.ReloadFences(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		pos := func(lat, lon, acc float64) event.Event {
			return w.ev("d1", event.TypePosition, func(e *event.Event) { e.Position = &event.Position{Lat: lat, Lon: lon, AccuracyM: acc} })
		}
		const outLat = 51.505 // ~556 m north of the centre
		w.send(pos(outLat, -0.1, 5))
		at(t0, time.Minute)
		w.send(pos(outLat, -0.1, 5))
		w.wantKinds("off duty, outside")
		w.startSession(safety.StartRequest{PersonID: "p1", Duration: 4 * time.Hour})
		w.send(pos(51.5, -0.1, 5)) // inside: first side confirmed after dwell
		at(t0, 2*time.Minute)
		w.send(pos(51.5, -0.1, 5))
		w.send(pos(outLat, -0.1, 5)) // one fix outside (jitter)
		at(t0, 2*time.Minute+10*time.Second)
		w.send(pos(51.5, -0.1, 5))      // back inside
		w.send(pos(51.5009, -0.1, 150)) // uncertain: 100 m from centre, 150 m accuracy
		at(t0, 3*time.Minute)
		w.send(pos(51.5, -0.1, 5))
		w.wantKinds("after jitter")
		w.send(pos(outLat, -0.1, 5))
		at(t0, 3*time.Minute+20*time.Second)
		w.send(pos(outLat, -0.1, 5))
		w.wantKinds("outside for 20 s (dwell 30 s)")
		at(t0, 3*time.Minute+31*time.Second)
		w.send(pos(outLat, -0.1, 5))
		w.wantKinds("outside for 31 s", "geofence_exit/raised")
		at(t0, 4*time.Minute)
		w.send(pos(51.605, -0.195, 5)) // into the yard
		w.wantKinds("in the yard", "geofence_enter/raised", "geofence_exit/raised")
	})
}
