package app_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"vigil/internal/auth/mfa"
	"vigil/internal/auth/password"
	"vigil/internal/event"
	"vigil/internal/store"
)

// violation is one element failing one axe-core rule.
type violation struct {
	ID      string   `json:"id"`
	Impact  string   `json:"impact"`
	Help    string   `json:"help"`
	Target  []string `json:"target"`
	HTML    string   `json:"html"`
	Summary string   `json:"summary"`
}

func (v violation) String() string {
	return fmt.Sprintf("%s (%s) %s: %s\n    %s\n    %s", v.ID, v.Impact, strings.Join(v.Target, " "), v.Help, v.HTML,
		strings.ReplaceAll(v.Summary, "\n", " "))
}

// serious is true for the impacts that fail the test.
func (v violation) serious() bool { return v.Impact == "serious" || v.Impact == "critical" }

var (
	axeOnce       sync.Once
	axeJS, axeVer string
	axeErr        error
)

// axeSource is testdata/axe/axe.min.js (scripts/vendor-test-assets.sh),
// read once and checked against the sha256 in testdata/axe/VERSIONS; it
// also returns the version.
func axeSource(t *testing.T) (js, version string) {
	t.Helper()
	axeOnce.Do(func() { axeJS, axeVer, axeErr = readAxe() })
	if axeErr != nil {
		t.Fatalf("axe-core: %v (run scripts/vendor-test-assets.sh)", axeErr)
	}
	return axeJS, axeVer
}

func readAxe() (js, version string, err error) {
	v, err := os.ReadFile(filepath.Join("testdata", "axe", "VERSIONS"))
	if err != nil {
		return "", "", err
	}
	var want string
	for _, l := range strings.Split(string(v), "\n") {
		if f := strings.Fields(l); len(f) == 4 && f[0] == "axe-core" && f[3] == "axe.min.js" {
			version, want = f[1], f[2]
		}
	}
	b, err := os.ReadFile(filepath.Join("testdata", "axe", "axe.min.js"))
	if err != nil {
		return "", "", err
	}
	if got := fmt.Sprintf("%x", sha256.Sum256(b)); got != want {
		return "", "", fmt.Errorf("axe.min.js has sha256 %s, VERSIONS says %q", got, want)
	}
	return string(b), version, nil
}

// axeResult is what one axe-core run found: the violations, and how many
// elements it could not decide ("incomplete": needs review), by rule.
type axeResult struct {
	Violations []violation    `json:"violations"`
	Incomplete map[string]int `json:"incomplete"`
}

// axe runs axe-core's WCAG 2.0/2.1 A and AA rules on the current page
// (page names it in failures) and returns its violations, one per failing
// element. axe is injected with CDP Runtime.evaluate, which the page's CSP
// does not govern: Vigil never serves it.
func (b *chrome) axe(page string) []violation {
	b.t.Helper()
	return b.axeRun(page, `{runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}`, false).Violations
}

// axeRun injects axe-core (once per document) and runs it with options.
// With hideMap, the map's panes (tiles, shapes, markers) are hidden during
// the run, its controls kept: axe-core's stacking algorithm ignores the
// map container's overflow clipping (dequelabs/axe-core#3442) and takes
// Leaflet's off-screen tiles for something covering the page's text, so
// the text's colour contrast goes unchecked ("incomplete") otherwise.
func (b *chrome) axeRun(page, options string, hideMap bool) axeResult {
	b.t.Helper()
	js, _ := axeSource(b.t)
	if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`(() => { if (window.axe) return 1; `+js+`; return 1 })()`)); err != nil {
		b.failed("inject axe-core into "+page, err)
	}
	hide := "[]"
	if hideMap {
		hide = `[...document.querySelectorAll(".leaflet-pane")]`
	}
	run := `(() => {
		const hidden = ` + hide + `;
		for (const e of hidden) e.style.visibility = "hidden";
		return axe.run(document, Object.assign(` + options + `, {resultTypes: ["violations", "incomplete"]})).then(r => {
			for (const e of hidden) e.style.visibility = "";
			const incomplete = {};
			for (const v of r.incomplete) incomplete[v.id] = v.nodes.length;
			return JSON.stringify({incomplete, violations: r.violations.flatMap(v => v.nodes.map(n => ({
				id: v.id, impact: n.impact || v.impact || "", help: v.help,
				target: n.target.flat(Infinity).map(String), html: n.html.slice(0, 200), summary: n.failureSummary || ""})))});
		});
	})()`
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](run, chromedp.EvalAwaitPromise))
	if err != nil {
		b.failed("axe-core on "+page, err)
	}
	var r axeResult
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		b.t.Fatalf("axe-core result on %s: %v: %.200s", page, err, s)
	}
	return r
}

// a11yCount is what the checks found across the pages.
type a11yCount struct {
	pages, serious, minor, incomplete int
}

// checkA11y runs axe on the current page: serious and critical
// violations fail the test, the others are logged. On a page with a map
// (hasMap), colour contrast runs a second time with the map's panes hidden
// (see axeRun); what axe-core still cannot decide is logged.
func (b *chrome) checkA11y(page string, hasMap bool, n *a11yCount) {
	b.t.Helper()
	vs := b.axe(page)
	if hasMap {
		r := b.axeRun(page, `{runOnly: {type: "rule", values: ["color-contrast"]}}`, true)
		vs = append(vs, r.Violations...)
		if k := r.Incomplete["color-contrast"]; k > 0 {
			b.t.Logf("%s: colour contrast of %d elements needs review", page, k)
			n.incomplete += k
		}
	}
	n.pages++
	for _, v := range vs {
		if v.serious() {
			n.serious++
			b.t.Errorf("%s: %s", page, v)
		} else {
			n.minor++
			b.t.Logf("%s (minor): %s", page, v)
		}
	}
}

// tabOrder presses Tab up to n times from the top of the page and checks
// that focus visits the page's focusable elements in document order (each
// stop the next one after the previous) and that each focused element
// shows a visible focus indicator (an outline or a box shadow). Live
// parts of a page re-render (markers, the queue): the order is taken
// afresh at every stop. It returns how many stops it checked.
func (b *chrome) tabOrder(page string, n int) int {
	b.t.Helper()
	b.eval(`(() => {
		window.vigilA11yPrev = null;
		// What a keyboard user must reach, in the order they read it.
		window.vigilA11yStops = () => [...document.querySelectorAll('a[href], button, input:not([type="hidden"]), select, textarea, summary, [tabindex]')]
			.filter(e => {
				const r = e.getBoundingClientRect(), cs = getComputedStyle(e);
				return !e.disabled && e.tabIndex >= 0 && !e.closest("[hidden], [inert]") && cs.visibility !== "hidden" && cs.display !== "none" &&
					(r.width > 0 || r.height > 0);
			});
		if (document.activeElement && document.activeElement !== document.body) document.activeElement.blur();
		window.scrollTo(0, 0);
		return 1;
	})()`)
	type focus struct {
		Same    bool   `json:"same"`
		OK      bool   `json:"ok"`
		End     bool   `json:"end"`
		Tag     string `json:"tag"`
		Want    string `json:"want"`
		Visible bool   `json:"visible"`
	}
	// A date or time input takes several Tabs (one per field): the same
	// element again is not a step.
	step := 0
	for presses := 0; step < n && presses < 4*n; presses++ {
		if err := chromedp.Do(b.ctx, chromedp.KeyEvent("\t")); err != nil {
			b.failed("Tab on "+page, err)
		}
		s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`(() => {
			const e = document.activeElement, prev = window.vigilA11yPrev, stops = window.vigilA11yStops();
			const tag = x => x ? x.outerHTML.slice(0, 120) : "(the end)";
			if (e === prev) return JSON.stringify({same: true});
			window.vigilA11yPrev = e;
			const i = stops.indexOf(e), p = prev && prev.isConnected ? stops.indexOf(prev) : -1;
			// A previous stop that was re-rendered away leaves no order to check.
			const want = prev === null ? 0 : p >= 0 ? p + 1 : i;
			const cs = getComputedStyle(e);
			const outline = cs.outlineStyle !== "none" && parseFloat(cs.outlineWidth) > 0;
			const shadow = cs.boxShadow && cs.boxShadow !== "none";
			return JSON.stringify({ok: i >= 0 && i === want, end: prev !== null && p === stops.length - 1, tag: tag(e), want: tag(stops[want]),
				visible: !!(outline || shadow)});
		})()`))
		if err != nil {
			b.failed("focused element on "+page, err)
		}
		var f focus
		if err := json.Unmarshal([]byte(s), &f); err != nil {
			b.t.Fatal(err)
		}
		switch {
		case f.Same:
			continue
		case f.End:
			return step // past the last stop: the browser's own UI
		case !f.OK:
			b.t.Errorf("%s: Tab %d focused %s, want %s (document order)", page, presses+1, f.Tag, f.Want)
			return step
		case !f.Visible:
			b.t.Errorf("%s: Tab %d focused %s with no visible focus indicator", page, presses+1, f.Tag)
		}
		step++
	}
	return step
}

// TestAxeFindsViolations proves the check can fail: a nameless button and
// grey-on-white text planted on the sign-in page are reported as critical
// and serious.
func TestAxeFindsViolations(t *testing.T) {
	chromiumPath(t)
	w := newAccessWorld(t)
	b := newChrome(t, "https://"+w.a.Addr("https"), 60*time.Second)
	b.do("the sign-in page", chromedp.Navigate(b.base+"/"), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	if vs := b.axe("sign-in"); len(vs) != 0 {
		t.Fatalf("the sign-in page already fails: %v", vs)
	}
	b.eval(`(() => {
		const m = document.querySelector("main");
		const btn = document.createElement("button"); btn.id = "planted-button"; m.append(btn);
		const p = document.createElement("p"); p.id = "planted-text"; p.textContent = "hard to read"; p.style.color = "#bbb"; m.append(p);
		return 1;
	})()`)
	got := map[string]string{}
	for _, v := range b.axe("sign-in, planted") {
		got[v.ID+" "+strings.Join(v.Target, " ")] = v.Impact
	}
	want := map[string]string{"button-name #planted-button": "critical", "color-contrast #planted-text": "serious"}
	for k, impact := range want {
		if got[k] != impact {
			t.Errorf("axe-core found %v; want %s with impact %s", got, k, impact)
		}
	}
}

// TestConsoleAccessibility is issue 6 in a browser: axe-core's WCAG 2.1
// A and AA rules on every console page an admin reaches (with data in
// them: a person, a device, a session, an alert, a zone, a team, a token),
// on the sign-in steps, the error page and the locked board, and on the
// worker app at a phone's size; a serious or critical violation fails. On
// the board and the alert view, Tab walks the controls in document order
// with a visible focus indicator.
func TestConsoleAccessibility(t *testing.T) {
	chromiumPath(t)
	w, admin, secret := boardWorld(t)
	dev := registerWorker(t, w.a, "p1")
	startSession(t, admin, "p1", "flat 3")
	for _, c := range []struct{ what, path, body string }{
		{"zone", "/api/v1/orgs/acme/zones", `{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"name":"Office","rule":"must_stay_inside"},` +
			`"geometry":{"type":"Polygon","coordinates":[[[-0.13,51.5],[-0.12,51.5],[-0.12,51.51],[-0.13,51.5]]]}}]}`},
		{"team", "/api/v1/orgs/acme/teams", `{"name":"Night shift"}`},
		{"token", "/api/v1/orgs/acme/tokens", `{"name":"ci","permissions":["alerts.read"],"expires_in":"24h"}`},
	} {
		if r := admin.do("POST", c.path, c.body); r.status/100 != 2 {
			t.Fatalf("create %s: %d %s", c.what, r.status, r.body)
		}
	}
	var zoneID string
	if r := admin.do("GET", "/api/v1/orgs/acme/zones", ""); r.status == 200 {
		if fs, _ := r.json(t)["features"].([]any); len(fs) == 1 {
			zoneID, _ = fs[0].(map[string]any)["id"].(string)
		}
	}
	if zoneID == "" {
		t.Fatal("the zone is not listed")
	}
	cl := mqttConnect(t, w.a, dev)
	publishEvent(t, cl, dev.DeviceID, event.Message{V: 1, ID: "pos-a11y", TS: w.clk.Now(), Type: event.TypePosition,
		Position: &event.Position{Lat: 51.501, Lon: -0.141, AccuracyM: 10}})
	publishEvent(t, cl, dev.DeviceID, event.Message{V: 1, ID: "sos-a11y", TS: w.clk.Now(), Type: event.TypeButton,
		Button: &event.Button{Kind: event.ButtonSOS}, Position: &event.Position{Lat: 51.501, Lon: -0.141, AccuracyM: 10}})
	var alertID string
	eventually(t, "the SOS raised", func() bool {
		r := admin.do("GET", "/api/v1/alerts?org=acme", "")
		if al, _ := r.json(t)["alerts"].([]any); len(al) == 1 {
			alertID, _ = al[0].(map[string]any)["id"].(string)
		}
		return alertID != ""
	})
	w.clk.Advance(30 * time.Second)

	b := newChrome(t, "https://"+w.a.Addr("https"), 240*time.Second)
	var n a11yCount
	b.do("the sign-in page", chromedp.Navigate(b.base+"/"), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	b.checkA11y("sign-in", false, &n)
	b.do("a wrong password",
		chromedp.SendKeys(chromedp.CSS("#email"), "ada@example.org"),
		chromedp.SendKeys(chromedp.CSS("#password"), "not the password at all"),
		chromedp.Submit(chromedp.CSS("#login-form")),
		chromedp.WaitVisible(chromedp.CSS("#signin-error")))
	b.checkA11y("sign-in with an error", false, &n)
	b.do("the second factor",
		chromedp.SendKeys(chromedp.CSS("#password"), strongPassword),
		chromedp.Submit(chromedp.CSS("#login-form")),
		chromedp.WaitVisible(chromedp.CSS("#totp-form")))
	b.checkA11y("second factor", false, &n)
	b.do("signed in",
		chromedp.SendKeys(chromedp.CSS("#code"), mfa.TOTPCode(secret, w.clk.Now())),
		chromedp.Submit(chromedp.CSS("#totp-form")),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/console/acme"]`)))
	b.checkA11y("organisations", false, &n)

	tabbed := map[string]int{}
	for _, p := range []struct {
		name, path, ready string
		hasMap            bool
	}{
		{"alarm list", "/console/acme", "tr.state-raised", false},
		{"board", "/console/acme/board", "#board-queue tr.state-raised", true},
		{"wall", "/console/acme/wall", "#board-queue tr.state-raised", true},
		{"alert view", "/console/acme/alerts/" + alertID, "#alert-map", true},
		{"zones", "/console/acme/zones", "#zone-form", true},
		{"zone being edited", "/console/acme/zones?edit=" + zoneID, "#zone-form", true},
		{"people", "/console/acme/people", "main", false},
		{"person", "/console/acme/people/p1", "main", false},
		{"devices", "/console/acme/devices", "main", false},
		{"new device", "/console/acme/devices/new", "main", false},
		{"teams", "/console/acme/teams", "main", false},
		{"users", "/console/acme/users", "main", false},
		{"settings", "/console/acme/settings", "main", false},
		{"tokens", "/console/acme/tokens", "main", false},
		{"policies", "/console/acme/policies", "main", false},
		{"presets", "/console/acme/presets", "main", false},
		{"reports", "/console/acme/reports", "main", false},
		{"audit", "/console/acme/audit", "main", false},
		{"account", "/console/account", "main", false},
		{"error page", "/console/acme/no-such-page", "main", false},
	} {
		viewport := chromedp.EmulateViewport(1366, 768)
		if p.name == "wall" {
			viewport = chromedp.EmulateViewport(1920, 1080)
		}
		b.do("open "+p.name, viewport, chromedp.Navigate(b.base+p.path), chromedp.WaitVisible(chromedp.CSS(p.ready)))
		b.poll(p.name+" loaded", `document.readyState === "complete"`, 10*time.Second)
		b.checkA11y(p.name, p.hasMap, &n)
		switch p.name {
		case "board", "alert view", "zones", "person", "users":
			tabbed[p.name] = b.tabOrder(p.name, 200)
		}
		if p.name == "board" {
			// A marker is a keyboard stop: Enter opens its alarm.
			b.eval(`(document.querySelector("#board-map path.dot-alarm").focus(), 1)`)
			b.do("Enter on the alarm's marker", chromedp.KeyEvent("\r"), chromedp.WaitVisible(chromedp.CSS("#alert-map")))
			if got := b.eval(`location.pathname === "/console/acme/alerts/` + alertID + `" ? 1 : 0`); got != 1 {
				t.Error("Enter on the alarm's marker did not open the alarm")
			}
		}
	}
	for _, page := range []string{"board", "alert view", "zones", "person", "users"} {
		if tabbed[page] < 15 {
			t.Errorf("%s: %d tab stops checked, want 15", page, tabbed[page])
		}
	}

	// The board locked: the session idled out (security requirement 24).
	b.do("the board again", chromedp.Navigate(b.base+"/console/acme/board"), chromedp.WaitVisible(chromedp.CSS("#board-map")))
	b.poll("feed live", `document.getElementById("feed-status").textContent === "live"`, 20*time.Second)
	w.clk.Advance(16 * time.Minute)
	b.poll("the lock screen", `document.body.classList.contains("locked") && /^[0-9]+ open alarms?$/.test(document.getElementById("lock-count").textContent)`, 30*time.Second)
	b.checkA11y("locked board", true, &n)

	// The worker app at a phone's size: signed out, at the second
	// factor, paired.
	_, wsecret := newWorkerAppUser(t, w, "acme", "p-wyn", "Wyn", "wyn@example.org")
	w.clk.Advance(30 * time.Second)
	b.do("the worker app", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateTouch),
		chromedp.Navigate(b.base+"/app/"), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	b.checkA11y("worker app: signed out", false, &n)
	b.do("worker app: password",
		chromedp.SendKeys(chromedp.CSS("#email"), "wyn@example.org"),
		chromedp.SendKeys(chromedp.CSS("#password"), strongPassword),
		chromedp.Click(chromedp.CSS("#login-btn")),
		chromedp.WaitVisible(chromedp.CSS("#totp-form")))
	b.checkA11y("worker app: second factor", false, &n)
	b.do("worker app: code",
		chromedp.SendKeys(chromedp.CSS("#code"), mfa.TOTPCode(wsecret, w.clk.Now())),
		chromedp.Click(chromedp.CSS("#totp-btn")),
		chromedp.WaitVisible(chromedp.CSS("#pair-form")))
	b.checkA11y("worker app: pairing", false, &n)
	b.do("worker app: pair", chromedp.Click(chromedp.CSS("#pair-btn")), chromedp.WaitVisible(chromedp.CSS("#session-form")))
	b.checkA11y("worker app: signed in", false, &n)
	if tabbed["worker app"] = b.tabOrder("worker app", 200); tabbed["worker app"] < 5 {
		t.Errorf("worker app: %d tab stops checked, want 5", tabbed["worker app"])
	}

	// A new supervisor's first sign-in: choosing and setting up a second
	// factor (a wrong code first), then the recovery codes. Own browser:
	// the first one is signed in to the worker app.
	h, err := password.Hash(strongPassword, password.DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	st := w.a.Store()
	ctx := context.Background()
	if err := st.CreateUser(ctx, store.User{ID: "u-sue", Email: "sue@example.org", Name: "Sue", PasswordHash: h, CreatedAt: w.clk.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutMembership(ctx, store.Membership{UserID: "u-sue", OrgID: "acme", Role: store.RoleSupervisor, CreatedAt: w.clk.Now()}); err != nil {
		t.Fatal(err)
	}
	b2 := newChrome(t, b.base, 60*time.Second)
	b2.do("a new user signs in", chromedp.Navigate(b2.base+"/"), chromedp.WaitVisible(chromedp.CSS("#login-form")),
		chromedp.SendKeys(chromedp.CSS("#email"), "sue@example.org"),
		chromedp.SendKeys(chromedp.CSS("#password"), strongPassword),
		chromedp.Submit(chromedp.CSS("#login-form")),
		chromedp.WaitVisible(chromedp.CSS("#enrol-totp-start")))
	b2.checkA11y("choose a second factor", false, &n)
	b2.do("set up an app", chromedp.Submit(chromedp.CSS("#enrol-totp-start")), chromedp.WaitVisible(chromedp.CSS("#enrol-totp-form")))
	b2.checkA11y("set up an authenticator app", false, &n)
	key := b2.text("#totp-secret")
	// A code that is certainly wrong: not the current one.
	wrong := "000000"
	if mfa.TOTPCode(decodeBase32(t, key), w.clk.Now()) == wrong {
		wrong = "111111"
	}
	b2.do("a wrong code", chromedp.SendKeys(chromedp.CSS("#enrol-code"), wrong), chromedp.Submit(chromedp.CSS("#enrol-totp-form")),
		chromedp.WaitVisible(chromedp.CSS("#enrol-code-error")))
	b2.checkA11y("authenticator app, wrong code", false, &n)
	b2.do("the right code", chromedp.SendKeys(chromedp.CSS("#enrol-code"), mfa.TOTPCode(decodeBase32(t, b2.text("#totp-secret")), w.clk.Now())),
		chromedp.Submit(chromedp.CSS("#enrol-totp-form")), chromedp.WaitVisible(chromedp.CSS("#recovery-codes")))
	b2.checkA11y("recovery codes", false, &n)

	_, version := axeSource(t)
	t.Logf("axe-core %s, WCAG 2.1 A and AA, %d pages: %d serious or critical, %d minor, colour contrast of %d elements to review; tab stops in order with a focus ring: %v",
		version, n.pages, n.serious, n.minor, n.incomplete, tabbed)
}
