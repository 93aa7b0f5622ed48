package app_test

import (
	"context"
	"math"
	"net/url"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"vigil/internal/alert"
	"vigil/internal/auth/mfa"
	"vigil/internal/event"
	"vigil/internal/store"
)

// TestWorkerAppInBrowser drives the worker app (/app/) in headless
// Chromium at a phone's size with emulated geolocation: a worker signs in
// with password and TOTP, pairs the phone, starts a session from the
// organisation's preset (hostile text in the organisation's name and the
// note runs nothing), the position reaches the server, an "I'm OK" pressed
// offline arrives with its original time once online, a missed check-in
// (virtual time) raises an alert, a 3-second hold of SOS raises an SOS
// (an early release does not), and the acknowledgement shows as "help is
// being arranged".
func TestWorkerAppInBrowser(t *testing.T) {
	chromiumPath(t)
	w := newAccessWorld(t)
	// The browser stamps events with the real time; the server's manual
	// clock starts there so that they are not from its future.
	if d := time.Until(w.clk.Now()); d < 0 {
		w.clk.Advance(-d)
	}
	admin, _, _ := w.enrolledAdmin(t)
	const hostileOrg = `Acme <img src=x onerror=alert(1)>`
	if r := admin.do("POST", "/api/v1/orgs", `{"id":"acme","name":"`+strings.ReplaceAll(hostileOrg, `"`, `\"`)+`"}`); r.status != 201 {
		t.Fatalf("create org: %d %s", r.status, r.body)
	}
	if r := admin.do("PUT", "/api/v1/orgs/acme/session-presets/visit", `{"duration":"2h","checkin_interval":"5m","grace":"1m"}`); r.status/100 != 2 {
		t.Fatalf("preset: %d %s", r.status, r.body)
	}
	_, secret := newWorkerAppUser(t, w, "acme", "p-wyn", "Wyn", "wyn@example.org")
	w.clk.Advance(30 * time.Second) // the enrolment used this step's code

	base := "https://" + w.a.Addr("https")
	b := newChrome(t, base, 120*time.Second, chromedp.WindowSize(390, 844))
	lat, lon, acc := 53.80075, -1.54912, 12.0
	if _, err := chromedp.CallBrowser(b.ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
		Permission: &cdpbrowser.PermissionDescriptor{Name: "geolocation"}, Setting: cdpbrowser.PermissionSettingGranted, Origin: base}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(b.ctx, emulation.SetGeolocationOverride, emulation.SetGeolocationOverrideParams{
		Latitude: &lat, Longitude: &lon, Accuracy: &acc}); err != nil {
		t.Fatal(err)
	}
	b.do("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateTouch))

	b.do("open the app", chromedp.Navigate(base+"/app/"))
	b.do("sign in",
		chromedp.WaitVisible(chromedp.CSS("#login-form")),
		chromedp.SendKeys(chromedp.CSS("#email"), "wyn@example.org"),
		chromedp.SendKeys(chromedp.CSS("#password"), strongPassword),
		chromedp.Click(chromedp.CSS("#login-btn")),
		chromedp.WaitVisible(chromedp.CSS("#totp-form")),
		chromedp.SendKeys(chromedp.CSS("#code"), mfa.TOTPCode(secret, w.clk.Now())),
		chromedp.Click(chromedp.CSS("#totp-btn")),
		chromedp.WaitVisible(chromedp.CSS("#pair-form")),
	)
	if got := b.text("#pair-org option"); got != hostileOrg {
		t.Errorf("organisation offered %q", got)
	}
	b.do("pair", chromedp.Click(chromedp.CSS("#pair-btn")), chromedp.WaitVisible(chromedp.CSS("#session-form")))
	ctx := context.Background()
	st := w.a.Store()
	devs, err := st.ListDevices(ctx, "acme")
	if err != nil || len(devs) != 1 || devs[0].PersonID != "p-wyn" {
		t.Fatalf("paired devices %+v %v", devs, err)
	}
	dev := devs[0].ID
	if b.eval(`location.hash === "" ? 1 : 0`) != 1 {
		t.Error("the address bar keeps a fragment")
	}

	// A session from the organisation's preset, with a hostile note.
	const hostileNote = `"><svg onload=alert(1)>`
	if got := b.text("#preset option"); !strings.HasPrefix(got, "visit") || !strings.Contains(got, "5 min") {
		t.Errorf("preset offered %q", got)
	}
	if b.text("#geo-banner") != "" || b.eval(`document.getElementById("geo-banner").hidden ? 1 : 0`) != 1 {
		t.Error("location shared before any session")
	}
	b.do("start a session",
		chromedp.SendKeys(chromedp.CSS("#note"), hostileNote),
		chromedp.Click(chromedp.CSS("#start-btn")),
		chromedp.WaitVisible(chromedp.CSS("#checkin-btn")),
	)
	if got := b.text("#geo-banner"); got != "Sharing your location with "+hostileOrg+" while your session is active." {
		t.Errorf("banner %q", got)
	}
	if got := b.text("#session-info"); !strings.Contains(got, hostileNote) {
		t.Errorf("session info %q", got)
	}
	if n := b.eval(`document.querySelectorAll('img[src="x"], svg').length`); n != 0 {
		t.Errorf("hostile text became %d elements", n)
	}
	sessions, err := st.ListSessions(ctx, store.SessionFilter{OrgID: "acme", PersonID: "p-wyn", ActiveOnly: true})
	if err != nil || len(sessions) != 1 || sessions[0].CheckinInterval != 5*time.Minute || sessions[0].Note != hostileNote {
		t.Fatalf("sessions %+v %v", sessions, err)
	}

	// The phone's position reaches the server.
	eventually(t, "the position", func() bool {
		d, err := st.GetDevice(ctx, dev)
		return err == nil && d.State.LastPosition != nil
	})
	d, _ := st.GetDevice(ctx, dev)
	if p := d.State.LastPosition; math.Abs(p.Lat-lat) > 1e-6 || math.Abs(p.Lon-lon) > 1e-6 {
		t.Errorf("position %+v", p)
	}

	// Offline: "I'm OK" waits in the queue, survives a reload (the
	// service worker serves the app), and arrives with its time.
	b.poll("service worker in control", `navigator.serviceWorker.controller !== null`, 20*time.Second)
	workerAppOffline(t, b, true)
	b.poll("offline shown", `document.getElementById("net-status").textContent === "offline"`, 10*time.Second)
	pressed := time.Now().Truncate(time.Millisecond)
	b.do("I'm OK offline", chromedp.Click(chromedp.CSS("#checkin-btn")))
	b.poll("queued", `document.getElementById("queue-status").textContent.includes("waiting to send")`, 10*time.Second)
	if workerAppCheckin(t, st, dev) != nil {
		t.Fatal("the check-in arrived while offline")
	}
	b.do("reload offline", chromedp.Reload())
	b.poll("offline start", `!document.getElementById("main").hidden && !document.getElementById("checkin-btn").closest("[hidden]")`, 20*time.Second)
	b.poll("the queue kept", `/^[1-9][0-9]* waiting to send$/.test(document.getElementById("queue-status").textContent)`, 10*time.Second)
	if workerAppCheckin(t, st, dev) != nil {
		t.Fatal("the check-in arrived while offline")
	}
	online := time.Now()
	workerAppOffline(t, b, false)
	b.poll("queue sent", `document.getElementById("queue-status").textContent === "nothing waiting"`, 20*time.Second)
	var got *store.StoredEvent
	eventually(t, "the check-in", func() bool { got = workerAppCheckin(t, st, dev); return got != nil })
	if got.DeviceTime.Before(pressed) || !got.DeviceTime.Before(online) {
		t.Errorf("check-in stamped %v, pressed at %v, sent after %v", got.DeviceTime, pressed, online)
	}

	// Virtual time: past the next check-in and its grace.
	w.clk.Advance(10 * time.Minute)
	eventually(t, "missed_checkin alert", func() bool { return len(workerAppAlerts(t, admin, "missed_checkin")) > 0 })
	// The supervisor's console lists it.
	if r := admin.do("GET", "/console/acme", ""); r.status != 200 || !strings.Contains(string(r.body), `<td class="kind">missed_checkin`) {
		t.Errorf("console alarm list: %d, missed_checkin not shown:\n%s", r.status, r.body)
	}

	// SOS: an early release sends nothing; a 3-second hold does.
	b.eval(`(document.getElementById("sos-btn").focus(), 1)`)
	workerAppKey(t, b, input.DispatchKeyEventTypeKeyDown)
	workerAppKey(t, b, input.DispatchKeyEventTypeKeyUp)
	if b.eval(`document.getElementById("alarm-state").hidden ? 1 : 0`) != 1 {
		t.Error("a short press raised the alarm")
	}
	workerAppKey(t, b, input.DispatchKeyEventTypeKeyDown)
	b.poll("alarm sent", `!document.getElementById("alarm-state").hidden`, 10*time.Second)
	workerAppKey(t, b, input.DispatchKeyEventTypeKeyUp)
	if got := b.text("#alarm-text"); !strings.HasPrefix(got, "Alarm sent") {
		t.Errorf("alarm text %q", got)
	}
	var sos []map[string]any
	eventually(t, "sos alert", func() bool { sos = workerAppAlerts(t, admin, "sos"); return len(sos) > 0 })
	if len(sos) != 1 {
		t.Errorf("%d sos alerts, want 1", len(sos))
	}
	if r := admin.do("POST", "/api/v1/alerts/"+sos[0]["id"].(string)+"/acknowledge", `{}`); r.status != 200 {
		t.Fatalf("acknowledge: %d %s", r.status, r.body)
	}
	b.poll("help is being arranged", `document.getElementById("alarm-text").textContent === "Help is being arranged."`, 20*time.Second)
	if n := b.eval(`document.querySelectorAll('img[src="x"], svg').length`); n != 0 {
		t.Errorf("hostile text became %d elements", n)
	}
	b.screenshot("worker-app")
	b.noProblems()
}

// workerAppOffline turns the page's network off or on (requests fail, and
// navigator.onLine says so).
func workerAppOffline(t *testing.T, b *chrome, off bool) {
	t.Helper()
	if _, err := chromedp.Call(b.ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	conds := []*network.Conditions{}
	if off {
		conds = append(conds, &network.Conditions{Offline: true, DownloadThroughput: -1, UploadThroughput: -1})
	}
	if _, err := chromedp.Call(b.ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
		EmulateOfflineServiceWorker: &off, MatchedNetworkConditions: conds}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(b.ctx, network.OverrideNetworkState, network.OverrideNetworkStateParams{
		Offline: off, DownloadThroughput: -1, UploadThroughput: -1}); err != nil {
		t.Fatal(err)
	}
}

// workerAppKey presses or releases Space on the focused element.
func workerAppKey(t *testing.T, b *chrome, typ input.DispatchKeyEventType) {
	t.Helper()
	if _, err := chromedp.Call(b.ctx, input.DispatchKeyEvent, input.DispatchKeyEventParams{Type: typ, Key: " ", Code: "Space",
		WindowsVirtualKeyCode: 32, NativeVirtualKeyCode: 32}); err != nil {
		t.Fatal(err)
	}
}

// workerAppCheckin returns the device's check-in button event (nil: none yet).
func workerAppCheckin(t *testing.T, st store.Store, dev string) *store.StoredEvent {
	t.Helper()
	evs, err := st.ListEvents(context.Background(), store.EventFilter{DeviceID: dev})
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range evs {
		if e.Type == event.TypeButton && e.Button != nil && e.Button.Kind == event.ButtonCheckIn {
			return &evs[i]
		}
	}
	return nil
}

// workerAppAlerts lists acme's alerts of kind for the worker p-wyn.
func workerAppAlerts(t *testing.T, admin *browser, kind string) []map[string]any {
	t.Helper()
	r := admin.do("GET", "/api/v1/alerts?org=acme&person=p-wyn&kind="+kind, "")
	if r.status != 200 {
		t.Fatalf("alerts: %d %s", r.status, r.body)
	}
	var out []map[string]any
	for _, a := range r.json(t)["alerts"].([]any) {
		out = append(out, a.(map[string]any))
	}
	return out
}

// TestWorkerAppPairingLink: the console's pairing QR code is a link
// /app/#device=...&secret=...; the app takes the credentials, clears the
// fragment from the address bar at once, and after sign-in uses that
// device: the session's position arrives as that device's.
func TestWorkerAppPairingLink(t *testing.T) {
	chromiumPath(t)
	w := newAccessWorld(t)
	if d := time.Until(w.clk.Now()); d < 0 {
		w.clk.Advance(-d)
	}
	admin, _, _ := w.enrolledAdmin(t)
	if r := admin.do("POST", "/api/v1/orgs", `{"id":"acme","name":"Acme Care"}`); r.status != 201 {
		t.Fatalf("create org: %d %s", r.status, r.body)
	}
	_, secret := newWorkerAppUser(t, w, "acme", "p-wyn", "Wyn", "wyn@example.org")
	w.clk.Advance(30 * time.Second)
	ctx := context.Background()
	creds, err := w.a.Devices().Register(ctx, "acme", "pendant phone")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.a.Store().AssignDevice(ctx, creds.DeviceID, "p-wyn"); err != nil {
		t.Fatal(err)
	}

	base := "https://" + w.a.Addr("https")
	b := newChrome(t, base, 90*time.Second, chromedp.WindowSize(390, 844))
	lat, lon, acc := 51.5, -0.12, 20.0
	if _, err := chromedp.CallBrowser(b.ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
		Permission: &cdpbrowser.PermissionDescriptor{Name: "geolocation"}, Setting: cdpbrowser.PermissionSettingGranted, Origin: base}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(b.ctx, emulation.SetGeolocationOverride, emulation.SetGeolocationOverrideParams{
		Latitude: &lat, Longitude: &lon, Accuracy: &acc}); err != nil {
		t.Fatal(err)
	}
	link := base + "/app/#device=" + url.QueryEscape(creds.DeviceID) + "&secret=" + url.QueryEscape(creds.Secret)
	b.do("open the pairing link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	if b.eval(`location.hash === "" && !location.href.includes("secret") && history.length >= 1 ? 1 : 0`) != 1 {
		t.Error("the secret stays in the address bar")
	}
	b.do("sign in",
		chromedp.SendKeys(chromedp.CSS("#email"), "wyn@example.org"),
		chromedp.SendKeys(chromedp.CSS("#password"), strongPassword),
		chromedp.Click(chromedp.CSS("#login-btn")),
		chromedp.WaitVisible(chromedp.CSS("#totp-form")),
		chromedp.SendKeys(chromedp.CSS("#code"), mfa.TOTPCode(secret, w.clk.Now())),
		chromedp.Click(chromedp.CSS("#totp-btn")),
		// Paired already: straight to the main screen.
		chromedp.WaitVisible(chromedp.CSS("#session-form")),
		chromedp.Click(chromedp.CSS("#start-btn")),
		chromedp.WaitVisible(chromedp.CSS("#checkin-btn")),
	)
	eventually(t, "the position", func() bool {
		d, err := w.a.Store().GetDevice(ctx, creds.DeviceID)
		return err == nil && d.State.LastPosition != nil
	})
	// The browser's battery level, where it tells one.
	if b.eval(`navigator.getBattery ? 1 : 0`) == 1 {
		eventually(t, "the battery level", func() bool {
			d, err := w.a.Store().GetDevice(ctx, creds.DeviceID)
			return err == nil && d.State.Battery != nil
		})
	}
	if devs, _ := w.a.Store().ListDevices(ctx, "acme"); len(devs) != 1 {
		t.Errorf("%d devices, want the linked one only", len(devs))
	}

	// A pre-alert the server started (here a man-down, stored as the
	// engine stores one): the phone asks "are you OK?" and the PIN
	// cancels it before it is raised.
	now := w.clk.Now()
	pre := store.Alert{ID: "al-pre", OrgID: "acme", PersonID: "p-wyn", DeviceID: creds.DeviceID, Kind: "man_down", Severity: "critical",
		State: store.AlertPending, DedupKey: "man_down:pre", RaisedAt: now, CauseTime: now, PendingUntil: now.Add(30 * time.Second)}
	if _, _, err := w.a.Store().RaiseAlert(ctx, pre, store.AlertEntry{At: now, Actor: "engine", Action: "pending", Cause: "pre"}); err != nil {
		t.Fatal(err)
	}
	b.poll("pre-alert shown", `!document.getElementById("alarm-state").hidden && document.getElementById("alarm-text").textContent.startsWith("Are you OK? A man-down alarm")`, 30*time.Second)
	b.do("cancel the pre-alert",
		chromedp.SendKeys(chromedp.CSS("#pin"), "1234"),
		chromedp.Click(chromedp.CSS("#cancel-btn")),
		chromedp.WaitVisible(chromedp.CSS("#cancel-result")),
	)
	eventually(t, "pre-alert cancelled", func() bool {
		al, err := w.a.Store().GetAlert(ctx, "al-pre")
		return err == nil && al.State == store.AlertCancelled
	})
	b.poll("panel closed", `document.getElementById("alarm-state").hidden`, 10*time.Second)

	// Another pre-alert (a fall), answered with "I need help": the
	// server raises it at once, the wearer on its timeline.
	now = w.clk.Now()
	pre2 := store.Alert{ID: "al-pre2", OrgID: "acme", PersonID: "p-wyn", DeviceID: creds.DeviceID, Kind: "fall", Severity: "critical",
		State: store.AlertPending, DedupKey: "fall:pre2", RaisedAt: now, CauseTime: now, PendingUntil: now.Add(30 * time.Second)}
	if _, _, err := w.a.Store().RaiseAlert(ctx, pre2, store.AlertEntry{At: now, Actor: "engine", Action: "pending", Cause: "pre2"}); err != nil {
		t.Fatal(err)
	}
	b.poll("fall pre-alert shown", `!document.getElementById("help-btn").hidden && document.getElementById("alarm-text").textContent.startsWith("Are you OK? A fall alarm")`, 30*time.Second)
	b.do("ask for help", chromedp.Click(chromedp.CSS("#help-btn")))
	eventually(t, "pre-alert raised on request", func() bool {
		al, err := w.a.Store().GetAlert(ctx, "al-pre2")
		if err != nil || al.State != store.AlertRaised || len(al.Timeline) == 0 {
			return false
		}
		last := al.Timeline[len(al.Timeline)-1]
		return last.Actor == "device:"+creds.DeviceID && last.Detail == "the wearer asked for help"
	})
	b.poll("help asked shown", `document.getElementById("help-btn").hidden && document.getElementById("alarm-text").textContent.startsWith("Alarm sent")`, 10*time.Second)
	if _, err := alert.NewService(w.a.Store(), w.clk).Resolve(ctx, "al-pre2", "user:test", "assisted", ""); err != nil {
		t.Fatal(err)
	}
	b.poll("help panel closed", `document.getElementById("alarm-state").hidden`, 30*time.Second)

	// SOS, then the duress PIN: the phone shows "Cancelled." exactly as
	// for a cancel, while the alert stays open, marked duress.
	if err := w.a.Store().SetDuressCode(ctx, "p-wyn", store.DuressHash("p-wyn", "9911")); err != nil {
		t.Fatal(err)
	}
	b.eval(`(document.getElementById("sos-btn").focus(), 1)`)
	workerAppKey(t, b, input.DispatchKeyEventTypeKeyDown)
	b.poll("alarm sent", `!document.getElementById("alarm-state").hidden`, 10*time.Second)
	workerAppKey(t, b, input.DispatchKeyEventTypeKeyUp)
	var sos []map[string]any
	eventually(t, "sos alert", func() bool { sos = workerAppAlerts(t, admin, "sos"); return len(sos) > 0 })
	b.do("cancel with the duress PIN",
		chromedp.SendKeys(chromedp.CSS("#pin"), "9911"),
		chromedp.Click(chromedp.CSS("#cancel-btn")),
		chromedp.WaitVisible(chromedp.CSS("#cancel-result")),
	)
	if got, hidden := b.text("#cancel-result"), b.eval(`document.getElementById("alarm-state").hidden ? 1 : 0`); got != "Cancelled." || hidden != 1 {
		t.Errorf("after the duress PIN: %q, alarm panel hidden %d", got, hidden)
	}
	eventually(t, "duress marked", func() bool {
		r := admin.do("GET", "/api/v1/alerts/"+sos[0]["id"].(string), "")
		m := r.json(t)
		return m["duress"] == true
	})
	r := admin.do("GET", "/api/v1/alerts/"+sos[0]["id"].(string), "")
	if m := r.json(t); m["state"] == "cancelled" || m["state"] == "resolved" {
		t.Errorf("duress alert closed: %s", r.body)
	}

	// Extend, then end: location sharing stops with the session.
	active, err := w.a.Store().ListSessions(ctx, store.SessionFilter{OrgID: "acme", PersonID: "p-wyn", ActiveOnly: true})
	if err != nil || len(active) != 1 {
		t.Fatalf("sessions %+v %v", active, err)
	}
	end := active[0].ExpectedEnd
	b.do("extend", chromedp.Click(chromedp.CSS("#extend-btn")))
	b.poll("extended", `document.getElementById("log").textContent.includes("Session extended")`, 10*time.Second)
	s, err := w.a.Store().GetSession(ctx, active[0].ID)
	if err != nil || !s.ExpectedEnd.Equal(end.Add(30*time.Minute)) {
		t.Errorf("extended to %v (was %v): %v", s.ExpectedEnd, end, err)
	}
	if b.text("#geo-banner") == "" {
		t.Error("no location banner during the session")
	}
	b.do("end", chromedp.Click(chromedp.CSS("#end-btn")), chromedp.WaitVisible(chromedp.CSS("#session-form")))
	if b.eval(`document.getElementById("geo-banner").hidden ? 1 : 0`) != 1 {
		t.Error("the location banner stays after the session ended")
	}
	if s, _ := w.a.Store().GetSession(ctx, active[0].ID); s.State != store.SessionEnded {
		t.Errorf("session state %q", s.State)
	}

	// The silent alarm: a double tap raises a duress alert; the screen
	// says only that the location is shared.
	b.do("silent alarm", chromedp.Click(chromedp.CSS("#silent-btn")), chromedp.Click(chromedp.CSS("#silent-btn")))
	eventually(t, "duress alert", func() bool { return len(workerAppAlerts(t, admin, "duress")) > 0 })
	if b.eval(`document.getElementById("alarm-state").hidden ? 1 : 0`) != 1 || strings.Contains(b.text("body"), "duress") {
		t.Error("the silent alarm shows on screen")
	}
	if got := b.text("#geo-banner"); got != "Sharing your location with Acme Care." {
		t.Errorf("banner during the silent alarm %q", got)
	}

	// Signing out keeps the phone paired: the SOS control stays.
	b.do("sign out", chromedp.Click(chromedp.CSS("#signout-btn")), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	if b.eval(`document.getElementById("sos-btn").offsetParent !== null && document.getElementById("session-form").offsetParent === null ? 1 : 0`) != 1 {
		t.Error("after sign-out: want the SOS control and no session form")
	}
	b.noProblems()
}
