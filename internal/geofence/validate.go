package geofence

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/planar"
)

// Error is a problem with the GeoJSON document or with one fence, in words
// safe to show to the person who sent it and to log: it names the feature
// by position and the field by its JSON path, and never contains
// coordinates, names or ids (they are personal data).
type Error struct {
	// Feature is the fence's position in the FeatureCollection (0 for a
	// lone Feature) or in the slice given to NewIndex or MarshalGeoJSON;
	// -1 for the document as a whole or a fence checked by Validate.
	Feature int
	// Field is the JSON path of the offending member, e.g.
	// "properties.rule" or "geometry.coordinates[0][3]"; empty for the
	// document itself.
	Field string
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Feature >= 0 {
		b.WriteString("feature ")
		b.WriteString(strconv.Itoa(e.Feature))
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Validate checks a fence built by the caller against the rules
// ParseGeoJSON applies (shape, coordinates, limits, rule, dwell, schedule,
// text lengths). The error is an *Error with Feature -1.
func (f *Fence) Validate() error {
	if err := f.validate(); err != nil {
		return err
	}
	return nil
}

func (f *Fence) validate() *Error {
	bad := func(field, msg string) *Error { return &Error{Feature: -1, Field: field, Msg: msg} }
	if e := checkText(f.ID, "id"); e != nil {
		return e
	}
	if e := checkText(f.Name, "properties.name"); e != nil {
		return e
	}
	if f.Rule != MustStayInside && f.Rule != MustNotEnter {
		return bad("properties.rule", `must be "must_stay_inside" or "must_not_enter"`)
	}
	if f.Dwell < 0 || f.Dwell > MaxDwell || f.Dwell%time.Second != 0 {
		return bad("properties.dwell_s", "must be whole seconds from 0 to 86400")
	}
	if f.Schedule != nil {
		if e := f.Schedule.validate(); e != nil {
			return e
		}
	}
	if len(f.Assign) > MaxAssign {
		return bad("properties.assign", "more than "+strconv.Itoa(MaxAssign)+" entries")
	}
	for i, a := range f.Assign {
		if a == "" {
			return bad(fmt.Sprintf("properties.assign[%d]", i), "empty")
		}
		if e := checkText(a, fmt.Sprintf("properties.assign[%d]", i)); e != nil {
			return e
		}
	}
	if f.IsCircle() {
		if e := checkPosition(f.Center, "geometry.coordinates"); e != nil {
			return e
		}
		if !(f.RadiusM > 0 && f.RadiusM <= MaxRadiusM) {
			return bad("properties.radius_m", "must be more than 0 and at most 100000 (metres)")
		}
		return nil
	}
	if f.RadiusM != 0 {
		return bad("properties.radius_m", "only for a Point (circle) feature")
	}
	n := 0
	for k, poly := range f.Polygon {
		prefix := "geometry.coordinates"
		if len(f.Polygon) > 1 {
			prefix = fmt.Sprintf("geometry.coordinates[%d]", k)
		}
		if e := checkPolygon(poly, prefix); e != nil {
			return e
		}
		for _, r := range poly {
			n += len(r)
		}
	}
	if n > MaxVerticesPerFence {
		return bad("geometry.coordinates", "more than "+strconv.Itoa(MaxVerticesPerFence)+" positions in one fence")
	}
	if b := f.Polygon.Bound(); b.Max[0]-b.Min[0] > 180 {
		return bad("geometry.coordinates", "spans more than 180° of longitude (fences must not cross the antimeridian)")
	}
	return nil
}

func checkText(s, field string) *Error {
	if len(s) > MaxTextLen {
		return &Error{Feature: -1, Field: field, Msg: "longer than " + strconv.Itoa(MaxTextLen) + " bytes"}
	}
	if !utf8.ValidString(s) {
		return &Error{Feature: -1, Field: field, Msg: "not valid UTF-8"}
	}
	return nil
}

func checkPosition(p orb.Point, field string) *Error {
	switch {
	case !(p[0] >= -180 && p[0] <= 180):
		return &Error{Feature: -1, Field: field, Msg: "longitude must be a number from -180 to 180"}
	case !(p[1] >= -90 && p[1] <= 90):
		return &Error{Feature: -1, Field: field, Msg: "latitude must be a number from -90 to 90"}
	}
	return nil
}

// checkPolygon checks one polygon (outer ring and holes); prefix is the
// JSON path of its coordinates array.
func checkPolygon(poly orb.Polygon, prefix string) *Error {
	if len(poly) == 0 {
		return &Error{Feature: -1, Field: prefix, Msg: "a polygon needs an outer ring"}
	}
	for j, r := range poly {
		field := prefix + "[" + strconv.Itoa(j) + "]"
		if len(r) < 4 {
			return &Error{Feature: -1, Field: field, Msg: "a ring needs at least 4 positions (the first repeated at the end)"}
		}
		for i, p := range r {
			if e := checkPosition(p, field+"["+strconv.Itoa(i)+"]"); e != nil {
				return e
			}
		}
		if r[0] != r[len(r)-1] {
			return &Error{Feature: -1, Field: field, Msg: "ring is not closed (the last position must repeat the first)"}
		}
		if a := planar.Area(r); a == 0 || math.IsNaN(a) {
			return &Error{Feature: -1, Field: field, Msg: "ring is degenerate (it encloses no area)"}
		}
	}
	return nil
}
