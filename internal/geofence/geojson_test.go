package geofence_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/paulmach/orb"

	"vigil/internal/geofence"
)

// sameZone compares time zones by name (ParseGeoJSON loads each zone once
// per document, so equal fences from two parses hold different pointers).
var sameZone = cmp.Comparer(func(a, b *time.Location) bool { return a.String() == b.String() })

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parseFile(t *testing.T, name string) []geofence.Fence {
	t.Helper()
	fs, err := geofence.ParseGeoJSON(readFile(t, name))
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	return fs
}

func TestParseWaterWorks(t *testing.T) {
	fs := parseFile(t, "water-works.geojson")
	if len(fs) != 4 {
		t.Fatalf("got %d fences, want 4", len(fs))
	}
	london, _ := time.LoadLocation("Europe/London")
	compound, tanks, outfall, patrol := fs[0], fs[1], fs[2], fs[3]
	if compound.ID != "works-compound" || compound.Rule != geofence.MustStayInside || compound.Dwell != time.Minute ||
		len(compound.Polygon) != 1 || len(compound.Polygon[0]) != 2 || len(compound.Polygon[0][0]) != 7 {
		t.Errorf("compound = %+v", compound)
	}
	wantSched := &geofence.Schedule{Days: days(time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday),
		Start: 7 * time.Hour, End: 19 * time.Hour, Location: london}
	if diff := cmp.Diff(wantSched, compound.Schedule, sameZone); diff != "" {
		t.Errorf("compound schedule (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"group:operators", "person:0f3c9a"}, compound.Assign); diff != "" {
		t.Errorf("compound assign (-want +got):\n%s", diff)
	}
	if tanks.Rule != geofence.MustNotEnter || tanks.Dwell != 10*time.Second || tanks.Schedule != nil || tanks.Assign != nil {
		t.Errorf("tanks = %+v", tanks)
	}
	if !outfall.IsCircle() || outfall.Center != (orb.Point{-1.4458, 53.4004}) || outfall.RadiusM != 75 || outfall.Dwell != 0 {
		t.Errorf("outfall = %+v", outfall)
	}
	if len(patrol.Polygon) != 2 || patrol.Dwell != geofence.DefaultDwell || patrol.Schedule.Start != 22*time.Hour || patrol.Schedule.End != 6*time.Hour {
		t.Errorf("patrol = %+v", patrol)
	}
	// In the digester house (the compound's hole): outside the compound,
	// still inside the patrol area.
	house := geofence.Fix{Lon: -1.4496, Lat: 53.4034}
	if got := compound.Relate(house); got != geofence.Outside {
		t.Errorf("digester house: compound.Relate = %v, want outside", got)
	}
	if got := patrol.Relate(house); got != geofence.Inside {
		t.Errorf("digester house: patrol.Relate = %v, want inside", got)
	}
}

func TestParseRailCorridor(t *testing.T) {
	// A QGIS-style export: layer name and CRS84 crs, integer ids, nulls
	// for empty attributes, an altitude on every position.
	fs := parseFile(t, "rail-corridor.geojson")
	if len(fs) != 3 {
		t.Fatalf("got %d fences, want 3", len(fs))
	}
	if fs[0].ID != "1" || fs[1].ID != "2" || fs[2].ID != "3" {
		t.Errorf("ids = %q, %q, %q", fs[0].ID, fs[1].ID, fs[2].ID)
	}
	if fs[0].Polygon[0][0][3] != (orb.Point{-2.2340, 53.4801}) {
		t.Errorf("altitude not dropped: %v", fs[0].Polygon[0][0][3])
	}
	if fs[1].Dwell != geofence.DefaultDwell || fs[1].RadiusM != 30 {
		t.Errorf("relay room = %+v", fs[1])
	}
	s := fs[2].Schedule
	if s.Start != 0 || s.End != 24*time.Hour || s.Days != days(time.Saturday, time.Sunday) {
		t.Errorf("possession schedule = %+v", s)
	}
	// The relay room is beside the line, inside the possession site.
	room := geofence.Fix{Lon: -2.2352, Lat: 53.4802, AccuracyM: 5}
	if got := fs[1].Relate(room); got != geofence.Inside {
		t.Errorf("relay room: %v", got)
	}
	if got := fs[2].Relate(room); got != geofence.Inside {
		t.Errorf("possession site: %v", got)
	}
}

func TestParseSingleFeature(t *testing.T) {
	fs, err := geofence.ParseGeoJSON([]byte(`{"type":"Feature","geometry":{"type":"Point","coordinates":[-1,53]},"properties":{"rule":"must_not_enter","radius_m":20.5}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []geofence.Fence{{Rule: geofence.MustNotEnter, Center: orb.Point{-1, 53}, RadiusM: 20.5, Dwell: geofence.DefaultDwell}}
	if diff := cmp.Diff(want, fs, sameZone); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestParseEmptyCollection(t *testing.T) {
	fs, err := geofence.ParseGeoJSON([]byte(`{"type":"FeatureCollection","features":[]}`))
	if err != nil || len(fs) != 0 {
		t.Fatalf("got %v, %v; want no fences", fs, err)
	}
	b, err := geofence.MarshalGeoJSON(nil)
	if err != nil || string(b) != `{"type":"FeatureCollection","features":[]}` {
		t.Fatalf("MarshalGeoJSON(nil) = %s, %v", b, err)
	}
}

// roundTrip checks that fences marshal and parse back to themselves, and
// that marshalling again gives the same bytes.
func roundTrip(t testing.TB, fs []geofence.Fence) {
	t.Helper()
	b, err := geofence.MarshalGeoJSON(fs)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	again, err := geofence.ParseGeoJSON(b)
	if err != nil {
		t.Fatalf("parse marshalled: %v\n%s", err, b)
	}
	if diff := cmp.Diff(fs, again, sameZone); diff != "" {
		t.Fatalf("round trip (-before +after):\n%s", diff)
	}
	b2, err := geofence.MarshalGeoJSON(again)
	if err != nil {
		t.Fatalf("marshal again: %v", err)
	}
	if !bytes.Equal(b, b2) {
		t.Fatalf("marshal not stable:\n%s\n%s", b, b2)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, name := range []string{"water-works.geojson", "rail-corridor.geojson"} {
		t.Run(name, func(t *testing.T) { roundTrip(t, parseFile(t, name)) })
	}
	t.Run("built", func(t *testing.T) {
		tokyo, _ := time.LoadLocation("Asia/Tokyo")
		roundTrip(t, []geofence.Fence{
			{ID: "a", Name: "Ünïcode <&> \"quoted\"", Rule: geofence.MustNotEnter, Dwell: 0,
				Polygon: orb.MultiPolygon{{box(139.7, 35.6, 139.8, 35.7)}}},
			{Rule: geofence.MustStayInside, Center: orb.Point{-0.1234567890123, 51.987654321}, RadiusM: 0.001, Dwell: geofence.MaxDwell,
				Schedule: &geofence.Schedule{Days: days(time.Sunday), Start: 23*time.Hour + 59*time.Minute, End: time.Minute, Location: tokyo},
				Assign:   []string{"p1"}},
			{ID: "c", Rule: geofence.MustStayInside, Dwell: time.Second,
				Polygon: orb.MultiPolygon{{box(0, 0, 1, 1)}, {box(2, 2, 3, 3), box(2.1, 2.1, 2.2, 2.2)}}},
		})
	})
}

// Personal data planted in every bad document: it must never show up in
// an error.
const (
	secretName = "Alice Smith's lone route"
	secretLon  = "-1.2345671"
	secretLat  = "53.7654321"
)

func feat(geom, props string) string {
	return `{"type":"Feature","geometry":` + geom + `,"properties":` + props + `}`
}

func withID(feature, id string) string {
	return strings.Replace(feature, `{"type":"Feature",`, `{"type":"Feature","id":`+id+`,`, 1)
}

func fc(features ...string) string {
	return `{"type":"FeatureCollection","features":[` + strings.Join(features, ",") + `]}`
}

func ring(positions ...string) string { return "[" + strings.Join(positions, ",") + "]" }

var (
	p1     = "[" + secretLon + "," + secretLat + "]"
	p2     = "[-1.2300001,53.7654321]"
	p3     = "[-1.2300001,53.7700001]"
	okRing = ring(p1, p2, p3, p1)
	okPoly = `{"type":"Polygon","coordinates":[` + okRing + `]}`
	okPt   = `{"type":"Point","coordinates":` + p1 + `}`
	okProp = `{"name":"` + secretName + `","rule":"must_not_enter"}`
	okFeat = feat(okPoly, okProp)
)

func polyWith(r string) string { return `{"type":"Polygon","coordinates":[` + r + `]}` }

func props(extra string) string {
	return `{"name":"` + secretName + `","rule":"must_not_enter",` + extra + `}`
}

func sched(s string) string { return props(`"schedule":` + s) }

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"truncated", `{"type":`, "invalid JSON near byte 8"},
		{"not an object", `[1,2]`, "must be a GeoJSON object"},
		{"null", `null`, "must be a GeoJSON object"},
		{"no type", `{"features":[]}`, "type: must be a string"},
		{"other type", `{"type":"Topology"}`, `type: must be "FeatureCollection" or "Feature"`},
		{"bare geometry", okPoly, `type: must be "FeatureCollection" or "Feature"`},
		{"unknown member", `{"type":"FeatureCollection","features":[],"style":{}}`, `unknown member "style"`},
		{"other crs", `{"type":"FeatureCollection","features":[],"crs":{"type":"name","properties":{"name":"EPSG:27700"}}}`, "crs: only WGS84 longitude/latitude (CRS84, EPSG:4326) is supported"},
		{"features null", `{"type":"FeatureCollection","features":null}`, "features: must be an array of Feature objects"},
		{"features object", `{"type":"FeatureCollection","features":{}}`, "features: must be an array of Feature objects"},
		{"feature not object", fc(okFeat, `[]`), "feature 1: must be a Feature object"},
		{"feature type", fc(`{"type":"Point","geometry":` + okPoly + `,"properties":` + okProp + `}`), `feature 0: type: must be "Feature"`},
		{"feature unknown member", fc(`{"type":"Feature","geometry":` + okPoly + `,"properties":` + okProp + `,"style":1}`), `feature 0: unknown member "style"`},
		{"unknown property", fc(okFeat, feat(okPoly, props(`"colour":"red"`))), `feature 1: properties: unknown property "colour"`},
		{"no properties", fc(feat(okPoly, `null`)), "feature 0: properties.rule: required"},
		{"properties not object", fc(feat(okPoly, `[]`)), "feature 0: properties: must be an object"},
		{"no rule", fc(feat(okPoly, `{"name":"`+secretName+`"}`)), "feature 0: properties.rule: required"},
		{"bad rule", fc(okFeat, okFeat, okFeat, feat(okPoly, `{"name":"`+secretName+`","rule":"keep_out"}`)), `feature 3: properties.rule: must be "must_stay_inside" or "must_not_enter"`},
		{"rule not string", fc(feat(okPoly, `{"rule":1}`)), `feature 0: properties.rule: must be "must_stay_inside" or "must_not_enter"`},
		{"name not string", fc(feat(okPoly, `{"rule":"must_not_enter","name":["`+secretName+`"]}`)), "feature 0: properties.name: must be a string"},
		{"name too long", fc(feat(okPoly, `{"rule":"must_not_enter","name":"`+strings.Repeat(secretName, 9)+`"}`)), "feature 0: properties.name: longer than 200 bytes"},
		{"latitude out of range", fc(feat(polyWith(ring(p1, p2, "[-1.23,90.0001]", p1)), okProp)), "feature 0: geometry.coordinates[0][2]: latitude must be a number from -90 to 90"},
		{"longitude out of range", fc(feat(polyWith(ring(p1, "[180.5,53.76]", p3, p1)), okProp)), "feature 0: geometry.coordinates[0][1]: longitude must be a number from -180 to 180"},
		{"number overflows", fc(feat(polyWith(ring(p1, p2, "[-1.23,1e400]", p1)), okProp)), "feature 0: geometry.coordinates[0][2]: latitude must be a number from -90 to 90"},
		{"point out of range", fc(feat(`{"type":"Point","coordinates":[-1.2345671,-91]}`, props(`"radius_m":10`))), "feature 0: geometry.coordinates: latitude must be a number from -90 to 90"},
		{"unclosed ring", fc(feat(polyWith(ring(p1, p2, p3, "[-1.2345671,53.77]")), okProp)), "feature 0: geometry.coordinates[0]: ring is not closed (the last position must repeat the first)"},
		{"ring of 3", fc(feat(polyWith(ring(p1, p2, p1)), okProp)), "feature 0: geometry.coordinates[0]: a ring needs at least 4 positions (the first repeated at the end)"},
		{"collinear ring", fc(feat(polyWith(ring(p1, p2, "[-1.2200001,53.7654321]", p1)), okProp)), "feature 0: geometry.coordinates[0]: ring is degenerate (it encloses no area)"},
		{"bad hole", fc(feat(`{"type":"Polygon","coordinates":[`+okRing+`,`+ring(p1, p2, p1)+`]}`, okProp)), "feature 0: geometry.coordinates[1]: a ring needs at least 4 positions (the first repeated at the end)"},
		{"polygon without rings", fc(feat(`{"type":"Polygon","coordinates":[]}`, okProp)), "feature 0: geometry.coordinates: a polygon needs an outer ring"},
		{"multipolygon without polygons", fc(feat(`{"type":"MultiPolygon","coordinates":[]}`, okProp)), "feature 0: geometry.coordinates: no polygon"},
		{"bad ring in multipolygon", fc(feat(`{"type":"MultiPolygon","coordinates":[[`+okRing+`],[`+ring(p1, p2, p3, "[-1.2345671,53.77]")+`]]}`, okProp)), "feature 0: geometry.coordinates[1][0]: ring is not closed (the last position must repeat the first)"},
		{"position of one number", fc(feat(polyWith(ring(p1, "[-1.23]", p3, p1)), okProp)), "feature 0: geometry.coordinates: must be an array of rings, each an array of positions [longitude, latitude]"},
		{"position of four numbers", fc(feat(polyWith(ring(p1, "[-1.23,53.7,1,2]", p3, p1)), okProp)), "feature 0: geometry.coordinates: must be an array of rings, each an array of positions [longitude, latitude]"},
		{"position of strings", fc(feat(polyWith(ring(p1, `["-1.23","53.7"]`, p3, p1)), okProp)), "feature 0: geometry.coordinates: must be an array of rings, each an array of positions [longitude, latitude]"},
		{"polygon nested too shallow", fc(feat(`{"type":"Polygon","coordinates":`+okRing+`}`, okProp)), "feature 0: geometry.coordinates: must be an array of rings, each an array of positions [longitude, latitude]"},
		{"multipolygon nested too shallow", fc(feat(`{"type":"MultiPolygon","coordinates":[`+okRing+`]}`, okProp)), "feature 0: geometry.coordinates: must be an array of polygons, each an array of rings of positions [longitude, latitude]"},
		{"no coordinates", fc(feat(`{"type":"Polygon"}`, okProp)), "feature 0: geometry.coordinates: must be an array of rings, each an array of positions [longitude, latitude]"},
		{"point not a position", fc(feat(`{"type":"Point","coordinates":[`+p1+`]}`, props(`"radius_m":10`))), "feature 0: geometry.coordinates: must be a position [longitude, latitude]"},
		{"line string", fc(feat(`{"type":"LineString","coordinates":[`+p1+`,`+p2+`]}`, okProp)), `feature 0: geometry.type: must be "Polygon", "MultiPolygon" or "Point" (a circle with properties.radius_m)`},
		{"null geometry", fc(feat(`null`, okProp)), "feature 0: geometry: must be a Polygon, MultiPolygon or Point object"},
		{"geometry unknown member", fc(feat(`{"type":"Point","coordinates":`+p1+`,"radius":5}`, okProp)), `feature 0: geometry: unknown member "radius"`},
		{"antimeridian", fc(feat(polyWith(ring("[-179.9,0]", "[179.9,0]", "[179.9,1]", "[-179.9,0]")), okProp)), "feature 0: geometry.coordinates: spans more than 180° of longitude (fences must not cross the antimeridian)"},
		{"circle without radius", fc(feat(okPt, okProp)), "feature 0: properties.radius_m: required for a Point (circle) feature"},
		{"circle radius null", fc(feat(okPt, props(`"radius_m":null`))), "feature 0: properties.radius_m: required for a Point (circle) feature"},
		{"radius zero", fc(feat(okPt, props(`"radius_m":0`))), "feature 0: properties.radius_m: must be a number more than 0 and at most 100000 (metres)"},
		{"radius negative", fc(feat(okPt, props(`"radius_m":-5`))), "feature 0: properties.radius_m: must be a number more than 0 and at most 100000 (metres)"},
		{"radius too large", fc(feat(okPt, props(`"radius_m":100000.5`))), "feature 0: properties.radius_m: must be a number more than 0 and at most 100000 (metres)"},
		{"radius string", fc(feat(okPt, props(`"radius_m":"50"`))), "feature 0: properties.radius_m: must be a number more than 0 and at most 100000 (metres)"},
		{"radius on polygon", fc(feat(okPoly, props(`"radius_m":50`))), "feature 0: properties.radius_m: only for a Point (circle) feature"},
		{"dwell fraction", fc(feat(okPoly, props(`"dwell_s":1.5`))), "feature 0: properties.dwell_s: must be whole seconds from 0 to 86400"},
		{"dwell negative", fc(feat(okPoly, props(`"dwell_s":-1`))), "feature 0: properties.dwell_s: must be whole seconds from 0 to 86400"},
		{"dwell too long", fc(feat(okPoly, props(`"dwell_s":86401`))), "feature 0: properties.dwell_s: must be whole seconds from 0 to 86400"},
		{"dwell string", fc(feat(okPoly, props(`"dwell_s":"30"`))), "feature 0: properties.dwell_s: must be whole seconds from 0 to 86400"},
		{"assign not strings", fc(feat(okPoly, props(`"assign":[1]`))), "feature 0: properties.assign: must be an array of strings"},
		{"assign empty id", fc(feat(okPoly, props(`"assign":["a",""]`))), "feature 0: properties.assign[1]: empty"},
		{"duplicate id", fc(okFeat, withID(okFeat, `"Alice-7"`), okFeat, withID(okFeat, `"Alice-7"`)), "feature 3: id: same as feature 1"},
		{"duplicate integer id", fc(withID(okFeat, `7`), withID(okFeat, `"7"`)), "feature 1: id: same as feature 0"},
		{"id fraction", fc(withID(okFeat, `1.5`)), "feature 0: id: must be a string or an integer"},
		{"id object", fc(withID(okFeat, `{"name":"Alice"}`)), "feature 0: id: must be a string or an integer"},
		{"id too long", fc(withID(okFeat, `"`+strings.Repeat("Alice", 41)+`"`)), "feature 0: id: longer than 200 bytes"},
		{"schedule not object", fc(feat(okPoly, sched(`"weekdays"`))), "feature 0: properties.schedule: must be an object"},
		{"schedule unknown member", fc(feat(okPoly, sched(`{"start":"08:00","end":"18:00","tz":"UTC","holidays":[]}`))), `feature 0: properties.schedule: unknown member "holidays"`},
		{"schedule without tz", fc(feat(okPoly, sched(`{"start":"08:00","end":"18:00"}`))), `feature 0: properties.schedule.tz: required (an IANA time zone such as "Europe/London")`},
		{"schedule unknown tz", fc(feat(okPoly, sched(`{"start":"08:00","end":"18:00","tz":"Mars/Olympus"}`))), `feature 0: properties.schedule.tz: unknown time zone (an IANA name such as "Europe/London")`},
		{"schedule tz Local", fc(feat(okPoly, sched(`{"start":"08:00","end":"18:00","tz":"Local"}`))), `feature 0: properties.schedule.tz: unknown time zone (an IANA name such as "Europe/London")`},
		{"schedule tz path", fc(feat(okPoly, sched(`{"start":"08:00","end":"18:00","tz":"../../etc/passwd"}`))), `feature 0: properties.schedule.tz: unknown time zone (an IANA name such as "Europe/London")`},
		{"schedule tz not string", fc(feat(okPoly, sched(`{"start":"08:00","end":"18:00","tz":0}`))), "feature 0: properties.schedule.tz: must be a string"},
		{"schedule bad day", fc(feat(okPoly, sched(`{"days":["mon","Tuesday"],"start":"08:00","end":"18:00","tz":"UTC"}`))), `feature 0: properties.schedule.days[1]: must be one of "mon", "tue", "wed", "thu", "fri", "sat", "sun"`},
		{"schedule day twice", fc(feat(okPoly, sched(`{"days":["mon","mon"],"start":"08:00","end":"18:00","tz":"UTC"}`))), "feature 0: properties.schedule.days[1]: listed twice"},
		{"schedule no days", fc(feat(okPoly, sched(`{"days":[],"start":"08:00","end":"18:00","tz":"UTC"}`))), "feature 0: properties.schedule.days: no day is active"},
		{"schedule days not array", fc(feat(okPoly, sched(`{"days":"mon","start":"08:00","end":"18:00","tz":"UTC"}`))), `feature 0: properties.schedule.days: must be an array of days ("mon", "tue", …, "sun")`},
		{"schedule no start", fc(feat(okPoly, sched(`{"end":"18:00","tz":"UTC"}`))), `feature 0: properties.schedule.start: must be a time "HH:MM" from 00:00 to 23:59`},
		{"schedule start one digit", fc(feat(okPoly, sched(`{"start":"8:00","end":"18:00","tz":"UTC"}`))), `feature 0: properties.schedule.start: must be a time "HH:MM" from 00:00 to 23:59`},
		{"schedule start 24:00", fc(feat(okPoly, sched(`{"start":"24:00","end":"18:00","tz":"UTC"}`))), `feature 0: properties.schedule.start: must be a time "HH:MM" from 00:00 to 23:59`},
		{"schedule end 24:01", fc(feat(okPoly, sched(`{"start":"08:00","end":"24:01","tz":"UTC"}`))), `feature 0: properties.schedule.end: must be a time "HH:MM" from 00:01 to 24:00`},
		{"schedule end 00:00", fc(feat(okPoly, sched(`{"start":"08:00","end":"00:00","tz":"UTC"}`))), `feature 0: properties.schedule.end: must be a time "HH:MM" from 00:01 to 24:00`},
		{"schedule minutes 60", fc(feat(okPoly, sched(`{"start":"08:60","end":"18:00","tz":"UTC"}`))), `feature 0: properties.schedule.start: must be a time "HH:MM" from 00:00 to 23:59`},
		{"schedule empty window", fc(feat(okPoly, sched(`{"start":"08:00","end":"08:00","tz":"UTC"}`))), "feature 0: properties.schedule.end: must differ from start (00:00 to 24:00 is the whole day)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, err := geofence.ParseGeoJSON([]byte(tt.doc))
			if err == nil {
				t.Fatalf("parsed %d fences, want error %q", len(fs), tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error\n got %q\nwant %q", got, tt.want)
			}
			var ge *geofence.Error
			if !errors.As(err, &ge) {
				t.Errorf("error is %T, want *geofence.Error", err)
			}
			assertNoPersonalData(t, err.Error())
		})
	}
}

func assertNoPersonalData(t *testing.T, msg string) {
	t.Helper()
	for _, secret := range []string{"Alice", "Smith", "2345671", "7654321", "1.23"} {
		if strings.Contains(msg, secret) {
			t.Errorf("error %q leaks %q", msg, secret)
		}
	}
}

func TestParseNulls(t *testing.T) {
	// Null optional properties are the same as missing ones.
	doc := fc(feat(okPoly, `{"rule":"must_stay_inside","name":null,"dwell_s":null,"radius_m":null,"schedule":null,"assign":null}`),
		`{"type":"Feature","id":null,"geometry":`+okPoly+`,"properties":{"rule":"must_stay_inside","assign":[],"schedule":{"days":null,"start":"00:00","end":"24:00","tz":"UTC"}}}`)
	fs, err := geofence.ParseGeoJSON([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if f := fs[0]; f.Name != "" || f.Dwell != geofence.DefaultDwell || f.Schedule != nil || f.Assign != nil {
		t.Errorf("fence 0 = %+v", f)
	}
	if f := fs[1]; f.ID != "" || f.Assign != nil || f.Schedule.Days != days(0, 1, 2, 3, 4, 5, 6) {
		t.Errorf("fence 1 = %+v", f)
	}
}

func TestParseLimits(t *testing.T) {
	tiny := feat(okPt, `{"rule":"must_not_enter","radius_m":10}`)
	tests := []struct {
		name string
		doc  func() string
		want string
	}{
		{"features", func() string {
			return fc(strings.Split(strings.Repeat(tiny+"\n", geofence.MaxFeatures+1), "\n")[:geofence.MaxFeatures+1]...)
		}, "features: more than 10000 features"},
		{"positions in one fence", func() string {
			r := strings.Repeat(p2+",", geofence.MaxVerticesPerFence) + p1
			return fc(feat(polyWith("["+r+"]"), okProp))
		}, "feature 0: geometry.coordinates: more than 10000 positions in one fence"},
		{"positions in the document", func() string {
			// 101 fences of 9,999 positions: the 101st passes 1,000,000.
			var b strings.Builder
			b.WriteString("[")
			for i := range geofence.MaxVerticesPerFence - 2 {
				a := 2 * math.Pi * float64(i) / float64(geofence.MaxVerticesPerFence-2)
				fmt.Fprintf(&b, "[%.6f,%.6f],", math.Cos(a), math.Sin(a))
			}
			b.WriteString("[1,0]]")
			r := b.String()
			f := `{"type":"Feature","geometry":{"type":"Polygon","coordinates":[` + r + `]},"properties":{"rule":"must_not_enter"}}`
			fs := make([]string, 101)
			for i := range fs {
				fs[i] = f
			}
			return fc(fs...)
		}, "feature 100: geometry.coordinates: more than 1000000 positions in the document"},
		{"bytes", func() string {
			return fc(okFeat) + strings.Repeat(" ", geofence.MaxInputBytes)
		}, "document larger than 32 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if testing.Short() && tt.name == "positions in the document" {
				t.Skip("slow in -short mode")
			}
			_, err := geofence.ParseGeoJSON([]byte(tt.doc()))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	ok := geofence.Fence{Rule: geofence.MustNotEnter, Center: orb.Point{-1, 53}, RadiusM: 10}
	tests := []struct {
		name string
		mod  func(f *geofence.Fence)
		want string
	}{
		{"ok", func(*geofence.Fence) {}, ""},
		{"no rule", func(f *geofence.Fence) { f.Rule = "" }, `properties.rule: must be "must_stay_inside" or "must_not_enter"`},
		{"dwell not whole seconds", func(f *geofence.Fence) { f.Dwell = 1500 * time.Millisecond }, "properties.dwell_s: must be whole seconds from 0 to 86400"},
		{"circle and polygon", func(f *geofence.Fence) { f.Polygon = orb.MultiPolygon{{box(0, 0, 1, 1)}} }, "properties.radius_m: only for a Point (circle) feature"},
		{"no shape", func(f *geofence.Fence) { f.RadiusM = 0 }, "properties.radius_m: must be more than 0 and at most 100000 (metres)"},
		{"NaN radius", func(f *geofence.Fence) { f.RadiusM = nan() }, "properties.radius_m: must be more than 0 and at most 100000 (metres)"},
		{"NaN centre", func(f *geofence.Fence) { f.Center[0] = nan() }, "geometry.coordinates: longitude must be a number from -180 to 180"},
		{"NaN vertex", func(f *geofence.Fence) {
			f.RadiusM = 0
			r := box(0, 0, 1, 1)
			r[2][1] = nan()
			f.Polygon = orb.MultiPolygon{{box(5, 5, 6, 6)}, {r}}
		}, "geometry.coordinates[1][0][2]: latitude must be a number from -90 to 90"},
		{"schedule without zone", func(f *geofence.Fence) {
			f.Schedule = &geofence.Schedule{Days: days(time.Monday), Start: 0, End: time.Hour}
		}, "properties.schedule.tz: required"},
		{"schedule in Local", func(f *geofence.Fence) {
			f.Schedule = &geofence.Schedule{Days: days(time.Monday), Start: 0, End: time.Hour, Location: time.Local}
		}, "properties.schedule.tz: must be an IANA time zone name"},
		{"schedule without days", func(f *geofence.Fence) {
			f.Schedule = &geofence.Schedule{Start: 0, End: time.Hour, Location: time.UTC}
		}, "properties.schedule.days: no day is active"},
		{"schedule start with seconds", func(f *geofence.Fence) {
			f.Schedule = &geofence.Schedule{Days: days(time.Monday), Start: time.Second, End: time.Hour, Location: time.UTC}
		}, `properties.schedule.start: must be a time "HH:MM" from 00:00 to 23:59`},
		{"invalid UTF-8 name", func(f *geofence.Fence) { f.Name = "\xff" }, "properties.name: not valid UTF-8"},
		{"long id", func(f *geofence.Fence) { f.ID = strings.Repeat("x", 201) }, "id: longer than 200 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := ok
			tt.mod(&f)
			err := f.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.want {
				t.Fatalf("Validate = %v, want %q", err, tt.want)
			}
			// MarshalGeoJSON and NewIndex refuse the fence too, naming its position.
			want := "feature 1: " + tt.want
			if _, err := geofence.MarshalGeoJSON([]geofence.Fence{ok, f}); err == nil || err.Error() != want {
				t.Errorf("MarshalGeoJSON = %v, want %q", err, want)
			}
			if _, err := geofence.NewIndex([]geofence.Fence{ok, f}); err == nil || err.Error() != want {
				t.Errorf("NewIndex = %v, want %q", err, want)
			}
		})
	}
}

func nan() float64 { return math.NaN() }
