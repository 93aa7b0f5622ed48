package app_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// zonesOf is organisation x's zones as the API lists them.
func (w *authzWorld) zonesOf() []map[string]any {
	w.t.Helper()
	code, body := w.call("admin", "GET", "/api/v1/orgs/x/zones", "")
	if code != 200 {
		w.t.Fatalf("zones: %d %s", code, body)
	}
	var fc struct {
		Features []map[string]any `json:"features"`
	}
	if err := json.Unmarshal([]byte(body), &fc); err != nil {
		w.t.Fatal(err)
	}
	return fc.Features
}

func zoneNamed(fs []map[string]any, name string) map[string]any {
	for _, f := range fs {
		if p, _ := f["properties"].(map[string]any); p != nil && p["name"] == name {
			return f
		}
	}
	return nil
}

// TestZoneEditorPage: the zone editor over the real API — who may see and
// change zones, a hostile name escaped, the API's field errors next to
// their fields, import, export and delete.
func TestZoneEditorPage(t *testing.T) {
	w := newAuthzWorld(t)
	w.fixture("x-worker") // zone "Zone 1" of x
	for _, tt := range []struct {
		caller, method, path string
		code                 int
	}{
		{"supervisor", "GET", "/console/x/zones", 200},
		{"auditor", "GET", "/console/x/zones", 200},
		{"worker", "GET", "/console/x/zones", 403},
		{"carer", "GET", "/console/x/zones", 403},
		{"other-org", "GET", "/console/x/zones", 404},
		{"anonymous", "GET", "/console/x/zones", 303},
		{"worker", "GET", "/console/x/zones/export", 403},
		{"other-org", "GET", "/console/x/zones/export", 404},
	} {
		if code, body, _ := w.avPage(tt.caller, tt.method, tt.path, nil); code != tt.code {
			t.Errorf("%s %s %s: %d, want %d\n%.300s", tt.caller, tt.method, tt.path, code, tt.code, body)
		}
	}
	// The auditor sees zones but no editing controls; the API refuses a
	// change posted anyway.
	_, body, _ := w.avPage("auditor", "GET", "/console/x/zones", nil)
	if !strings.Contains(body, "Zone 1") || strings.Contains(body, `id="zone-form"`) || strings.Contains(body, `id="import-form"`) {
		t.Errorf("auditor's page:\n%s", body)
	}
	poly := `{"type":"Polygon","coordinates":[[[-0.13,51.5],[-0.12,51.5],[-0.12,51.51],[-0.13,51.5]]]}`
	form := url.Values{"name": {avImg + avSVG}, "rule": {"must_not_enter"}, "dwell_s": {"45"}, "geometry": {poly},
		"days": {"mon", "tue"}, "start": {"08:00"}, "end": {"18:00"}, "tz": {"Europe/London"}, "assign": {"x-worker, x-other"}}
	if code, _, _ := w.avPage("auditor", "POST", "/console/x/zones", form); code != 403 {
		t.Errorf("auditor saves a zone: %d, want 403", code)
	}

	// Save through the form: a plain POST with the GeoJSON geometry.
	code, body, hdr := w.avPage("supervisor", "POST", "/console/x/zones", form)
	if code != 303 || hdr.Get("Location") != "/console/x/zones?done=saved" {
		t.Fatalf("save: %d %s\n%s", code, hdr.Get("Location"), body)
	}
	z := zoneNamed(w.zonesOf(), avImg+avSVG)
	if z == nil {
		t.Fatalf("saved zone not listed: %v", w.zonesOf())
	}
	props := z["properties"].(map[string]any)
	if props["dwell_s"] != 45.0 || props["rule"] != "must_not_enter" || len(props["assign"].([]any)) != 2 || props["schedule"] == nil {
		t.Errorf("saved zone %v", z)
	}
	_, body, _ = w.avPage("supervisor", "GET", "/console/x/zones?done=saved", nil)
	if strings.Contains(body, "<img") || strings.Contains(body, "<svg") ||
		!strings.Contains(body, `<td class="zone-name">&lt;img src=x onerror=alert(1)&gt;&#34;&gt;&lt;svg onload=alert(1)&gt;</td>`) {
		t.Errorf("zone name not escaped:\n%s", body)
	}

	// Field errors from the API, next to their fields.
	for _, tt := range []struct {
		field, value, id, msg string
	}{
		{"dwell_s", "99999", "dwell-error", "must be whole seconds from 0 to 86400"},
		{"rule", "sometimes", "rule-error", `must be &#34;must_stay_inside&#34; or &#34;must_not_enter&#34;`},
		{"name", strings.Repeat("n", 201), "name-error", "longer than 200 bytes"},
		{"geometry", "", "geometry-error", "draw the zone on the map first"},
		{"tz", "Mars/Olympus", "schedule-error", ""},
	} {
		f := url.Values{}
		for k, v := range form {
			f[k] = v
		}
		f.Set(tt.field, tt.value)
		code, body, _ := w.avPage("supervisor", "POST", "/console/x/zones", f)
		if code != 400 || !strings.Contains(body, `id="`+tt.id+`">`+tt.msg) {
			t.Errorf("%s=%q: %d, want 400 with %s %q\n%s", tt.field, tt.value, code, tt.id, tt.msg, body)
		}
	}

	// Edit: the form is filled in; saving keeps the id.
	id, _ := z["id"].(string)
	_, body, _ = w.avPage("supervisor", "GET", "/console/x/zones?edit="+url.QueryEscape(id), nil)
	if !strings.Contains(body, `name="id" value="`+id+`"`) || !strings.Contains(body, `value="45"`) {
		t.Errorf("edit form:\n%s", body)
	}
	form.Set("id", id)
	form.Set("name", "Renamed")
	if code, _, _ := w.avPage("supervisor", "POST", "/console/x/zones", form); code != 303 {
		t.Errorf("edit: %d", code)
	}
	if r := zoneNamed(w.zonesOf(), "Renamed"); r == nil || r["id"] != id {
		t.Errorf("edited zone: %v", w.zonesOf())
	}
	form.Set("id", "zo-of-nobody")
	if code, _, _ := w.avPage("supervisor", "POST", "/console/x/zones", form); code != 404 {
		t.Errorf("edit an unknown zone: %d, want 404", code)
	}

	// Export: a GeoJSON download.
	code, body, hdr = w.avPage("auditor", "GET", "/console/x/zones/export", nil)
	var fc struct {
		Type     string           `json:"type"`
		Features []map[string]any `json:"features"`
	}
	if code != 200 || hdr.Get("Content-Type") != "application/geo+json" ||
		hdr.Get("Content-Disposition") != `attachment; filename="zones-x.geojson"` ||
		json.Unmarshal([]byte(body), &fc) != nil || fc.Type != "FeatureCollection" || zoneNamed(fc.Features, "Renamed") == nil {
		t.Errorf("export: %d %v\n%s", code, hdr, body)
	}

	// Import from pasted text; broken JSON and an invalid zone are shown.
	imp := `{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"name":"Imported","rule":"must_stay_inside","radius_m":250},"geometry":{"type":"Point","coordinates":[-0.1,51.49]}}]}`
	if code, body, _ := w.avPage("supervisor", "POST", "/console/x/zones/import", url.Values{"geojson": {imp}}); code != 303 {
		t.Errorf("import: %d %s", code, body)
	}
	if zoneNamed(w.zonesOf(), "Imported") == nil {
		t.Error("imported zone not listed")
	}
	if code, body, _ := w.avPage("supervisor", "POST", "/console/x/zones/import", url.Values{"geojson": {"{nope"}}); code != 400 || !strings.Contains(body, `id="import-error"`) {
		t.Errorf("broken import: %d\n%s", code, body)
	}
	bad := strings.Replace(imp, `"radius_m":250`, `"radius_m":-1`, 1)
	if code, body, _ := w.avPage("supervisor", "POST", "/console/x/zones/import", url.Values{"geojson": {bad}}); code != 400 || !strings.Contains(body, "radius_m") {
		t.Errorf("invalid import: %d\n%s", code, body)
	}

	// Delete.
	if code, _, _ := w.avPage("auditor", "POST", "/console/x/zones/"+url.PathEscape(id)+"/delete", url.Values{}); code != 403 {
		t.Errorf("auditor deletes: %d, want 403", code)
	}
	if code, _, _ := w.avPage("supervisor", "POST", "/console/x/zones/"+url.PathEscape(id)+"/delete", url.Values{}); code != 303 {
		t.Errorf("delete: %d", code)
	}
	if zoneNamed(w.zonesOf(), "Renamed") != nil {
		t.Error("deleted zone still listed")
	}
	if code, _, _ := w.avPage("supervisor", "POST", "/console/x/zones/"+url.PathEscape(id)+"/delete", url.Values{}); code != 404 {
		t.Errorf("delete again: %d, want 404", code)
	}
}

// TestZoneEditorInBrowser: an admin draws a polygon by clicking the map at
// four points in real Chromium, names it with hostile text and saves it;
// the API lists it, the map draws it after a reload (the name only as
// text), and the export link downloads the organisation's GeoJSON.
func TestZoneEditorInBrowser(t *testing.T) {
	w := newAccessWorld(t)
	admin, secret, _ := w.enrolledAdmin(t)
	if r := admin.do("POST", "/api/v1/orgs", `{"id":"acme","name":"Acme Care"}`); r.status != 201 {
		t.Fatalf("create org: %d %s", r.status, r.body)
	}
	w.clk.Advance(30 * time.Second)

	b := newChrome(t, "https://"+w.a.Addr("https"), 90*time.Second)
	b.signIn("ada@example.org", strongPassword, secret, w.clk.Now())
	b.do("open the zone editor", chromedp.Navigate(b.base+"/console/acme/zones"),
		chromedp.WaitVisible(chromedp.CSS("#zones-map.leaflet-container")), chromedp.WaitVisible(chromedp.CSS("#no-zones")))
	b.do("choose the polygon tool", chromedp.Click(chromedp.CSS("#tool-polygon")))
	box, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]float64](
		`(() => { const r = document.getElementById("zones-map").getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })()`))
	if err != nil || len(box) != 4 {
		b.failed("map position", err)
	}
	x, y, wd, ht := box[0], box[1], box[2], box[3]
	for _, p := range [][2]float64{{0.35, 0.35}, {0.65, 0.35}, {0.65, 0.7}, {0.35, 0.7}} {
		b.do("click a corner", chromedp.MouseClickXY(x+wd*p[0], y+ht*p[1]))
	}
	b.poll("a polygon of four corners in the form",
		`(() => { try { const g = JSON.parse(document.getElementById("geometry").value); return g.type === "Polygon" && g.coordinates[0].length === 5 } catch (e) { return false } })()`,
		10*time.Second)
	name := avImg + avSVG
	b.do("name and save",
		chromedp.Click(chromedp.CSS("#tool-finish")),
		chromedp.SendKeys(chromedp.CSS("#zone-name"), name),
		chromedp.SetValue(chromedp.CSS("#zone-rule"), "must_stay_inside"),
		chromedp.Click(chromedp.CSS("#zone-save")),
		chromedp.WaitVisible(chromedp.CSS("#zones-notice")),
	)

	// The API has it.
	r := admin.do("GET", "/api/v1/orgs/acme/zones", "")
	var fc struct {
		Features []map[string]any `json:"features"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &fc) != nil || len(fc.Features) != 1 {
		t.Fatalf("zones: %d %s", r.status, r.body)
	}
	props, _ := fc.Features[0]["properties"].(map[string]any)
	geom, _ := fc.Features[0]["geometry"].(map[string]any)
	if props["name"] != name || props["rule"] != "must_stay_inside" || geom["type"] != "Polygon" {
		t.Errorf("zone %v", fc.Features[0])
	}

	// Drawn after a reload; the name is text.
	b.do("reload", chromedp.Navigate(b.base+"/console/acme/zones"), chromedp.WaitVisible(chromedp.CSS("#zones")))
	b.poll("the zone drawn", `document.querySelectorAll("#zones-map path.zone-shape").length === 1`, 20*time.Second)
	if got := b.text("#zones td.zone-name"); got != name {
		t.Errorf("listed as %q", got)
	}
	if n := b.eval(`document.querySelectorAll('img[src="x"], svg[onload], img[onerror]').length`); n != 0 {
		t.Errorf("hostile markup became %d elements", n)
	}
	b.screenshot("zones")

	// Export: the link's GeoJSON, fetched from the page.
	exp, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`fetch(document.getElementById("export").href).then(async r =>
		r.headers.get("Content-Type") + "\n" + r.headers.get("Content-Disposition") + "\n" + await r.text())`, chromedp.EvalAwaitPromise))
	if err != nil {
		b.failed("export", err)
	}
	parts := strings.SplitN(exp, "\n", 3)
	var got struct {
		Type     string           `json:"type"`
		Features []map[string]any `json:"features"`
	}
	if len(parts) != 3 || parts[0] != "application/geo+json" || !strings.HasPrefix(parts[1], "attachment;") ||
		json.Unmarshal([]byte(parts[2]), &got) != nil || got.Type != "FeatureCollection" || len(got.Features) != 1 {
		t.Errorf("export: %q", exp)
	}

	// A circle: click the centre, set the radius.
	b.do("choose the circle tool", chromedp.Click(chromedp.CSS("#tool-circle")))
	box, err = chromedp.Run(b.ctx, chromedp.Evaluate[[]float64](
		`(() => { const r = document.getElementById("zones-map").getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })()`))
	if err != nil || len(box) != 4 {
		b.failed("map position", err)
	}
	b.do("place the centre", chromedp.MouseClickXY(box[0]+box[2]*0.85, box[1]+box[3]*0.2))
	b.poll("a circle in the form", `(() => { try { return JSON.parse(document.getElementById("geometry").value).type === "Point" } catch (e) { return false } })()`, 10*time.Second)
	b.do("name and save the circle",
		chromedp.SetValue(chromedp.CSS("#zone-radius"), "250"),
		chromedp.SendKeys(chromedp.CSS("#zone-name"), "Depot"),
		chromedp.Click(chromedp.CSS("#zone-save")),
		chromedp.WaitVisible(chromedp.CSS("#zones-notice")),
	)
	r = admin.do("GET", "/api/v1/orgs/acme/zones", "")
	fc.Features = nil
	if json.Unmarshal(r.body, &fc) != nil || len(fc.Features) != 2 {
		t.Fatalf("zones: %s", r.body)
	}
	circle := false
	for _, f := range fc.Features {
		p, _ := f["properties"].(map[string]any)
		g, _ := f["geometry"].(map[string]any)
		circle = circle || (p["name"] == "Depot" && p["radius_m"] == 250.0 && g["type"] == "Point")
	}
	if !circle {
		t.Errorf("no circle of 250 m: %s", r.body)
	}
	b.poll("both zones drawn", `document.querySelectorAll("#zones-map path.zone-shape").length === 2`, 20*time.Second)
	b.noProblems()
}
