package console

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"vigil/internal/store"
)

// setCanned is a fake API answer.
type setCanned struct {
	status int
	body   string
}

// setAPI is a fake JSON API: canned answers by "METHOD path" (path with
// its query), and the bodies it was sent.
type setAPI struct {
	mu   sync.Mutex
	ans  map[string]setCanned
	got  map[string]string
	seen []string
}

func (a *setAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	key := r.Method + " " + r.URL.RequestURI()
	b, _ := io.ReadAll(r.Body)
	a.got[key] = string(b)
	a.seen = append(a.seen, key)
	c, ok := a.ans[key]
	if !ok {
		c = setCanned{404, `{"error":{"code":"not_found","message":"no such object"}}`}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(c.status)
	_, _ = io.WriteString(w, c.body)
}

// setWorld is a console over the fake API.
func setWorld(t *testing.T, ans map[string]setCanned) (*world, *setAPI) {
	t.Helper()
	api := &setAPI{ans: ans, got: map[string]string{}}
	w := &world{auth: newFakeAuth(), st: &fakeStore{}, audit: &fakeAudit{}}
	w.alerts = &fakeAlerts{st: w.st}
	c, err := New(Deps{Auth: w.auth, Store: w.st, Alerts: w.alerts, Audit: w.audit, API: api, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	c.Register(mux)
	w.h = mux
	return w, api
}

func jsonText(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// setAnswers are the fake API's reads of org acme, with hostile text in
// every string a user or device could have chosen.
func setAnswers() map[string]setCanned {
	x := jsonText(xss)
	return map[string]setCanned{
		"GET /api/v1/orgs/acme/users": {200, `{"users":[{"id":"u1","email":"ann@example.org","name":` + x + `,"totp_enrolled":true,"orgs":[{"org_id":"acme","role":"admin"}]},` +
			`{"id":"u2","email":"bob@example.org","name":"Bob","disabled":true,"orgs":[{"org_id":"acme","role":"auditor"}]}]}`},
		"GET /api/v1/orgs": {200, `{"orgs":[{"id":"acme","name":` + x + `,"role":"admin","require_webauthn":true}]}`},
		"GET /api/v1/orgs/acme/tokens": {200, `{"tokens":[{"id":"t1","name":` + x + `,"permissions":["alerts.read"],"created_by":"u1",` +
			`"created_at":"2026-11-01T00:00:00Z","expires_at":"2026-12-01T00:00:00Z"}]}`},
		"GET /api/v1/orgs/acme/escalation-policies": {200, `{"policies":[{"kind":"*","source":"default","policy":{"steps":[{"recipients":[{"channel":"console"}],"wait":"5m"}]}},` +
			`{"kind":"sos","source":"org","policy":{"steps":[{"name":` + x + `,"recipients":[{"channel":"email","address":"ann@example.org","name":` + x + `}],"wait":"2m","repeat":"30s"}]}}]}`},
		"GET /api/v1/orgs/acme/session-presets": {200, `{"presets":[{"name":"night","duration_s":28800,"checkin_interval_s":1800,"grace_s":300}]}`},
		"GET /api/v1/orgs/acme/reports/response?month=2026-11": {200, `{"org_id":"acme","month":"2026-11","time_zone":"UTC","from":"2026-11-01T00:00:00Z","to":"2026-12-01T00:00:00Z",` +
			`"total":{"kind":"total","alerts":1,"raised":1,"acknowledged_within":[{"within_s":10,"count":1,"share":1},{"within_s":40,"count":1,"share":1},{"within_s":60,"count":1,"share":1},{"within_s":180,"count":1,"share":1}],"time_to_receive":{"n":1,"p50_s":1,"p90_s":1,"p99_s":1},` +
			`"targets":[{"standard":"BS 8484","within_s":10,"want":0.8,"got":1,"met":true}]},` +
			`"kinds":[{"kind":"=HYPERLINK(\"http://evil\")","alerts":1,"raised":1,"acknowledged_within":[{"within_s":10,"count":1,"share":1},{"within_s":40,"count":1,"share":1},{"within_s":60,"count":1,"share":1},{"within_s":180,"count":1,"share":1}]}]}`},
		"GET /api/v1/orgs/acme/reports/response?month=nope": {400, `{"error":{"code":"invalid","field":"month","message":"want a month as YYYY-MM, e.g. 2026-11"}}`},
		"GET /api/v1/orgs/acme/audit": {200, `{"entries":[{"seq":7,"at":"2026-11-29T09:00:00Z","org_id":"acme","actor":` + x + `,"action":"user.invite",` +
			`"object_type":"user","object_id":` + x + `,"outcome":"ok","severity":"info","details":{"name":` + x + `}}],"next_after":7}`},
		"GET /api/v1/orgs/acme/audit?limit=1": {200, `{"entries":[{"seq":7,"at":"2026-11-29T09:00:00Z","org_id":"acme","actor":"u1","action":"a",` +
			`"outcome":"ok","severity":"info","details":{}}],"next_after":7}`},
	}
}

// TestSettingsPagesRender renders every page of the family as an admin:
// the strict CSP, no inline script or style, hostile text escaped, write
// controls shown.
func TestSettingsPagesRender(t *testing.T) {
	w, _ := setWorld(t, setAnswers())
	tok := w.auth.session("acme", store.RoleAdmin, true)
	for _, tc := range []struct{ path, want string }{
		{"/console/acme/users", `id="invite-form"`},
		{"/console/acme/settings", `id="require-webauthn" name="require_webauthn" checked`},
		{"/console/acme/tokens", `id="token-form"`},
		{"/console/acme/policies", `id="policy-text-sos"`},
		{"/console/acme/presets", `id="preset-form"`},
		{"/console/acme/reports?month=2026-11", `id="chart-within" data-src="/console/acme/reports/data?month=2026-11"`},
		{"/console/acme/audit", `id="audit-filter"`},
	} {
		r := w.do(t, "GET", tc.path, tok, nil)
		if r.code != 200 {
			t.Errorf("%s: %d %s", tc.path, r.code, r.body)
			continue
		}
		checkPage(t, tc.path, r)
		if !strings.Contains(r.body, tc.want) {
			t.Errorf("%s: %q missing:\n%s", tc.path, tc.want, r.body)
		}
		if strings.Contains(r.body, xss) {
			t.Errorf("%s: unescaped %q", tc.path, xss)
		}
		if r.hdr.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: cache %q", tc.path, r.hdr.Get("Cache-Control"))
		}
	}
	r := w.do(t, "GET", "/console/acme/audit", tok, nil)
	if !strings.Contains(r.body, "&lt;img src=x onerror=alert(1)&gt;") || strings.Contains(r.body, `id="audit-next"`) {
		t.Errorf("audit page:\n%s", r.body)
	}
	r = w.do(t, "GET", "/console/acme/audit?limit=1", tok, nil)
	if !strings.Contains(r.body, `href="/console/acme/audit?after=7&amp;limit=1"`) {
		t.Errorf("audit next page link missing:\n%s", r.body)
	}
	r = w.do(t, "GET", "/console/acme/reports?month=nope", tok, nil)
	if r.code != 400 || !strings.Contains(r.body, `id="err-month"`) || strings.Contains(r.body, "chart-within") {
		t.Errorf("bad month: %d\n%s", r.code, r.body)
	}
}

// TestSettingsPagesAccess: signed out goes to sign-in; another
// organisation is 404; a role without the page's permission 403; a role
// that reads but does not write sees no write control and is refused
// every change before the API is asked.
func TestSettingsPagesAccess(t *testing.T) {
	w, api := setWorld(t, setAnswers())
	pages := []string{"/console/acme/users", "/console/acme/settings", "/console/acme/tokens", "/console/acme/policies",
		"/console/acme/presets", "/console/acme/reports", "/console/acme/reports/data", "/console/acme/reports/csv", "/console/acme/audit"}
	for _, p := range pages {
		if r := w.do(t, "GET", p, "", nil); r.code != http.StatusSeeOther || r.hdr.Get("Location") != "/" {
			t.Errorf("signed out %s: %d", p, r.code)
		}
	}
	other := w.auth.session("beta", store.RoleAdmin, true)
	for _, p := range pages {
		if r := w.do(t, "GET", p, other, nil); r.code != 404 {
			t.Errorf("other org %s: %d", p, r.code)
		}
	}
	worker := w.auth.session("acme", store.RoleWorker, true)
	for _, p := range []string{"/console/acme/presets", "/console/acme/users"} {
		if r := w.do(t, "GET", p, worker, nil); r.code != 403 {
			t.Errorf("worker %s: %d", p, r.code)
		}
	}
	sup := w.auth.session("acme", store.RoleSupervisor, true)
	for _, p := range []string{"/console/acme/tokens", "/console/acme/audit", "/console/acme/settings"} {
		if r := w.do(t, "GET", p, sup, nil); r.code != 403 {
			t.Errorf("supervisor %s: %d", p, r.code)
		}
	}
	for _, p := range []string{"/console/acme/users", "/console/acme/policies", "/console/acme/presets"} {
		r := w.do(t, "GET", p, sup, nil)
		if r.code != 200 {
			t.Errorf("supervisor %s: %d", p, r.code)
		}
		for _, bad := range []string{`<form method="post" action="/console/acme/users`, `policy-form`, `id="preset-form"`, "org-settings-link"} {
			if strings.Contains(r.body, bad) {
				t.Errorf("supervisor %s: write control %q shown", p, bad)
			}
		}
	}
	api.seen = nil
	for _, p := range []string{"/console/acme/users", "/console/acme/users/u1/role", "/console/acme/users/u1/disable", "/console/acme/users/u1/remove",
		"/console/acme/tokens", "/console/acme/tokens/t1/revoke", "/console/acme/policies/sos", "/console/acme/settings"} {
		if r := w.do(t, "POST", p, sup, url.Values{"role": {"admin"}}); r.code != 403 {
			t.Errorf("supervisor POST %s: %d", p, r.code)
		}
	}
	if len(api.seen) != 0 {
		t.Errorf("the API was asked: %v", api.seen)
	}
	// A cross-site POST is refused before anything.
	admin := w.auth.session("acme", store.RoleAdmin, true)
	if r := w.do(t, "POST", "/console/acme/tokens", admin, url.Values{"name": {"x"}}, "Sec-Fetch-Site", "cross-site"); r.code != 403 {
		t.Errorf("cross-site: %d", r.code)
	}
}

// TestSettingsPagesForms: what the forms send to the API, and the API's
// field errors shown next to their fields.
func TestSettingsPagesForms(t *testing.T) {
	ans := setAnswers()
	ans["POST /api/v1/orgs/acme/tokens"] = setCanned{400, `{"error":{"code":"invalid","field":"permissions","message":"you do not hold audit.read"}}`}
	ans["PUT /api/v1/orgs/acme/escalation-policies/sos"] = setCanned{400, `{"error":{"code":"invalid","field":"steps[0].wait","message":"1s: want 10s to 24h0m0s"}}`}
	ans["PUT /api/v1/orgs/acme/session-presets/night"] = setCanned{200, `{}`}
	ans["POST /api/v1/orgs/acme/users"] = setCanned{201, `{"user":{"id":"u3"},"invite_token":"vgi_secret"}`}
	ans["DELETE /api/v1/orgs/acme/users/u1"] = setCanned{409, `{"error":{"code":"last_admin","message":"an organisation keeps at least one admin"}}`}
	w, api := setWorld(t, ans)
	tok := w.auth.session("acme", store.RoleAdmin, true)

	r := w.do(t, "POST", "/console/acme/tokens", tok, url.Values{"name": {xss}, "permissions": {"alerts.read", "audit.read"}, "expires_in": {"168h"}})
	if r.code != 400 || !strings.Contains(r.body, `<span class="error" id="err-permissions">you do not hold audit.read</span>`) ||
		!strings.Contains(r.body, `id="perm-audit.read" name="permissions" value="audit.read" checked`) {
		t.Errorf("token refused: %d\n%s", r.code, r.body)
	}
	if got := api.got["POST /api/v1/orgs/acme/tokens"]; got != `{"expires_in":"168h","name":"<img src=x onerror=alert(1)>","permissions":["alerts.read","audit.read"]}` &&
		got != `{"expires_in":"168h","name":"\u003cimg src=x onerror=alert(1)\u003e","permissions":["alerts.read","audit.read"]}` {
		t.Errorf("token body %s", got)
	}

	bad := `{"steps":[{"recipients":[{"channel":"console"}],"wait":"1s"}]}`
	r = w.do(t, "POST", "/console/acme/policies/sos", tok, url.Values{"policy": {bad}})
	if r.code != 400 || !strings.Contains(r.body, `<code class="field">steps[0].wait</code>: 1s: want 10s to 24h0m0s`) ||
		!strings.Contains(r.body, `&#34;wait&#34;:&#34;1s&#34;`) || !strings.Contains(r.body, `<details open>`) {
		t.Errorf("policy refused: %d\n%s", r.code, r.body)
	}
	if got := api.got["PUT /api/v1/orgs/acme/escalation-policies/sos"]; got != bad {
		t.Errorf("policy body %s", got)
	}
	r = w.do(t, "POST", "/console/acme/policies/a.b", tok, url.Values{"policy": {bad}})
	if r.code != 404 {
		t.Errorf("policy of kind a.b: %d", r.code)
	}

	r = w.do(t, "POST", "/console/acme/presets", tok, url.Values{"name": {"night"}, "duration": {"8h"}, "checkin_interval": {"30m"}})
	if r.code != http.StatusSeeOther {
		t.Errorf("preset: %d %s", r.code, r.body)
	}
	if got := api.got["PUT /api/v1/orgs/acme/session-presets/night"]; got != `{"checkin_interval":"30m","duration":"8h","grace":"0s"}` {
		t.Errorf("preset body %s", got)
	}
	r = w.do(t, "POST", "/console/acme/presets", tok, url.Values{"name": {"../x"}, "duration": {"8h"}})
	if r.code != 400 || !strings.Contains(r.body, `id="err-name"`) {
		t.Errorf("preset with a bad name: %d", r.code)
	}

	r = w.do(t, "POST", "/console/acme/users", tok, url.Values{"email": {"c@example.org"}, "name": {"C"}, "role": {"responder"}})
	if r.code != 201 || !strings.Contains(r.body, `<code id="invite-secret">vgi_secret</code>`) {
		t.Errorf("invite: %d\n%s", r.code, r.body)
	}
	r = w.do(t, "POST", "/console/acme/users/u1/remove", tok, nil)
	if r.code != 409 || !strings.Contains(r.body, `id="page-error">an organisation keeps at least one admin`) {
		t.Errorf("remove last admin: %d\n%s", r.code, r.body)
	}
}
