package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"vigil/internal/app"
	"vigil/internal/clock"
	"vigil/internal/config"
	"vigil/internal/device"
	"vigil/internal/event"
	"vigil/internal/store"
	"vigil/internal/vigiltest"
	"vigil/internal/web"
)

// The tests in this file are timelines through the whole running server:
// a worker's device over MQTT/TLS, the embedded NATS bus, SQLite, the
// safety engine and the JSON API, on a clock.Manual. Sockets and
// goroutines run in real time; the server's time (every "now", every
// deadline, every alert's raise time) is the manual clock's, which the test
// moves with at(d). Waits for the asynchronous pipeline poll with a real
// time limit (eventually); they never assert a duration, and what the test
// asserts about time it reads from the server's records in virtual time
// ("raised at 45m").

// scenario is a running server on a manual clock with one worker, p1 of
// org acme, and their device connected over MQTT.
type scenario struct {
	t    *testing.T
	cfg  config.Config
	clk  *clock.Manual
	t0   time.Time
	a    *app.App
	stop func()
	api  *apiClient
	dev  device.Credentials
	cl   *paho.Client
	cmds chan deviceCommand
	seq  int
}

type deviceCommand struct {
	Type      string    `json:"type"`
	AlertID   string    `json:"alert_id"`
	SessionID string    `json:"session_id"`
	Due       time.Time `json:"due"`
}

func newScenario(t *testing.T, safety func(*config.SafetyConfig)) *scenario {
	cfg := vigiltest.Config(t)
	if safety != nil {
		safety(&cfg.Safety)
	}
	t0 := time.Now().UTC().Truncate(time.Second)
	sc := &scenario{t: t, cfg: cfg, clk: clock.NewManual(t0), t0: t0}
	sc.start()
	sc.dev = registerWorker(t, sc.a, "p1")
	sc.connect()
	return sc
}

func (sc *scenario) start() {
	sc.a, sc.stop = vigiltest.StartAppWith(sc.t, sc.cfg, app.Deps{Clock: sc.clk})
	sc.api = newAPIClient(sc.t, sc.a)
}

// restart stops the server, moves the clock to d while it is down, and
// starts a new one on the same data directory and clock.
func (sc *scenario) restart(d time.Duration) {
	sc.t.Helper()
	sc.stop()
	sc.at(d)
	sc.start()
}

// at moves the server's clock to t0+d.
func (sc *scenario) at(d time.Duration) {
	sc.t.Helper()
	target := sc.t0.Add(d)
	now := sc.clk.Now()
	if target.Before(now) {
		sc.t.Fatalf("at(%v): the clock is already at %v", d, now.Sub(sc.t0))
	}
	sc.clk.Advance(target.Sub(now))
}

func (sc *scenario) connect() {
	sc.cl = mqttConnect(sc.t, sc.a, sc.dev)
	sc.cmds = make(chan deviceCommand, 32)
	sc.cl.AddOnPublishReceived(func(pr paho.PublishReceived) (bool, error) {
		var c deviceCommand
		if err := json.Unmarshal(pr.Packet.Payload, &c); err != nil {
			sc.t.Errorf("device command %q: %v", pr.Packet.Payload, err)
		}
		sc.cmds <- c
		return true, nil
	})
	_, err := sc.cl.Subscribe(context.Background(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: "v1/devices/" + sc.dev.DeviceID + "/commands", QoS: 1}}})
	if err != nil {
		sc.t.Fatal(err)
	}
}

// send publishes an event stamped with the server clock's now.
func (sc *scenario) send(m event.Message) {
	sc.t.Helper()
	sc.seq++
	m.V, m.ID, m.TS = 1, fmt.Sprintf("e-%d", sc.seq), sc.clk.Now()
	publishEvent(sc.t, sc.cl, sc.dev.DeviceID, m)
}

func (sc *scenario) position(lat, lon float64) {
	sc.send(event.Message{Type: event.TypePosition, Position: &event.Position{Lat: lat, Lon: lon, AccuracyM: 8}})
}

func (sc *scenario) button(k event.ButtonKind) {
	sc.send(event.Message{Type: event.TypeButton, Button: &event.Button{Kind: k}})
}

// wantCommand waits for the device to hear a command of type typ,
// skipping others.
func (sc *scenario) wantCommand(typ string) deviceCommand {
	sc.t.Helper()
	timeout := time.After(20 * time.Second)
	var other []deviceCommand
	for {
		select {
		case c := <-sc.cmds:
			if c.Type == typ {
				return c
			}
			other = append(other, c)
		case <-timeout:
			sc.t.Fatalf("the device never heard %q (heard %+v) by %v", typ, other, sc.clk.Now().Sub(sc.t0))
		}
	}
}

func (sc *scenario) startSession(body string) web.SessionJSON {
	sc.t.Helper()
	var s web.SessionJSON
	if code := sc.api.do("POST", "/api/v1/sessions", body, &s); code != 201 {
		sc.t.Fatalf("start session: %d %+v", code, s)
	}
	return s
}

func (sc *scenario) session(id string) web.SessionJSON {
	sc.t.Helper()
	var s web.SessionJSON
	if code := sc.api.do("GET", "/api/v1/sessions/"+id, "", &s); code != 200 {
		sc.t.Fatalf("get session: %d", code)
	}
	return s
}

func (sc *scenario) alerts(kind string) []web.AlertJSON {
	sc.t.Helper()
	var list struct{ Alerts []web.AlertJSON }
	if code := sc.api.do("GET", "/api/v1/alerts?org=acme&kind="+url.QueryEscape(kind), "", &list); code != 200 {
		sc.t.Fatalf("list alerts: %d", code)
	}
	return list.Alerts
}

// wantAlert waits for the one alert of kind, with its timeline.
func (sc *scenario) wantAlert(kind string) web.AlertJSON {
	sc.t.Helper()
	var got []web.AlertJSON
	eventually(sc.t, kind+" alert", func() bool {
		got = sc.alerts(kind)
		return len(got) > 0
	})
	if len(got) != 1 {
		sc.t.Fatalf("%d %s alerts, want 1", len(got), kind)
	}
	var a web.AlertJSON
	sc.api.do("GET", "/api/v1/alerts/"+got[0].ID, "", &a)
	return a
}

func (sc *scenario) wantNoAlert(kind string) {
	sc.t.Helper()
	if got := sc.alerts(kind); len(got) != 0 {
		sc.t.Fatalf("%s raised at %v, too early", kind, got[0].RaisedAt.Sub(sc.t0))
	}
}

// wantRaisedAt checks an alert's raise time on the timeline.
func (sc *scenario) wantRaisedAt(a web.AlertJSON, d time.Duration) {
	sc.t.Helper()
	if got := a.RaisedAt.Sub(sc.t0); got != d {
		sc.t.Errorf("%s raised at %v, want %v", a.Kind, got, d)
	}
}

func actions(a web.AlertJSON) []string {
	var s []string
	for _, e := range a.Timeline {
		s = append(s, e.Action)
	}
	return s
}

// TestScenarioCheckIns: At(0) a session of 2 h with check-ins every
// 30 min and 5 min grace; At(10m) a check-in by button; At(35m) the
// device is reminded; At(45m) missed_checkin, not a second earlier; a late
// check-in goes on that alert's timeline and the alert stays open.
func TestScenarioCheckIns(t *testing.T) {
	sc := newScenario(t, func(s *config.SafetyConfig) { s.OfflineAfter = 24 * time.Hour })
	sess := sc.startSession(`{"person_id":"p1","duration":"2h","checkin_interval":"30m","grace":"5m","note":"flat 3"}`)

	sc.at(10 * time.Minute)
	sc.button(event.ButtonCheckIn)
	eventually(t, "the check-in on the session", func() bool {
		return sc.session(sess.ID).LastCheckin.Equal(sc.t0.Add(10 * time.Minute))
	})

	sc.at(34 * time.Minute)
	sc.at(35 * time.Minute)
	if c := sc.wantCommand("checkin_reminder"); c.SessionID != sess.ID || !c.Due.Equal(sc.t0.Add(40*time.Minute)) {
		t.Errorf("reminder %+v, want session %s due at 40m", c, sess.ID)
	}
	sc.at(45*time.Minute - time.Second)
	sc.wantNoAlert("missed_checkin")
	sc.at(45 * time.Minute)
	missed := sc.wantAlert("missed_checkin")
	sc.wantRaisedAt(missed, 45*time.Minute)
	if missed.SessionID != sess.ID || missed.Note != "flat 3" || missed.State != "raised" {
		t.Errorf("missed check-in %+v", missed)
	}

	sc.at(47 * time.Minute)
	sc.button(event.ButtonCheckIn)
	eventually(t, "the late check-in on the alert's timeline", func() bool {
		var a web.AlertJSON
		sc.api.do("GET", "/api/v1/alerts/"+missed.ID, "", &a)
		return slices.Contains(actions(a), "checked_in") && a.State == "raised"
	})
	if got := sc.alerts("missed_checkin"); len(got) != 1 {
		t.Errorf("%d missed_checkin alerts after the late check-in, want 1", len(got))
	}
}

// TestScenarioSOSOfflineOverrun: At(0) a 1 h session without check-ins
// (5 min grace) and a position; At(5m) a position and an SOS, raised at
// 5m with that position; the device then goes silent: At(25m)
// device_offline with the 5m position, 20 min old; At(65m)
// session_overrun.
func TestScenarioSOSOfflineOverrun(t *testing.T) {
	sc := newScenario(t, func(s *config.SafetyConfig) { s.OfflineAfter = 20 * time.Minute })
	sc.position(51.50, -0.12)
	sess := sc.startSession(`{"person_id":"p1","duration":"1h","checkin_interval":"0s","grace":"5m"}`)

	sc.at(5 * time.Minute)
	sc.position(51.51, -0.13)
	sc.button(event.ButtonSOS)
	sos := sc.wantAlert("sos")
	sc.wantRaisedAt(sos, 5*time.Minute) // no delay stage
	if sos.Severity != "critical" || sos.SessionID != sess.ID || sos.Position == nil || sos.Position.Lat != 51.51 {
		t.Errorf("SOS %+v", sos)
	}
	if c := sc.wantCommand("alert_raised"); c.AlertID != sos.ID {
		t.Errorf("device heard %+v, want alert_raised for %s", c, sos.ID)
	}

	sc.at(25*time.Minute - time.Second)
	sc.wantNoAlert("device_offline")
	sc.at(25 * time.Minute)
	off := sc.wantAlert("device_offline")
	sc.wantRaisedAt(off, 25*time.Minute)
	if p := off.Position; p == nil || p.Lat != 51.51 || p.AgeS != (20*time.Minute).Seconds() {
		t.Errorf("offline alert's last position %+v, want the 5m fix, 20 min old", p)
	}

	sc.at(65*time.Minute - time.Second)
	sc.wantNoAlert("session_overrun")
	sc.at(65 * time.Minute)
	sc.wantRaisedAt(sc.wantAlert("session_overrun"), 65*time.Minute)
}

// TestScenarioRestart: At(0) a session with check-ins every 30 min and
// 5 min grace; At(10m) the server stops; it starts again at 40m, when the
// check-in was missed (due 35m) while it was down: missed_checkin is
// raised at once on start, once, and a second restart raises nothing
// more.
func TestScenarioRestart(t *testing.T) {
	sc := newScenario(t, func(s *config.SafetyConfig) { s.OfflineAfter = 24 * time.Hour })
	sess := sc.startSession(`{"person_id":"p1","duration":"2h","checkin_interval":"30m","grace":"5m"}`)
	sc.at(10 * time.Minute)
	sc.restart(40 * time.Minute)
	missed := sc.wantAlert("missed_checkin")
	sc.wantRaisedAt(missed, 40*time.Minute)
	if got := missed.CauseTime.Sub(sc.t0); got != 35*time.Minute || missed.SessionID != sess.ID {
		t.Errorf("missed check-in caused at %v for %s, want 35m for %s", got, missed.SessionID, sess.ID)
	}

	sc.restart(41 * time.Minute)
	// The new server has loaded its state once its API answers; give
	// its engine a deadline to pass, then count.
	sc.at(42 * time.Minute)
	if s := sc.session(sess.ID); s.State != "active" {
		t.Fatalf("session %+v after the restarts", s)
	}
	if got := sc.alerts("missed_checkin"); len(got) != 1 {
		t.Errorf("%d missed_checkin alerts after a second restart, want 1", len(got))
	}
}

// feedEvent is one server-sent event of an organisation's live feed.
type feedEvent struct {
	Name string
	Data struct {
		AlertID string `json:"alert_id"`
		Kind    string `json:"kind"`
		Step    int    `json:"step"`
		Attempt int    `json:"attempt"`
	}
}

// openFeed connects to org's live feed over the API listener and sends its
// events, in order, on the returned channel.
func (sc *scenario) openFeed(org string) <-chan feedEvent {
	sc.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sc.t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", sc.api.base+"/api/v1/orgs/"+org+"/feed", nil)
	if err != nil {
		sc.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+vigiltest.APIToken(sc.t, sc.api.a, org))
	resp, err := sc.api.hc.Do(req)
	if err != nil {
		sc.t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		sc.t.Fatalf("feed: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out := make(chan feedEvent, 64)
	go func() {
		defer resp.Body.Close()
		defer close(out)
		var ev feedEvent
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.Name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.Data)
			case line == "" && ev.Name != "":
				out <- ev
				ev = feedEvent{}
			}
		}
	}()
	return out
}

// wantFeed waits for the next alert event on the feed (skipping channel
// status events).
func (sc *scenario) wantFeed(feed <-chan feedEvent, name string) feedEvent {
	sc.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ev, ok := <-feed:
			if !ok {
				sc.t.Fatalf("the feed ended before %q", name)
			}
			if ev.Name == "channel" {
				continue
			}
			if ev.Name != name {
				sc.t.Fatalf("feed event %q %+v, want %q", ev.Name, ev.Data, name)
			}
			return ev
		case <-timeout:
			sc.t.Fatalf("the feed never showed %q", name)
		}
	}
}

// TestScenarioEscalation: the organisation's SOS policy (the console,
// again every 20 s for a minute, then escalated) set through the API;
// At(0) an SOS reaches a connected console's live feed at once; At(20s)
// the reminder; At(30s) a supervisor acknowledges through the API: the
// feed shows it and the ladder stops, so At(10m) nothing more was sent;
// every delivery is listed for the alert.
func TestScenarioEscalation(t *testing.T) {
	sc := newScenario(t, nil)
	var pol struct{ Source string }
	if code := sc.api.do("PUT", "/api/v1/orgs/acme/escalation-policies/sos",
		`{"steps":[{"name":"supervisors","recipients":[{"channel":"console"}],"wait":"1m","repeat":"20s"},
		           {"name":"escalated","recipients":[{"channel":"console"}],"wait":"2m"}]}`, &pol); code != 200 || pol.Source != "org" {
		t.Fatalf("put policy: %d %+v", code, pol)
	}
	feed := sc.openFeed("acme")
	sc.startSession(`{"person_id":"p1","preset":"low"}`)
	sc.button(event.ButtonSOS)
	raised := sc.wantFeed(feed, "raised")
	sos := sc.wantAlert("sos")
	if raised.Data.AlertID != sos.ID || raised.Data.Kind != "sos" {
		t.Errorf("feed showed %+v, want the SOS %s", raised.Data, sos.ID)
	}
	// The ladder's next moment is stored before the clock moves on.
	eventually(t, "the ladder at its first repeat", func() bool {
		x, err := sc.a.Store().GetEscalation(context.Background(), sos.ID)
		return err == nil && x.Attempt == 1
	})
	sc.at(20 * time.Second)
	if ev := sc.wantFeed(feed, "reminder"); ev.Data.Step != 0 || ev.Data.Attempt != 1 {
		t.Errorf("reminder %+v, want step 0 repeat 1", ev.Data)
	}
	sc.at(30 * time.Second)
	if code := sc.api.do("POST", "/api/v1/alerts/"+sos.ID+"/acknowledge", `{"note":"on my way"}`, nil); code != 200 {
		t.Fatalf("acknowledge: %d", code)
	}
	sc.wantFeed(feed, "acknowledged")
	eventually(t, "the ladder stopped", func() bool {
		x, err := sc.a.Store().GetEscalation(context.Background(), sos.ID)
		return err == nil && x.State == store.EscalationStopped
	})
	sc.at(10 * time.Minute)
	var got []string
	const want = "raised/console/sent,reminder/console/sent,acknowledged/console/sent"
	eventually(t, "every delivery recorded as sent", func() bool {
		var ds struct {
			Deliveries []struct{ Event, Channel, Status string }
		}
		if code := sc.api.do("GET", "/api/v1/alerts/"+sos.ID+"/deliveries", "", &ds); code != 200 {
			t.Fatalf("deliveries: %d", code)
		}
		got = got[:0]
		for _, d := range ds.Deliveries {
			got = append(got, d.Event+"/"+d.Channel+"/"+d.Status)
		}
		return strings.Join(got, ",") == want || len(got) > 3
	})
	if strings.Join(got, ",") != want {
		t.Errorf("deliveries %v, want %s", got, want)
	}
}
