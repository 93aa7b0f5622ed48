package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"vigil/internal/app"
	"vigil/internal/device"
	"vigil/internal/event"
	"vigil/internal/store"
	"vigil/internal/vigiltest"
	"vigil/internal/web"
)

type apiClient struct {
	t    *testing.T
	a    *app.App
	hc   *http.Client
	base string
	tok  string // an API token of org acme with every permission, made on first use
}

func newAPIClient(t *testing.T, a *app.App) *apiClient {
	return &apiClient{t: t, a: a, hc: &http.Client{Transport: &http.Transport{TLSClientConfig: vigiltest.ClientTLS(t, a)}},
		base: "https://" + a.Addr("api")}
}

// token returns the client's API token for org acme.
func (c *apiClient) token() string {
	c.t.Helper()
	if c.tok == "" {
		c.tok = vigiltest.APIToken(c.t, c.a, "acme")
	}
	return c.tok
}

func (c *apiClient) do(method, path, body string, out any) int {
	c.t.Helper()
	tok := c.token()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 { // 204 has no body
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

// registerWorker registers a device worn by a new worker personID of org acme.
func registerWorker(t *testing.T, a *app.App, personID string) device.Credentials {
	t.Helper()
	dev := register(t, a)
	ctx := context.Background()
	if err := a.Store().CreatePerson(ctx, store.Person{ID: personID, OrgID: "acme", Kind: store.PersonWorker, Name: "Ann"}); err != nil {
		t.Fatal(err)
	}
	if err := a.Store().AssignDevice(ctx, dev.DeviceID, personID); err != nil {
		t.Fatal(err)
	}
	return dev
}

func publishEvent(t *testing.T, cl *paho.Client, deviceID string, m event.Message) {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	pr, err := cl.Publish(context.Background(), &paho.Publish{Topic: "v1/devices/" + deviceID + "/events", QoS: 1, Payload: b})
	if err != nil || pr.ReasonCode >= 0x80 {
		t.Fatalf("publish: %v %+v", err, pr)
	}
}

// TestSOSThroughThePipeline: a worker starts a session through the JSON
// API; their device's SOS over MQTT becomes a critical alert with the
// session's note and the last position, which a supervisor acknowledges
// and resolves through the API; the device hears "alert_raised" on its
// commands topic.
func TestSOSThroughThePipeline(t *testing.T) {
	a := vigiltest.StartApp(t, vigiltest.Config(t))
	ctx := context.Background()
	dev := registerWorker(t, a, "p1")
	api := newAPIClient(t, a)
	var sess web.SessionJSON
	if code := api.do("POST", "/api/v1/sessions", `{"person_id":"p1","preset":"medium","note":"visit at flat 3, dog"}`, &sess); code != 201 {
		t.Fatalf("start session: %d", code)
	}
	if sess.State != "active" || sess.CheckinIntervalS != 1800 || sess.NextCheckinDue == nil {
		t.Errorf("session %+v", sess)
	}

	cl := mqttConnect(t, a, dev)
	cmds := make(chan string, 10)
	cl.AddOnPublishReceived(func(pr paho.PublishReceived) (bool, error) {
		cmds <- string(pr.Packet.Payload)
		return true, nil
	})
	if _, err := cl.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "v1/devices/" + dev.DeviceID + "/commands", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	publishEvent(t, cl, dev.DeviceID, event.Message{V: 1, ID: "p-1", TS: now, Type: event.TypePosition,
		Position: &event.Position{Lat: 51.5, Lon: -0.12, AccuracyM: 8}})
	publishEvent(t, cl, dev.DeviceID, event.Message{V: 1, ID: "sos-1", TS: now.Add(time.Second), Type: event.TypeButton,
		Button: &event.Button{Kind: event.ButtonSOS}})

	var list struct{ Alerts []web.AlertJSON }
	eventually(t, "the SOS alert in the API", func() bool {
		api.do("GET", "/api/v1/alerts?org=acme&open=true", "", &list)
		return len(list.Alerts) == 1
	})
	al := list.Alerts[0]
	if al.Kind != "sos" || al.Severity != "critical" || al.State != "raised" || al.PersonID != "p1" || al.SessionID != sess.ID ||
		al.Note != "visit at flat 3, dog" || al.Position == nil || al.Position.Lat != 51.5 {
		t.Errorf("SOS alert %+v", al)
	}
	select {
	case c := <-cmds:
		if !strings.Contains(c, `"alert_raised"`) || !strings.Contains(c, al.ID) {
			t.Errorf("device command %s", c)
		}
	case <-time.After(10 * time.Second):
		t.Error("the device heard nothing on its commands topic")
	}

	var got web.AlertJSON
	if code := api.do("POST", "/api/v1/alerts/"+al.ID+"/acknowledge", `{"note":"calling her"}`, &got); code != 200 || got.State != "acknowledged" {
		t.Fatalf("acknowledge: %d %+v", code, got)
	}
	var e struct{ Error struct{ Code, Field string } }
	if code := api.do("POST", "/api/v1/alerts/"+al.ID+"/acknowledge", `{}`, &e); code != 409 || e.Error.Code != "illegal_transition" {
		t.Errorf("second acknowledge: %d %+v", code, e)
	}
	if code := api.do("POST", "/api/v1/alerts/"+al.ID+"/resolve", `{"outcome":"fixed"}`, &e); code != 400 || e.Error.Field != "outcome" {
		t.Errorf("resolve with a bad outcome: %d %+v", code, e)
	}
	if code := api.do("POST", "/api/v1/alerts/"+al.ID+"/resolve", `{"outcome":"assisted","note":"helped"}`, &got); code != 200 || got.State != "resolved" {
		t.Fatalf("resolve: %d %+v", code, got)
	}
	var actions []string
	notified := 0
	eventually(t, "the console's notification on the timeline", func() bool {
		api.do("GET", "/api/v1/alerts/"+al.ID, "", &got)
		actions, notified = nil, 0
		for _, en := range got.Timeline {
			if en.Actor == "escalation" {
				notified++ // the console feed was told; TestScenarioEscalation follows the ladder
				continue
			}
			actions = append(actions, en.Action)
		}
		return notified > 0
	})
	if strings.Join(actions, ",") != "raised,acknowledged,resolved" {
		t.Errorf("timeline %v", actions)
	}
	if code := api.do("POST", "/api/v1/sessions/"+sess.ID+"/end", "", &sess); code != 200 || sess.State != "ended" {
		t.Errorf("end session: %d %+v", code, sess)
	}
	// An organisation's own preset replaces the built-in ones.
	if code := api.do("PUT", "/api/v1/orgs/acme/session-presets/night", `{"duration":"8h","checkin_interval":"1h","grace":"10m"}`, nil); code != 200 {
		t.Fatalf("put preset: %d", code)
	}
	var presets struct{ Presets []struct{ Name string } }
	api.do("GET", "/api/v1/orgs/acme/session-presets", "", &presets)
	if len(presets.Presets) != 1 || presets.Presets[0].Name != "night" {
		t.Errorf("presets %+v", presets)
	}
	if code := api.do("POST", "/api/v1/sessions", `{"person_id":"p1","preset":"night"}`, &sess); code != 201 || sess.CheckinIntervalS != 3600 {
		t.Errorf("session from the org's preset: %d %+v", code, sess)
	}
}

// TestAPIRoutes walks the API's allowlist: every route answers its
// method with something other than the catch-all 404 or 405, bad bodies
// are 400s naming the field, and anything else is a JSON 404.
func TestAPIRoutes(t *testing.T) {
	a := vigiltest.StartApp(t, vigiltest.Config(t))
	register(t, a)
	api := newAPIClient(t, a)
	for _, rt := range web.Routes {
		method, path, _ := strings.Cut(rt.Pattern, " ")
		org := "acme"
		if strings.HasSuffix(path, "/feed") {
			org = "nope" // acme's feed streams until the client leaves (TestScenarioEscalation reads it)
		}
		path = strings.NewReplacer("{id}", "nope", "{org}", org, "{kind}", "sos", "{name}", "night").Replace(path)
		var e struct{ Error struct{ Code string } }
		code := api.do(method, path, "", &e)
		if code == 405 || (code == 404 && e.Error.Code != "not_found") || code >= 500 {
			t.Errorf("%s: %d %+v", rt.Pattern, code, e)
		}
	}
	for _, tc := range []struct{ method, path, body, field string }{
		{"POST", "/api/v1/sessions", `{"person_id":"x","duration":"banana"}`, "duration"},
		{"POST", "/api/v1/sessions", `{"person_id":"x","extra":1}`, "extra"},
		{"POST", "/api/v1/sessions", `{"person_id":"x","duration":"1h"}`, "person_id"},
		{"GET", "/api/v1/alerts?state=bogus", "", "state"},
		{"GET", "/api/v1/alerts?limit=5000", "", "limit"},
		{"PUT", "/api/v1/orgs/acme/session-presets/night", `{"duration":"30h"}`, "duration"},
		{"PUT", "/api/v1/orgs/acme/session-presets/Night%20Shift", `{"duration":"3h"}`, "name"},
		{"PUT", "/api/v1/orgs/acme/escalation-policies/sos", `{"steps":[{"recipients":[{"channel":"console"}],"wait":"1s"}]}`, "steps[0].wait"},
		{"PUT", "/api/v1/orgs/acme/escalation-policies/sos", `{"steps":[{"recipients":[{"channel":"sms","address":"0770"}],"wait":"1m"}]}`, "steps[0].recipients[0].address"},
		{"PUT", "/api/v1/orgs/acme/escalation-policies/tea", `{}`, "kind"},
		{"POST", "/api/v1/orgs/acme/zones", `{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Point","coordinates":[0,0]},"properties":{"rule":"stay"}}]}`, "properties.rule"},
	} {
		var e struct{ Error struct{ Code, Field string } }
		if code := api.do(tc.method, tc.path, tc.body, &e); code != 400 || e.Error.Field != tc.field {
			t.Errorf("%s %s %s: %d %+v, want 400 naming %s", tc.method, tc.path, tc.body, code, e, tc.field)
		}
	}
	for _, p := range []string{"/", "/api/v1/secrets", "/api/v1/alerts/x/delete"} {
		var e struct{ Error struct{ Code string } }
		if code := api.do("GET", p, "", &e); code != 404 || e.Error.Code != "not_found" {
			t.Errorf("GET %s: %d", p, code)
		}
	}
}

// TestLocationPrivacy: under the default "on duty only" policy, a
// worker's positions outside a session or an open alert are not stored at
// all — no history row, no last position — while the rest of the event
// is; during a session they are stored.
func TestLocationPrivacy(t *testing.T) {
	a := vigiltest.StartApp(t, vigiltest.Config(t))
	ctx := context.Background()
	dev := registerWorker(t, a, "p1")
	st := a.Store()
	cl := mqttConnect(t, a, dev)
	now := time.Now().UTC().Truncate(time.Millisecond)
	pos := &event.Position{Lat: 51.5, Lon: -0.12, AccuracyM: 8}
	publishEvent(t, cl, dev.DeviceID, event.Message{V: 1, ID: "off-pos", TS: now, Type: event.TypePosition, Position: pos})
	publishEvent(t, cl, dev.DeviceID, event.Message{V: 1, ID: "off-hb", TS: now.Add(time.Millisecond), Type: event.TypeHeartbeat})
	eventually(t, "the off-duty heartbeat stored", func() bool {
		ok, err := st.HasEvent(ctx, dev.DeviceID, "off-hb")
		return err == nil && ok
	})
	if ps, err := st.Positions(ctx, dev.DeviceID, time.Time{}, time.Time{}); err != nil || len(ps) != 0 {
		t.Errorf("off duty: %d positions stored (%v), want none", len(ps), err)
	}
	if d, _ := st.GetDevice(ctx, dev.DeviceID); d.State.LastPosition != nil {
		t.Error("off duty: the device's last position was stored")
	}

	api := newAPIClient(t, a)
	if code := api.do("POST", "/api/v1/sessions", `{"person_id":"p1","duration":"1h"}`, nil); code != 201 {
		t.Fatalf("start session: %d", code)
	}
	publishEvent(t, cl, dev.DeviceID, event.Message{V: 1, ID: "on-pos", TS: now.Add(time.Second), Type: event.TypePosition, Position: pos})
	eventually(t, "the on-duty position stored", func() bool {
		ps, err := st.Positions(ctx, dev.DeviceID, time.Time{}, time.Time{})
		return err == nil && len(ps) == 1 && ps[0].MsgID == "on-pos"
	})
}
