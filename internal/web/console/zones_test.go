package console

import (
	"encoding/json"
	"testing"
)

// TestZoneFeatureOf: the editor's fields become one GeoJSON feature; what
// cannot be built is a field error before any API call.
func TestZoneFeatureOf(t *testing.T) {
	poly := `{"type":"Polygon","coordinates":[[[0,0],[0,1],[1,1],[0,0]]]}`
	z := zoneForm{Name: xss, Rule: "must_not_enter", DwellS: "45", RadiusM: "100", Geometry: poly,
		Days: map[string]bool{"mon": true, "fri": true}, Start: "08:00", End: "18:00", TZ: " Europe/London ", Assign: "p1, p2\np3"}
	f, field, msg := featureOf(z)
	if field != "" {
		t.Fatalf("field error %s: %s", field, msg)
	}
	b, err := json.Marshal(zoneCollection{Type: "FeatureCollection", Features: []zoneFeature{f}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"FeatureCollection","features":[{"type":"Feature","geometry":` + poly +
		`,"properties":{"name":"\u003cimg src=x onerror=alert(1)\u003e","rule":"must_not_enter","dwell_s":45,` +
		`"schedule":{"days":["mon","fri"],"start":"08:00","end":"18:00","tz":"Europe/London"},"assign":["p1","p2","p3"]}}]}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}

	circle := z
	circle.Geometry, circle.Days, circle.Start, circle.End = `{"type":"Point","coordinates":[-0.1,51.5]}`, nil, "", ""
	if f, field, _ := featureOf(circle); field != "" || f.Properties.RadiusM == nil || *f.Properties.RadiusM != 100 || f.Properties.Schedule != nil {
		t.Errorf("circle: %+v %s", f.Properties, field)
	}
	for _, tt := range []struct {
		mod   func(*zoneForm)
		field string
	}{
		{func(z *zoneForm) { z.Geometry = "" }, "geometry"},
		{func(z *zoneForm) { z.Geometry = "{nope" }, "geometry"},
		{func(z *zoneForm) { z.DwellS = "ten" }, "dwell_s"},
		{func(z *zoneForm) { z.Geometry = `{"type":"Point","coordinates":[0,0]}`; z.RadiusM = "" }, "radius_m"},
	} {
		c := z
		tt.mod(&c)
		if _, field, _ := featureOf(c); field != tt.field {
			t.Errorf("%+v: field %q, want %q", c, field, tt.field)
		}
	}
}

// TestZoneError: the API's geofence field paths land on the editor's
// fields, the message without its "feature 0: path: " prefix.
func TestZoneError(t *testing.T) {
	for _, tt := range []struct {
		e          APIError
		field, msg string
	}{
		{APIError{Field: "properties.name", Message: "feature 0: properties.name: longer than 200 bytes"}, "name", "longer than 200 bytes"},
		{APIError{Field: "properties.schedule.tz", Message: "feature 0: properties.schedule.tz: unknown time zone"}, "schedule", "unknown time zone"},
		{APIError{Field: "geometry.coordinates[0][3]", Message: "feature 0: geometry.coordinates[0][3]: ring not closed"}, "geometry", "ring not closed"},
		{APIError{Message: "changed by someone else meanwhile; try again"}, "form", "changed by someone else meanwhile; try again"},
	} {
		if field, msg := zoneError(&tt.e); field != tt.field || msg != tt.msg {
			t.Errorf("%+v: %q %q, want %q %q", tt.e, field, msg, tt.field, tt.msg)
		}
	}
}
