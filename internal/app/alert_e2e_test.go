package app_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"vigil/internal/event"
)

// TestAlertViewInBrowser: a worker's device reports positions during a
// session, then an SOS over MQTT; a supervisor opens the alert from the
// alarm list in real Chromium, sees its accuracy circle and trail on the
// map, acknowledges it, adds a hostile note (shown as text, nothing runs)
// and resolves it as a false alarm; the API has the outcome, and the page
// logged no error or CSP violation.
func TestAlertViewInBrowser(t *testing.T) {
	w := newAccessWorld(t)
	admin, secret, _ := w.enrolledAdmin(t)
	if r := admin.do("POST", "/api/v1/orgs", `{"id":"acme","name":"Acme Care"}`); r.status != 201 {
		t.Fatalf("create org: %d %s", r.status, r.body)
	}
	dev := registerWorker(t, w.a, "p1")
	if r := admin.do("POST", "/api/v1/sessions?org=acme", `{"person_id":"p1","duration":"1h","note":"flat 3, `+strings.ReplaceAll(avSVG, `"`, `\"`)+`"}`); r.status != 201 {
		t.Fatalf("start session: %d %s", r.status, r.body)
	}

	// Positions along a street, then the SOS.
	cl := mqttConnect(t, w.a, dev)
	for i, p := range [][2]float64{{51.5000, -0.1200}, {51.5004, -0.1195}, {51.5008, -0.1190}, {51.5011, -0.1183}} {
		w.clk.Advance(20 * time.Second)
		publishEvent(t, cl, dev.DeviceID, event.Message{V: 1, ID: "pos-" + string(rune('a'+i)), TS: w.clk.Now(), Type: event.TypePosition,
			Position: &event.Position{Lat: p[0], Lon: p[1], AccuracyM: 30}})
	}
	signal := -87
	publishEvent(t, cl, dev.DeviceID, event.Message{V: 1, ID: "hb", TS: w.clk.Now(), Type: event.TypeHeartbeat,
		Heartbeat: &event.Heartbeat{SignalDBm: &signal}})
	publishEvent(t, cl, dev.DeviceID, event.Message{V: 1, ID: "bat", TS: w.clk.Now(), Type: event.TypeBattery,
		Battery: &event.Battery{Percent: 71}})
	eventually(t, "the positions and device state stored", func() bool {
		ps, err := w.a.Store().Positions(context.Background(), dev.DeviceID, time.Time{}, time.Time{})
		ok, _ := w.a.Store().HasEvent(context.Background(), dev.DeviceID, "bat")
		return err == nil && len(ps) == 4 && ok
	})
	publishEvent(t, cl, dev.DeviceID, event.Message{V: 1, ID: "sos-view", TS: w.clk.Now(), Type: event.TypeButton,
		Button: &event.Button{Kind: event.ButtonSOS}})
	// One TOTP step per sign-in.
	w.clk.Advance(30 * time.Second)

	b := newChrome(t, "https://"+w.a.Addr("https"), 90*time.Second)
	b.signIn("ada@example.org", strongPassword, secret, w.clk.Now())
	b.do("open the alarm list", chromedp.Navigate(b.base+"/console/acme"), chromedp.WaitVisible(chromedp.CSS("tr.state-raised a.open")))
	b.eval(`(document.querySelector("tr.state-raised a.open").click(), 1)`)
	b.do("the alert view", chromedp.WaitVisible(chromedp.CSS("#alert-map")), chromedp.WaitVisible(chromedp.CSS("#alert-state.st-raised")))
	b.poll("accuracy circle and trail drawn",
		`document.querySelector("#alert-map path.acc") !== null && document.querySelector("#alert-map path.trail") !== null`, 20*time.Second)
	if kind, state, person := b.text("#alert-kind"), b.text("#alert-state"), b.text("#person-name"); kind != "sos" || state != "raised" || !strings.HasPrefix(person, "Ann") {
		t.Errorf("view: kind %q state %q person %q", kind, state, person)
	}
	if bat, sig := b.text("#battery"), b.text("#signal"); bat != "71 %" || !strings.HasPrefix(sig, "-87 dBm") {
		t.Errorf("device: battery %q signal %q", bat, sig)
	}
	if note := b.text("#alert-note"); note != "flat 3, "+avSVG {
		t.Errorf("amber note %q", note)
	}

	b.do("acknowledge", chromedp.Click(chromedp.CSS("#ack-submit")), chromedp.WaitVisible(chromedp.CSS("#alert-state.st-acknowledged")))
	b.do("add a note",
		chromedp.WaitVisible(chromedp.CSS("#note-text")),
		chromedp.SendKeys(chromedp.CSS("#note-text"), "on my way "+avImg),
		chromedp.Click(chromedp.CSS("#note-submit")),
		chromedp.WaitVisible(chromedp.CSS("#timeline li.tl-note")),
	)
	if got := b.text("#timeline li.tl-note .detail"); got != "on my way "+avImg {
		t.Errorf("note shown as %q", got)
	}
	if n := b.eval(`document.querySelectorAll('img[src="x"], svg[onload], img[onerror]').length`); n != 0 {
		t.Errorf("hostile markup became %d elements", n)
	}
	b.poll("the map again after the reload", `document.querySelector("#alert-map path.trail") !== null`, 20*time.Second)
	b.screenshot("alert")

	b.do("resolve",
		chromedp.SetValue(chromedp.CSS("#outcome"), "false_alarm"),
		chromedp.Click(chromedp.CSS("#resolve-submit")),
		chromedp.WaitVisible(chromedp.CSS("#alert-state.st-resolved")),
	)
	if got := b.text("#alert-outcome"); got != "false_alarm" {
		t.Errorf("outcome shown %q", got)
	}

	r := admin.do("GET", "/api/v1/alerts?org=acme", "")
	alerts, _ := r.json(t)["alerts"].([]any)
	if len(alerts) != 1 {
		t.Fatalf("alerts: %s", r.body)
	}
	id, _ := alerts[0].(map[string]any)["id"].(string)
	r = admin.do("GET", "/api/v1/alerts/"+id, "")
	al := r.json(t)
	if al["state"] != "resolved" || al["outcome"] != "false_alarm" {
		t.Errorf("alert %v", al)
	}
	noted := false
	tl, _ := al["timeline"].([]any)
	for _, e := range tl {
		if m, _ := e.(map[string]any); m["action"] == "note" && m["detail"] == "on my way "+avImg {
			noted = true
		}
	}
	if !noted {
		t.Errorf("the note is not in the timeline: %v", al["timeline"])
	}

	// Live: another worker's SOS, acknowledged by someone else through the
	// API, changes the open view without a reload.
	dev2 := registerWorker(t, w.a, "p2")
	cl2 := mqttConnect(t, w.a, dev2)
	publishEvent(t, cl2, dev2.DeviceID, event.Message{V: 1, ID: "sos-live", TS: w.clk.Now(), Type: event.TypeButton,
		Button: &event.Button{Kind: event.ButtonSOS}})
	var id2 string
	eventually(t, "the second alert", func() bool {
		r := admin.do("GET", "/api/v1/alerts?org=acme&state=raised", "")
		list, _ := r.json(t)["alerts"].([]any)
		if len(list) == 1 {
			id2, _ = list[0].(map[string]any)["id"].(string)
		}
		return id2 != ""
	})
	b.do("open the second alert", chromedp.Navigate(b.base+"/console/acme/alerts/"+id2), chromedp.WaitVisible(chromedp.CSS("#alert-state.st-raised")))
	b.poll("feed connected", `document.getElementById("feed-status").textContent === "live"`, 20*time.Second)
	b.eval(`window.vigilNoReload = 42`)
	if r := admin.do("POST", "/api/v1/alerts/"+id2+"/acknowledge", `{"note":"taken by phone"}`); r.status != 200 {
		t.Fatalf("acknowledge through the API: %d %s", r.status, r.body)
	}
	b.do("the view follows the feed", chromedp.WaitVisible(chromedp.CSS("#alert-state.st-acknowledged")))
	b.poll("the timeline follows the feed", `document.querySelector("#timeline li.tl-acknowledged") !== null`, 20*time.Second)
	if mark := b.eval(`window.vigilNoReload`); mark != 42 {
		t.Errorf("the page reloaded (mark %d)", mark)
	}
	b.noProblems()
}
