package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"vigil/internal/event"
	"vigil/internal/store"
	"vigil/internal/vigiltest"
	"vigil/internal/web"
)

const (
	avImg = `<img src=x onerror=alert(1)>`
	avSVG = `"><svg onload=alert(1)>`
)

// page is one console request as caller (the real server, no redirects
// followed): status, body and headers.
func (w *authzWorld) avPage(caller, method, path string, form url.Values) (int, string, http.Header) {
	w.t.Helper()
	var rd io.Reader
	if form != nil {
		rd = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, "https://"+w.a.Addr("https")+path, rd)
	if err != nil {
		w.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if c := w.session(caller); c != "" {
		req.AddCookie(&http.Cookie{Name: web.SessionCookie, Value: c})
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: vigiltest.ClientTLS(w.t, w.a)},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// alertOf raises an alert of org x for person with a session note and a
// position, straight in the store.
func (w *authzWorld) avAlert(id, person string, duress bool) store.Alert {
	w.t.Helper()
	now := time.Now().UTC()
	dev := "dv-" + id
	if err := w.a.Store().CreateDevice(context.Background(), store.Device{ID: dev, OrgID: "x", Name: "pendant " + avSVG,
		SecretHash: make([]byte, 32), CreatedAt: now}); err != nil {
		w.t.Fatal(err)
	}
	al := store.Alert{ID: id, OrgID: "x", PersonID: person, DeviceID: dev, Kind: "sos", Severity: "critical", State: store.AlertRaised,
		DedupKey: "sos:" + id, RaisedAt: now, CauseTime: now, Note: "amber " + avSVG, Duress: duress,
		Position: &event.Position{Lat: 51.5, Lon: -0.12, AccuracyM: 25}, PositionTime: now}
	got, _, err := w.a.Store().RaiseAlert(context.Background(), al, store.AlertEntry{At: now, Actor: "test", Action: "raised", Cause: "cause-" + id})
	if err != nil {
		w.t.Fatal(err)
	}
	return got
}

func (w *authzWorld) avAPIAlert(id string) map[string]any {
	w.t.Helper()
	code, body := w.call("admin", "GET", "/api/v1/alerts/"+id, "")
	if code != 200 {
		w.t.Fatalf("alert %s: %d %s", id, code, body)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		w.t.Fatal(err)
	}
	return m
}

// TestAlertNotesAPI: POST /api/v1/alerts/{id}/notes appends the note to
// the timeline with the caller as actor; validation names the field;
// the permission is checked before the body.
func TestAlertNotesAPI(t *testing.T) {
	w := newAuthzWorld(t)
	al := w.avAlert("al-notes", "x-worker", false)
	path := "/api/v1/alerts/" + al.ID + "/notes"
	if code, body := w.call("supervisor", "POST", path, `{"note":"called her daughter `+strings.ReplaceAll(avSVG, `"`, `\"`)+`"}`); code != 201 {
		t.Fatalf("note: %d %s", code, body)
	}
	tl, _ := w.avAPIAlert(al.ID)["timeline"].([]any)
	last, _ := tl[len(tl)-1].(map[string]any)
	if last["action"] != "note" || last["actor"] != "u-supervisor" || last["detail"] != "called her daughter "+avSVG {
		t.Errorf("timeline %v", tl)
	}
	for _, tt := range []struct {
		caller, body string
		code         int
		field        string
	}{
		{"supervisor", `{"note":""}`, 400, "note"},
		{"supervisor", `{}`, 400, "note"},
		{"supervisor", `{"note":"` + strings.Repeat("é", 2001) + `"}`, 400, "note"},
		{"supervisor", `{"note":"bell\u0007"}`, 400, "note"},
		{"supervisor", `{"note":"x","extra":1}`, 400, "extra"},
		{"auditor", `{"note":""}`, 403, ""},
		{"carer", `{"note":"x"}`, 403, ""},
		{"other-org", `{"note":"x"}`, 404, ""},
		{"anonymous", `{"note":"x"}`, 401, ""},
	} {
		code, body := w.call(tt.caller, "POST", path, tt.body)
		if code != tt.code || (tt.field != "" && !strings.Contains(body, `"field":"`+tt.field+`"`)) {
			t.Errorf("%s %s: %d %s, want %d field %q", tt.caller, tt.body, code, body, tt.code, tt.field)
		}
	}
}

// TestAlertViewPage: the console's alert view over the real API — 404 for
// another organisation's alert or a person a worker is not limited to,
// 403 for an action the role lacks, hostile names and notes escaped, a
// worker's duress alert shown as cancelled to them, and the buttons
// (acknowledge, note, resolve) through the API with its field errors.
func TestAlertViewPage(t *testing.T) {
	w := newAuthzWorld(t)
	ctx := context.Background()
	st := w.a.Store()
	if err := st.CreatePerson(ctx, store.Person{ID: "x-hostile", OrgID: "x", Kind: store.PersonWorker, Name: avImg}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutContact(ctx, store.Contact{ID: "co-h", OrgID: "x", PersonID: "x-hostile", Name: "Kin " + avSVG,
		Phone: "+447700900456", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	al := w.avAlert("al-view", "x-hostile", false)
	base := "/console/x/alerts/" + al.ID

	code, body, hdr := w.avPage("supervisor", "GET", base, nil)
	if code != 200 {
		t.Fatalf("view: %d %s", code, body)
	}
	if !strings.Contains(hdr.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Errorf("CSP %q", hdr.Get("Content-Security-Policy"))
	}
	if strings.Contains(body, "<img") || strings.Contains(body, "<svg") {
		t.Errorf("hostile text reached the page unescaped:\n%s", body)
	}
	for _, want := range []string{
		`&lt;img src=x onerror=alert(1)&gt;`,             // the person's name
		`amber &#34;&gt;&lt;svg onload=alert(1)&gt;`,     // the amber note
		`href="tel:&#43;447700900456"`,                   // a contact, one click away
		`Kin &#34;&gt;&lt;svg onload=alert(1)&gt;`,       // the contact's name
		`id="alert-state" class="st-raised">raised</dd>`, // the state
		`id="ack-submit"`, `id="resolve-form"`, `id="note-form"`,
		`data-acc="25"`, `id="timeline"`,
		`pendant &#34;&gt;&lt;svg onload=alert(1)&gt;`, // the device's name
	} {
		if !strings.Contains(body, want) {
			t.Errorf("view lacks %s", want)
		}
	}

	// The trail (read from the store, no API) is recorded as a read of
	// the device's positions.
	if code, body := w.call("admin", "GET", "/api/v1/orgs/x/audit?action=position.read&actor=u-supervisor", ""); code != 200 ||
		!strings.Contains(body, `"object_id":"dv-al-view"`) {
		t.Errorf("audit of the trail: %d %s", code, body)
	}

	for _, tt := range []struct {
		caller, path string
		code         int
	}{
		{"supervisor", "/console/y/alerts/" + al.ID, 404}, // not an alert of y
		{"other-org", base, 404},
		{"anonymous", base, 303},
		{"supervisor", "/console/x/alerts/al-nope", 404},
		{"worker", base, 404}, // another person's alert
		{"carer", base, 404},
		{"auditor", base, 200},
		{"supervisor", base + "/live", 200},
		{"supervisor", base + "/live?part=history", 200},
		{"other-org", base + "/live", 404},
	} {
		if code, body, _ := w.avPage(tt.caller, "GET", tt.path, nil); code != tt.code {
			t.Errorf("%s GET %s: %d, want %d\n%.400s", tt.caller, tt.path, code, tt.code, body)
		}
	}
	// The auditor reads but does not respond: no buttons, and the API's
	// 403 if posted anyway.
	if _, body, _ := w.avPage("auditor", "GET", base, nil); strings.Contains(body, `id="resolve-form"`) || strings.Contains(body, `id="ack-submit"`) {
		t.Error("the auditor is offered buttons")
	}
	if code, _, _ := w.avPage("auditor", "POST", base+"/resolve", url.Values{"outcome": {"false_alarm"}}); code != 403 {
		t.Errorf("auditor resolve: %d, want 403", code)
	}
	if code, _, _ := w.avPage("other-org", "POST", base+"/note", url.Values{"note": {"hi"}}); code != 404 {
		t.Errorf("other org's note: %d, want 404", code)
	}
	if code, _, _ := w.avPage("supervisor", "POST", "/console/y/alerts/"+al.ID+"/ack", url.Values{}); code != 404 {
		t.Errorf("acknowledge through another org's path: %d, want 404", code)
	}

	// Resolve without an outcome: the API's field error next to the field.
	code, body, _ = w.avPage("supervisor", "POST", base+"/resolve", url.Values{"outcome": {""}, "note": {"kept " + avImg}})
	if code != 400 || !strings.Contains(body, `id="outcome-error">want false_alarm, assisted, emergency_services, or other with a note</p>`) ||
		!strings.Contains(body, `aria-invalid="true" aria-describedby="outcome-error"`) || !strings.Contains(body, "kept &lt;img") {
		t.Errorf("resolve without outcome: %d\n%s", code, body)
	}
	// An empty note: the note's field error.
	if code, body, _ := w.avPage("supervisor", "POST", base+"/note", url.Values{"note": {""}}); code != 400 || !strings.Contains(body, `id="note-error">required</p>`) {
		t.Errorf("empty note: %d\n%s", code, body)
	}

	// Acknowledge, note, resolve: each back to the view.
	for _, step := range []struct {
		path string
		form url.Values
	}{
		{"/ack", url.Values{}},
		{"/note", url.Values{"note": {"on my way " + avImg}}},
		{"/resolve", url.Values{"outcome": {"false_alarm"}, "note": {"pocket press"}}},
	} {
		code, body, hdr := w.avPage("supervisor", "POST", base+step.path, step.form)
		if code != 303 || !strings.HasPrefix(hdr.Get("Location"), base+"?done=") {
			t.Fatalf("%s: %d %s %s", step.path, code, hdr.Get("Location"), body)
		}
	}
	got := w.avAPIAlert(al.ID)
	if got["state"] != "resolved" || got["outcome"] != "false_alarm" || got["acknowledged_by"] != "u-supervisor" {
		t.Errorf("alert after the buttons: %v", got)
	}
	_, body, _ = w.avPage("supervisor", "GET", base+"?done=resolve", nil)
	for _, want := range []string{`<span class="action">note</span>`, `on my way &lt;img src=x onerror=alert(1)&gt;`,
		`id="alert-outcome">false_alarm: pocket press</dd>`, `>Resolved.</p>`} {
		if !strings.Contains(body, want) {
			t.Errorf("resolved view lacks %s", want)
		}
	}
	if strings.Contains(body, `id="resolve-form"`) || strings.Contains(body, `id="ack-submit"`) || strings.Contains(body, "<img") {
		t.Errorf("resolved view:\n%s", body)
	}

	// A duress alert of the worker's own: to them it looks cancelled.
	du := w.avAlert("al-duress", "x-worker", true)
	code, body, _ = w.avPage("worker", "GET", "/console/x/alerts/"+du.ID, nil)
	if code != 200 || strings.Contains(body, "duress") || !strings.Contains(body, `class="st-cancelled">cancelled</dd>`) {
		t.Errorf("worker's duress view: %d\n%s", code, body)
	}
	if _, body, _ := w.avPage("supervisor", "GET", "/console/x/alerts/"+du.ID, nil); !strings.Contains(body, `<span class="duress">duress</span>`) {
		t.Error("the supervisor does not see the duress flag")
	}
}
