package geofence_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"vigil/internal/geofence"
)

// FuzzParseGeoJSON feeds arbitrary bytes to ParseGeoJSON (fences are
// uploaded by organisations). It must never panic; an error is always an
// *Error; whatever parses must marshal and parse back to the same fences
// (and the same bytes), index without error, and relate, search and
// schedule without panicking. Seeds: the example files and
// testdata/fuzz/FuzzParseGeoJSON.
func FuzzParseGeoJSON(f *testing.F) {
	for _, name := range []string{"water-works.geojson", "rail-corridor.geojson"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	at := time.Date(2026, 11, 29, 23, 30, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		fs, err := geofence.ParseGeoJSON(data)
		if err != nil {
			var ge *geofence.Error
			if !errors.As(err, &ge) {
				t.Fatalf("error %T (%v), want *geofence.Error", err, err)
			}
			return
		}
		roundTrip(t, fs)
		idx, err := geofence.NewIndex(fs)
		if err != nil {
			t.Fatalf("NewIndex of parsed fences: %v", err)
		}
		for i := range fs {
			c := fs[i].Center
			if !fs[i].IsCircle() {
				c = fs[i].Polygon[0][0][0]
			}
			for _, acc := range []float64{0, 10, 1e5} {
				fix := geofence.Fix{Lon: c[0], Lat: c[1], AccuracyM: acc}
				fs[i].Relate(fix)
				n := 0
				idx.Search(fix, func(*geofence.Fence) bool { n++; return true })
				if n == 0 {
					t.Fatalf("fence %d: a fix on its own vertex found no fence", i)
				}
			}
			fs[i].ActiveAt(at)
		}
	})
}
