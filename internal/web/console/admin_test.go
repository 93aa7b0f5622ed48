package console

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"vigil/internal/store"
)

// adminFakeAPI answers the few JSON API calls the device pages make, as
// the real API would for an admin of acme.
type adminFakeAPI struct{ posted map[string]string }

func (f *adminFakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch r.Method + " " + r.URL.Path {
	case "GET /api/v1/orgs/acme/people":
		_, _ = w.Write([]byte(`{"people":[{"id":"p1","org_id":"acme","kind":"worker","name":` + jsonString(xss) + `}]}`))
	case "GET /api/v1/orgs/acme/devices":
		_, _ = w.Write([]byte(`{"devices":[{"id":"d1","name":` + jsonString(xss) + `,"person_id":"p1","battery":0,"disabled":false}]}`))
	case "GET /api/v1/people/p1":
		_, _ = w.Write([]byte(`{"id":"p1","org_id":"acme","kind":"worker","name":` + jsonString(xss) + `,"medical_notes":` + jsonString("asthma\n"+xss) +
			`,"contacts":[{"id":"c1","name":` + jsonString(xss) + `,"phone":"+447700900123","email":"kin@example.org","priority":1}]}`))
	case "GET /api/v1/orgs/acme/users":
		_, _ = w.Write([]byte(`{"users":[{"id":"u1","email":"cara@example.org","name":` + jsonString(xss) + `,"orgs":[{"org_id":"acme","role":"carer"}]}]}`))
	case "GET /api/v1/orgs/acme/teams":
		_, _ = w.Write([]byte(`{"teams":[{"id":"t1","name":` + jsonString(xss) + `,"members":["u1","u-gone"]}]}`))
	case "POST /api/v1/orgs/acme/devices":
		_ = json.NewDecoder(r.Body).Decode(&f.posted)
		if f.posted["name"] == "" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":{"code":"invalid","field":"name","message":"required"}}`))
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"device_id":"d2","secret":"s3cr3t-once","name":` + jsonString(f.posted["name"]) + `,"person_id":"p1"}`))
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":{"code":"not_found","message":"no such object"}}`))
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestAdminDevicePages: the device list and the registration answer with
// hostile names escaped and the page rules kept; the credentials and the
// QR code are in the POST's answer only (no-store, no redirect); a
// validation refusal shows next to its field; an auditor meets 403 on the
// registration page and its POST.
func TestAdminDevicePages(t *testing.T) {
	w := newWorld(t)
	api := &adminFakeAPI{}
	c, err := New(Deps{Auth: w.auth, Store: w.st, Alerts: w.alerts, Audit: w.audit, API: api, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	c.Register(mux)
	w.h = mux
	admin := w.auth.session("acme", store.RoleAdmin, true)

	r := w.do(t, "GET", "/console/acme/devices", admin, nil)
	if r.code != 200 || !strings.Contains(r.body, `id="device-d1"`) || !strings.Contains(r.body, "0 %") || !strings.Contains(r.body, `id="register-link"`) {
		t.Fatalf("devices: %d %s", r.code, r.body)
	}
	if strings.Contains(r.body, xss) {
		t.Errorf("hostile name not escaped: %s", r.body)
	}
	checkPage(t, "devices", r)

	r = w.do(t, "POST", "/console/acme/devices", admin, url.Values{"name": {""}})
	if r.code != 400 || !strings.Contains(r.body, `id="device-name-error"`) || strings.Contains(r.body, "s3cr3t-once") {
		t.Errorf("blank name: %d %s", r.code, r.body)
	}
	r = w.do(t, "POST", "/console/acme/devices", admin, url.Values{"name": {xss}, "person_id": {"p1"}})
	if r.code != 200 || r.hdr.Get("Cache-Control") != "no-store" || r.hdr.Get("Location") != "" {
		t.Fatalf("register: %d %v", r.code, r.hdr)
	}
	for _, want := range []string{`<code id="device-secret">s3cr3t-once</code>`, `<code id="device-id">d2</code>`,
		`src="data:image/png;base64,`, "This is shown once", `data-after="/console/acme/devices"`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("credentials page lacks %q:\n%s", want, r.body)
		}
	}
	if strings.Contains(r.body, xss) {
		t.Errorf("hostile name not escaped: %s", r.body)
	}
	checkPage(t, "credentials", r)
	if api.posted["name"] != xss || api.posted["person_id"] != "p1" {
		t.Errorf("API got %v", api.posted)
	}

	auditor := w.auth.session("acme", store.RoleAuditor, true)
	if r := w.do(t, "GET", "/console/acme/devices/new", auditor, nil); r.code != 403 {
		t.Errorf("auditor: registration page %d", r.code)
	}
	if r := w.do(t, "POST", "/console/acme/devices", auditor, url.Values{"name": {"x"}}); r.code != 403 {
		t.Errorf("auditor: register %d", r.code)
	}
	if r := w.do(t, "GET", "/console/acme/devices", auditor, nil); r.code != 200 || strings.Contains(r.body, `id="register-link"`) {
		t.Errorf("auditor: list %d, register link shown: %v", r.code, strings.Contains(r.body, `id="register-link"`))
	}
	other := w.auth.session("other", store.RoleAdmin, true)
	if r := w.do(t, "GET", "/console/acme/devices", other, nil); r.code != 404 {
		t.Errorf("other organisation: %d", r.code)
	}
}

// TestAdminPagesRender: the people list, a person's page and the teams
// page keep the page rules (no inline script, handler or style), escape
// hostile names and notes, and link a contact's number with tel:.
func TestAdminPagesRender(t *testing.T) {
	w := newWorld(t)
	c, err := New(Deps{Auth: w.auth, Store: w.st, Alerts: w.alerts, Audit: w.audit, API: &adminFakeAPI{}, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	c.Register(mux)
	w.h = mux
	admin := w.auth.session("acme", store.RoleAdmin, true)
	for path, wants := range map[string][]string{
		"/console/acme/people":    {`href="/console/acme/people/p1"`, `id="person-form"`, `href="/console/acme/devices#device-d1"`},
		"/console/acme/people/p1": {`id="notes-form"`, `href="tel:&#43;447700900123"`, `href="mailto:kin@example.org"`, `id="assign-form"`, `/contacts/c1/delete`},
		"/console/acme/teams":     {`id="team-form"`, `/teams/t1/members/u1/delete`, `u-gone`},
	} {
		r := w.do(t, "GET", path, admin, nil)
		if r.code != 200 {
			t.Errorf("%s: %d %s", path, r.code, r.body)
			continue
		}
		checkPage(t, path, r)
		if strings.Contains(r.body, xss) {
			t.Errorf("%s: hostile text not escaped", path)
		}
		for _, want := range wants {
			if !strings.Contains(r.body, want) {
				t.Errorf("%s lacks %q:\n%s", path, want, r.body)
			}
		}
	}
}

func TestTelURL(t *testing.T) {
	for in, want := range map[string]string{
		"+447700900123":          "tel:+447700900123",
		"":                       "",
		"javascript:alert(1)":    "",
		"+44 7700 900123":        "",
		"+447700900123\"><b>":    "",
		"+0123456789":            "",
		"+1234567890123456789":   "",
		"tel:+447700900123":      "",
		"+447700900123?x=javasc": "",
	} {
		if got := string(telURL(in)); got != want {
			t.Errorf("telURL(%q) = %q, want %q", in, got, want)
		}
	}
}
