package geofence

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/paulmach/orb"
)

// ParseGeoJSON reads the fences of a GeoJSON FeatureCollection (RFC 7946),
// or of a single Feature. Each feature is one fence:
//
//   - geometry: a Polygon or MultiPolygon, or a Point with
//     properties.radius_m for a circle; [longitude, latitude] in WGS84
//     degrees (an altitude is accepted and dropped); rings closed, at least
//     4 positions, enclosing some area; holes are not checked to lie
//     inside their outer ring, nor rings not to self-intersect.
//   - id (optional): a string or an integer, kept as Fence.ID; duplicates
//     are an error.
//   - properties: "rule" (required: "must_stay_inside" or
//     "must_not_enter"), "name", "dwell_s" (whole seconds, default 30),
//     "radius_m" (Points only, 0 < r <= 100000), "schedule" {"days":
//     ["mon", …] (default every day), "start": "08:00", "end": "18:00"
//     (end may be before start, or "24:00"), "tz": "Europe/London"
//     (required)}, "assign": [ids]. A null value is the same as a missing
//     one. Any other property is an error.
//
// The document may also carry "bbox" and "name" (ignored) and a legacy
// "crs" that names WGS84 longitude/latitude. Parsing is strict and bounded
// (MaxInputBytes, MaxFeatures, MaxVerticesPerFence, MaxVertices); the
// error is an *Error naming the feature and the field.
func ParseGeoJSON(b []byte) ([]Fence, error) {
	if len(b) > MaxInputBytes {
		return nil, &Error{Feature: -1, Msg: fmt.Sprintf("document larger than %d MiB", MaxInputBytes>>20)}
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, jsonError(err)
	}
	if top == nil {
		return nil, &Error{Feature: -1, Msg: "must be a GeoJSON object"}
	}
	typ, err := docString(top, "type")
	if err != nil {
		return nil, err
	}
	p := parser{budget: MaxVertices, ids: map[string]int{}, zones: map[string]*time.Location{}}
	switch typ {
	case "Feature":
		f, err := p.feature(0, b)
		if err != nil {
			return nil, err
		}
		return []Fence{f}, nil
	case "FeatureCollection":
	default:
		return nil, &Error{Feature: -1, Field: "type", Msg: `must be "FeatureCollection" or "Feature"`}
	}
	for k, v := range top {
		switch k {
		case "type", "features", "bbox", "name":
		case "crs":
			if err := checkCRS(v); err != nil {
				return nil, err
			}
		default:
			return nil, &Error{Feature: -1, Msg: "unknown member " + quoteKey(k)}
		}
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(top["features"], &raws); err != nil || raws == nil {
		return nil, &Error{Feature: -1, Field: "features", Msg: "must be an array of Feature objects"}
	}
	if len(raws) > MaxFeatures {
		return nil, &Error{Feature: -1, Field: "features", Msg: "more than " + strconv.Itoa(MaxFeatures) + " features"}
	}
	fences := make([]Fence, 0, len(raws))
	for i, raw := range raws {
		f, err := p.feature(i, raw)
		if err != nil {
			return nil, err
		}
		fences = append(fences, f)
	}
	return fences, nil
}

// jsonError turns a decoding error of the whole document into an *Error
// without echoing any of its content.
func jsonError(err error) *Error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return &Error{Feature: -1, Msg: fmt.Sprintf("invalid JSON near byte %d", se.Offset)}
	}
	return &Error{Feature: -1, Msg: "must be a GeoJSON object"}
}

func docString(obj map[string]json.RawMessage, key string) (string, *Error) {
	var s string
	if raw, ok := obj[key]; !ok || json.Unmarshal(raw, &s) != nil {
		return "", &Error{Feature: -1, Field: key, Msg: "must be a string"}
	}
	return s, nil
}

func checkCRS(raw json.RawMessage) *Error {
	var crs struct {
		Properties struct {
			Name string `json:"name"`
		} `json:"properties"`
	}
	if json.Unmarshal(raw, &crs) == nil {
		switch crs.Properties.Name {
		case "urn:ogc:def:crs:OGC:1.3:CRS84", "urn:ogc:def:crs:OGC::CRS84", "CRS84",
			"urn:ogc:def:crs:EPSG::4326", "EPSG:4326":
			return nil
		}
	}
	return &Error{Feature: -1, Field: "crs", Msg: "only WGS84 longitude/latitude (CRS84, EPSG:4326) is supported"}
}

// quoteKey quotes an unknown member's name for an error, cut short.
func quoteKey(k string) string {
	if len(k) > 40 {
		k = k[:40] + "…"
	}
	return strconv.Quote(k)
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

type parser struct {
	budget int            // positions left in the document
	ids    map[string]int // feature ids seen, to their feature
	zones  map[string]*time.Location
}

func (p *parser) feature(i int, raw json.RawMessage) (Fence, *Error) {
	bad := func(field, msg string) (Fence, *Error) { return Fence{}, &Error{Feature: i, Field: field, Msg: msg} }
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil || obj == nil {
		return bad("", "must be a Feature object")
	}
	for k := range obj {
		switch k {
		case "type", "id", "geometry", "properties", "bbox":
		default:
			return bad("", "unknown member "+quoteKey(k))
		}
	}
	var typ string
	if json.Unmarshal(obj["type"], &typ) != nil || typ != "Feature" {
		return bad("type", `must be "Feature"`)
	}
	var f Fence
	if raw, ok := obj["id"]; ok && !isNull(raw) {
		if json.Unmarshal(raw, &f.ID) != nil {
			s := string(bytes.TrimSpace(raw))
			if _, err := strconv.ParseInt(s, 10, 64); err != nil {
				return bad("id", "must be a string or an integer")
			}
			f.ID = s
		}
		if j, dup := p.ids[f.ID]; dup && f.ID != "" {
			return bad("id", "same as feature "+strconv.Itoa(j))
		}
		p.ids[f.ID] = i
	}
	point, err := p.geometry(&f, obj["geometry"])
	if err != nil {
		err.Feature = i
		return Fence{}, err
	}
	if err := p.properties(&f, obj["properties"], point); err != nil {
		err.Feature = i
		return Fence{}, err
	}
	if err := f.validate(); err != nil {
		err.Feature = i
		return Fence{}, err
	}
	return f, nil
}

// geometry fills f.Polygon or f.Center and reports whether it was a Point.
func (p *parser) geometry(f *Fence, raw json.RawMessage) (bool, *Error) {
	var g map[string]json.RawMessage
	if json.Unmarshal(raw, &g) != nil || g == nil {
		return false, &Error{Field: "geometry", Msg: "must be a Polygon, MultiPolygon or Point object"}
	}
	for k := range g {
		switch k {
		case "type", "coordinates", "bbox":
		default:
			return false, &Error{Field: "geometry", Msg: "unknown member " + quoteKey(k)}
		}
	}
	var typ string
	_ = json.Unmarshal(g["type"], &typ)
	coords, ok := g["coordinates"]
	if !ok {
		coords = json.RawMessage("null")
	}
	c := coordDecoder{b: coords, max: min(MaxVerticesPerFence, p.budget)}
	const field = "geometry.coordinates"
	switch typ {
	case "Point":
		pt, ok := c.position()
		if !ok {
			return false, &Error{Field: field, Msg: "must be a position [longitude, latitude]"}
		}
		if e := checkPosition(pt, field); e != nil {
			return false, e
		}
		f.Center = pt
		return true, nil
	case "Polygon":
		poly, ok := c.polygon()
		if c.over {
			return false, c.overError()
		}
		if !ok {
			return false, &Error{Field: field, Msg: "must be an array of rings, each an array of positions [longitude, latitude]"}
		}
		if e := checkPolygon(poly, field); e != nil {
			return false, e
		}
		f.Polygon = orb.MultiPolygon{poly}
	case "MultiPolygon":
		mp, ok := c.multiPolygon()
		if c.over {
			return false, c.overError()
		}
		if !ok {
			return false, &Error{Field: field, Msg: "must be an array of polygons, each an array of rings of positions [longitude, latitude]"}
		}
		if len(mp) == 0 {
			return false, &Error{Field: field, Msg: "no polygon"}
		}
		for k, poly := range mp {
			if e := checkPolygon(poly, field+"["+strconv.Itoa(k)+"]"); e != nil {
				return false, e
			}
		}
		f.Polygon = mp
	default:
		return false, &Error{Field: "geometry.type", Msg: `must be "Polygon", "MultiPolygon" or "Point" (a circle with properties.radius_m)`}
	}
	p.budget -= c.n
	return false, nil
}

// coordDecoder reads GeoJSON coordinates: nested arrays of numbers, from
// bytes that encoding/json has already checked to be one valid JSON value
// (so a number's extent is a valid JSON number). It counts positions as it
// goes, so the limits stop it before it allocates for more; anything but
// arrays and numbers (strings, objects, literals) is a shape error.
type coordDecoder struct {
	b    []byte
	i    int
	n    int // positions read
	max  int
	over bool // more than max positions
}

func (c *coordDecoder) overError() *Error {
	if c.max < MaxVerticesPerFence {
		return &Error{Field: "geometry.coordinates", Msg: "more than " + strconv.Itoa(MaxVertices) + " positions in the document"}
	}
	return &Error{Field: "geometry.coordinates", Msg: "more than " + strconv.Itoa(MaxVerticesPerFence) + " positions in one fence"}
}

// peek skips white space and commas (the input is valid JSON, so commas
// are where they belong) and returns the next byte, 0 at the end.
func (c *coordDecoder) peek() byte {
	for ; c.i < len(c.b); c.i++ {
		switch c.b[c.i] {
		case ' ', '\t', '\n', '\r', ',':
		default:
			return c.b[c.i]
		}
	}
	return 0
}

// open consumes a '['.
func (c *coordDecoder) open() bool {
	if c.peek() != '[' {
		return false
	}
	c.i++
	return true
}

// more reports whether another element follows in the current array; at
// its ']' it consumes it and returns false.
func (c *coordDecoder) more() bool {
	if c.peek() == ']' {
		c.i++
		return false
	}
	return true
}

func (c *coordDecoder) number() (float64, bool) {
	ch := c.peek()
	if ch != '-' && (ch < '0' || ch > '9') {
		return 0, false
	}
	j := c.i
	for j < len(c.b) && (c.b[j] >= '0' && c.b[j] <= '9' || c.b[j] == '-' || c.b[j] == '+' || c.b[j] == '.' || c.b[j] == 'e' || c.b[j] == 'E') {
		j++
	}
	v, err := strconv.ParseFloat(string(c.b[c.i:j]), 64)
	c.i = j
	if err != nil {
		v = math.NaN() // out of range: reported by checkPosition
	}
	return v, true
}

func (c *coordDecoder) position() (orb.Point, bool) {
	if !c.open() {
		return orb.Point{}, false
	}
	var p orb.Point
	k := 0
	for c.more() {
		v, ok := c.number()
		if !ok || k == 3 {
			return orb.Point{}, false
		}
		if k < 2 {
			p[k] = v
		}
		k++
	}
	return p, k >= 2
}

func (c *coordDecoder) ring() (orb.Ring, bool) {
	if !c.open() {
		return nil, false
	}
	var r orb.Ring
	for c.more() {
		if c.n++; c.n > c.max {
			c.over = true
			return nil, false
		}
		p, ok := c.position()
		if !ok {
			return nil, false
		}
		r = append(r, p)
	}
	return r, true
}

func (c *coordDecoder) polygon() (orb.Polygon, bool) {
	if !c.open() {
		return nil, false
	}
	var poly orb.Polygon
	for c.more() {
		r, ok := c.ring()
		if !ok {
			return nil, false
		}
		poly = append(poly, r)
	}
	return poly, true
}

func (c *coordDecoder) multiPolygon() (orb.MultiPolygon, bool) {
	if !c.open() {
		return nil, false
	}
	var mp orb.MultiPolygon
	for c.more() {
		poly, ok := c.polygon()
		if !ok {
			return nil, false
		}
		mp = append(mp, poly)
	}
	return mp, true
}

func (p *parser) properties(f *Fence, raw json.RawMessage, point bool) *Error {
	bad := func(field, msg string) *Error { return &Error{Field: "properties." + field, Msg: msg} }
	var props map[string]json.RawMessage
	if raw != nil && !isNull(raw) && json.Unmarshal(raw, &props) != nil {
		return &Error{Field: "properties", Msg: "must be an object"}
	}
	for k, v := range props {
		if isNull(v) {
			delete(props, k)
			continue
		}
		switch k {
		case "name", "rule", "dwell_s", "radius_m", "schedule", "assign":
		default:
			return &Error{Field: "properties", Msg: "unknown property " + quoteKey(k)}
		}
	}
	rule, ok := props["rule"]
	if !ok {
		return bad("rule", "required")
	}
	if json.Unmarshal(rule, (*string)(&f.Rule)) != nil || (f.Rule != MustStayInside && f.Rule != MustNotEnter) {
		return bad("rule", `must be "must_stay_inside" or "must_not_enter"`)
	}
	if v, ok := props["name"]; ok && json.Unmarshal(v, &f.Name) != nil {
		return bad("name", "must be a string")
	}
	f.Dwell = DefaultDwell
	if v, ok := props["dwell_s"]; ok {
		d, ok := number(v)
		if !ok || d < 0 || d > MaxDwell.Seconds() || d != math.Trunc(d) {
			return bad("dwell_s", "must be whole seconds from 0 to 86400")
		}
		f.Dwell = time.Duration(d) * time.Second
	}
	v, ok := props["radius_m"]
	switch {
	case point && !ok:
		return bad("radius_m", "required for a Point (circle) feature")
	case !point && ok:
		return bad("radius_m", "only for a Point (circle) feature")
	case point:
		r, ok := number(v)
		if !ok || !(r > 0 && r <= MaxRadiusM) {
			return bad("radius_m", "must be a number more than 0 and at most 100000 (metres)")
		}
		f.RadiusM = r
	}
	if v, ok := props["schedule"]; ok {
		s, err := p.schedule(v)
		if err != nil {
			return err
		}
		f.Schedule = s
	}
	if v, ok := props["assign"]; ok {
		if json.Unmarshal(v, &f.Assign) != nil {
			return bad("assign", "must be an array of strings")
		}
		if len(f.Assign) == 0 {
			f.Assign = nil
		}
	}
	return nil
}

// number reads a JSON number; false for anything else or out of range.
func number(raw json.RawMessage) (float64, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || !(raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(raw), 64)
	return v, err == nil
}

func (p *parser) schedule(raw json.RawMessage) (*Schedule, *Error) {
	bad := func(field, msg string) (*Schedule, *Error) {
		return nil, &Error{Field: "properties.schedule" + field, Msg: msg}
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return bad("", "must be an object")
	}
	var in struct {
		Days       []string
		Start, End string
		TZ         string
	}
	for k, v := range obj {
		var err error
		switch k {
		case "days":
			if !isNull(v) {
				err = json.Unmarshal(v, &in.Days)
				if in.Days == nil {
					in.Days = []string{}
				}
			}
		case "start":
			err = json.Unmarshal(v, &in.Start)
		case "end":
			err = json.Unmarshal(v, &in.End)
		case "tz":
			err = json.Unmarshal(v, &in.TZ)
		default:
			return bad("", "unknown member "+quoteKey(k))
		}
		if err != nil {
			if k == "days" {
				return bad(".days", `must be an array of days ("mon", "tue", …, "sun")`)
			}
			return bad("."+k, "must be a string")
		}
	}
	s := &Schedule{}
	if in.Days == nil {
		s.Days = [7]bool{true, true, true, true, true, true, true}
	}
	if in.Days != nil && len(in.Days) == 0 {
		return bad(".days", "no day is active")
	}
	for i, d := range in.Days {
		wd, ok := parseDay(d)
		if !ok {
			return bad(fmt.Sprintf(".days[%d]", i), `must be one of "mon", "tue", "wed", "thu", "fri", "sat", "sun"`)
		}
		if s.Days[wd] {
			return bad(fmt.Sprintf(".days[%d]", i), "listed twice")
		}
		s.Days[wd] = true
	}
	var ok bool
	if s.Start, ok = parseClock(in.Start, false); !ok {
		return bad(".start", `must be a time "HH:MM" from 00:00 to 23:59`)
	}
	if s.End, ok = parseClock(in.End, true); !ok || s.End == 0 {
		return bad(".end", `must be a time "HH:MM" from 00:01 to 24:00`)
	}
	if in.TZ == "" {
		return bad(".tz", "required (an IANA time zone such as \"Europe/London\")")
	}
	loc, err := p.location(in.TZ)
	if err != nil {
		return bad(".tz", "unknown time zone (an IANA name such as \"Europe/London\")")
	}
	s.Location = loc
	if e := s.validate(); e != nil {
		return nil, e
	}
	return s, nil
}

// location loads an IANA zone once per document.
func (p *parser) location(name string) (*time.Location, error) {
	if loc, ok := p.zones[name]; ok {
		return loc, nil
	}
	if len(name) > 64 || name == "Local" {
		return nil, errors.New("not an IANA zone")
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '/' || r == '_' || r == '-' || r == '+') {
			return nil, errors.New("not an IANA zone")
		}
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	p.zones[name] = loc
	return loc, nil
}

// MarshalGeoJSON writes fences as a GeoJSON FeatureCollection that
// ParseGeoJSON reads back to the same fences: a MultiPolygon of one as a
// Polygon, a circle as a Point with properties.radius_m, the dwell time
// always, the schedule's days Monday first. Every fence must be valid
// (see Validate); the error is an *Error naming the first that is not.
func MarshalGeoJSON(fences []Fence) ([]byte, error) {
	fc := featureCollection{Type: "FeatureCollection", Features: make([]feature, 0, len(fences))}
	for i := range fences {
		f := &fences[i]
		if err := f.validate(); err != nil {
			err.Feature = i
			return nil, err
		}
		out := feature{Type: "Feature", ID: f.ID, Properties: properties{
			Name:   f.Name,
			Rule:   f.Rule,
			DwellS: int64(f.Dwell / time.Second),
			Assign: f.Assign,
		}}
		switch {
		case f.IsCircle():
			out.Geometry = geometry{Type: "Point", Coordinates: f.Center}
			out.Properties.RadiusM = f.RadiusM
		case len(f.Polygon) == 1:
			out.Geometry = geometry{Type: "Polygon", Coordinates: f.Polygon[0]}
		default:
			out.Geometry = geometry{Type: "MultiPolygon", Coordinates: f.Polygon}
		}
		if s := f.Schedule; s != nil {
			so := &schedule{Start: formatClock(s.Start), End: formatClock(s.End), TZ: s.Location.String(), Days: []string{}}
			for _, wd := range marshalOrder {
				if s.Days[wd] {
					so.Days = append(so.Days, dayNames[wd])
				}
			}
			out.Properties.Schedule = so
		}
		fc.Features = append(fc.Features, out)
	}
	b, err := json.Marshal(fc)
	if err != nil {
		return nil, fmt.Errorf("geofence: marshal: %w", err)
	}
	return b, nil
}

type featureCollection struct {
	Type     string    `json:"type"`
	Features []feature `json:"features"`
}

type feature struct {
	Type       string     `json:"type"`
	ID         string     `json:"id,omitempty"`
	Geometry   geometry   `json:"geometry"`
	Properties properties `json:"properties"`
}

type geometry struct {
	Type        string `json:"type"`
	Coordinates any    `json:"coordinates"`
}

type properties struct {
	Name     string    `json:"name,omitempty"`
	Rule     Rule      `json:"rule"`
	DwellS   int64     `json:"dwell_s"`
	RadiusM  float64   `json:"radius_m,omitempty"`
	Schedule *schedule `json:"schedule,omitempty"`
	Assign   []string  `json:"assign,omitempty"`
}

type schedule struct {
	Days  []string `json:"days"`
	Start string   `json:"start"`
	End   string   `json:"end"`
	TZ    string   `json:"tz"`
}
