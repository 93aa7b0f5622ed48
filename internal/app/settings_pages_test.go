package app_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"vigil/internal/auth"
	"vigil/internal/store"
)

const (
	setXSSImg = `<img src=x onerror=alert(1)>`
	setXSSSVG = `"><svg onload=alert(1)>`
)

// setPost sends a console form (urlencoded, same-origin: no Origin
// header, as a plain HTTP client) and does not follow a redirect.
func (b *browser) setPost(path string, v url.Values) reply {
	b.t.Helper()
	b.header.Set("Content-Type", "application/x-www-form-urlencoded")
	defer b.header.Del("Content-Type")
	b.hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	defer func() { b.hc.CheckRedirect = nil }()
	return b.do("POST", path, v.Encode())
}

// setMemberSession adds a user with role in org and a signed-in session
// (second factor done) and returns a browser holding its cookie.
func (w *accessWorld) setMemberSession(t *testing.T, id, org string, role store.Role) *browser {
	t.Helper()
	ctx := context.Background()
	st := w.a.Store()
	now := w.clk.Now()
	if err := st.CreateUser(ctx, store.User{ID: id, Email: id + "@example.org", Name: "User " + id, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutMembership(ctx, store.Membership{UserID: id, OrgID: org, Role: role, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	tok := hex.EncodeToString(raw)
	if err := st.CreateWebSession(ctx, store.WebSession{IDHash: auth.HashToken(tok), UserID: id, CreatedAt: now, LastSeenAt: now,
		ExpiresAt: now.Add(time.Hour), MFAAt: now, MFAMethod: "totp"}); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, w.a)
	b.cookies["__Host-vigil_session"] = &http.Cookie{Name: "__Host-vigil_session", Value: tok}
	return b
}

// userID finds a user of acme by e-mail through the API.
func setUserID(t *testing.T, admin *browser, email string) (id, role string) {
	t.Helper()
	r := admin.do("GET", "/api/v1/orgs/acme/users", "")
	for _, u := range r.json(t)["users"].([]any) {
		m := u.(map[string]any)
		if m["email"] == email {
			role := ""
			if orgs, ok := m["orgs"].([]any); ok && len(orgs) > 0 {
				role, _ = orgs[0].(map[string]any)["role"].(string)
			}
			return m["id"].(string), role
		}
	}
	t.Fatalf("no user %s in %s", email, r.body)
	return "", ""
}

func setHas(t *testing.T, what string, r reply, want ...string) {
	t.Helper()
	for _, s := range want {
		if !strings.Contains(string(r.body), s) {
			t.Errorf("%s: %q missing (status %d)\n%s", what, s, r.status, r.body)
		}
	}
}

func setHasNot(t *testing.T, what string, r reply, bad ...string) {
	t.Helper()
	for _, s := range bad {
		if strings.Contains(string(r.body), s) {
			t.Errorf("%s: %q present (status %d)", what, s, r.status)
		}
	}
}

var setTokenRe = regexp.MustCompile(`vgt_[A-Za-z0-9_-]+`)

// TestSettingsPagesUsersAndTokens: an admin invites a user (a hostile
// name is shown escaped), changes the role, is refused removing the last
// admin, creates an API token shown exactly once that works on the API,
// and revokes it.
func TestSettingsPagesUsersAndTokens(t *testing.T) {
	w := newAccessWorld(t)
	admin, _, _ := w.enrolledAdmin(t)
	if r := admin.do("POST", "/api/v1/orgs", `{"id":"acme","name":"Acme Care"}`); r.status != 201 {
		t.Fatalf("create org: %d %s", r.status, r.body)
	}

	r := admin.do("GET", "/console/acme/users", "")
	if r.status != 200 || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("users page: %d %v", r.status, r.header)
	}
	setHas(t, "users page", r, "Ada Admin", `id="invite-form"`, `href="/console/acme/settings"`, `aria-current="page"`)

	// A bad invitation: the API's field error next to the field, the
	// values kept.
	r = admin.setPost("/console/acme/users", url.Values{"email": {"not-an-address"}, "name": {"Eve"}, "role": {"responder"}})
	if r.status != 400 {
		t.Fatalf("bad invite: %d", r.status)
	}
	setHas(t, "bad invite", r, `id="err-email"`, `value="not-an-address"`)

	r = admin.setPost("/console/acme/users", url.Values{"email": {"eve@example.org"}, "name": {setXSSImg}, "role": {"responder"}})
	if r.status != 201 {
		t.Fatalf("invite: %d %s", r.status, r.body)
	}
	setHas(t, "invite", r, `id="invite-secret"`, "eve@example.org", "&lt;img src=x onerror=alert(1)&gt;")
	setHasNot(t, "invite", r, setXSSImg)
	eve, role := setUserID(t, admin, "eve@example.org")
	if role != "responder" {
		t.Errorf("invited as %q", role)
	}

	r = admin.setPost("/console/acme/users/"+eve+"/role", url.Values{"role": {"supervisor"}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/console/acme/users?done=role" {
		t.Fatalf("change role: %d %v", r.status, r.header)
	}
	if _, role := setUserID(t, admin, "eve@example.org"); role != "supervisor" {
		t.Errorf("role now %q", role)
	}
	if r = admin.setPost("/console/acme/users/"+eve+"/disable", nil); r.status != http.StatusSeeOther {
		t.Errorf("disable: %d %s", r.status, r.body)
	}
	r = admin.do("GET", "/console/acme/users?done=disable", "")
	setHas(t, "after disable", r, "User disabled", `action="/console/acme/users/`+eve+`/enable"`)
	if r = admin.setPost("/console/acme/users/"+eve+"/enable", nil); r.status != http.StatusSeeOther {
		t.Errorf("enable: %d %s", r.status, r.body)
	}

	// The last admin stays: the refusal is shown on the page.
	ada, _ := setUserID(t, admin, "ada@example.org")
	r = admin.setPost("/console/acme/users/"+ada+"/remove", nil)
	if r.status != http.StatusConflict {
		t.Fatalf("remove last admin: %d", r.status)
	}
	setHas(t, "remove last admin", r, `id="page-error"`, "at least one admin")
	if r = admin.setPost("/console/acme/users/"+eve+"/remove", nil); r.status != http.StatusSeeOther {
		t.Errorf("remove: %d %s", r.status, r.body)
	}

	// Tokens: a bad one names its field; a good one is shown once.
	r = admin.do("GET", "/console/acme/tokens", "")
	setHas(t, "tokens page", r, `id="token-form"`, `value="alerts.read"`, `value="audit.read"`)
	r = admin.setPost("/console/acme/tokens", url.Values{"name": {"no perms"}, "expires_in": {"720h"}})
	if r.status != 400 {
		t.Fatalf("token without permissions: %d", r.status)
	}
	setHas(t, "token without permissions", r, `id="err-permissions"`, `value="no perms"`)

	r = admin.setPost("/console/acme/tokens", url.Values{"name": {setXSSSVG}, "permissions": {"alerts.read", "reports.read"}, "expires_in": {"168h"}})
	if r.status != 201 || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("create token: %d %v", r.status, r.header)
	}
	secret := setTokenRe.FindString(string(r.body))
	if secret == "" {
		t.Fatalf("no token shown:\n%s", r.body)
	}
	setHas(t, "create token", r, "&#34;&gt;&lt;svg onload=alert(1)&gt;")
	setHasNot(t, "create token", r, "<svg")

	api := newBrowser(t, w.a)
	api.header.Set("Authorization", "Bearer "+secret)
	if r := api.do("GET", "/api/v1/alerts?org=acme", ""); r.status != 200 {
		t.Fatalf("the new token on the API: %d %s", r.status, r.body)
	}

	r = admin.do("GET", "/console/acme/tokens", "")
	setHasNot(t, "tokens page again", r, secret, "<svg")
	setHas(t, "tokens page again", r, "alerts.read, reports.read")
	id := strings.SplitN(strings.TrimPrefix(secret, "vgt_"), "_", 2)[0]
	if r = admin.setPost("/console/acme/tokens/"+id+"/revoke", nil); r.status != http.StatusSeeOther {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	if r := api.do("GET", "/api/v1/alerts?org=acme", ""); r.status != 401 {
		t.Errorf("revoked token on the API: %d", r.status)
	}
	r = admin.do("GET", "/console/acme/tokens?done=revoke", "")
	setHas(t, "after revoke", r, "Token revoked", "revoked 2026-")
}

// TestSettingsPagesPolicyPresetsOrg: the escalation editor shows the
// API's field error for a bad step and keeps the text, then saves a good
// policy; presets and the organisation's passkey setting save through the
// API.
func TestSettingsPagesPolicyPresetsOrg(t *testing.T) {
	w := newAccessWorld(t)
	admin, _, _ := w.enrolledAdmin(t)
	if r := admin.do("POST", "/api/v1/orgs", `{"id":"acme","name":"Acme Care"}`); r.status != 201 {
		t.Fatalf("create org: %d %s", r.status, r.body)
	}
	r := admin.do("GET", "/console/acme/policies", "")
	if r.status != 200 {
		t.Fatalf("policies: %d", r.status)
	}
	setHas(t, "policies", r, "built-in default", `id="policy-text-sos"`, `action="/console/acme/policies/*"`, "console")

	bad := `{"steps":[{"name":"first","recipients":[{"channel":"console"}],"wait":"1s"}]}`
	r = admin.setPost("/console/acme/policies/sos", url.Values{"policy": {bad}})
	if r.status != 400 {
		t.Fatalf("bad policy: %d", r.status)
	}
	setHas(t, "bad policy", r, `id="policy-error-sos"`, "steps[0].wait", "&#34;wait&#34;:&#34;1s&#34;")

	r = admin.setPost("/console/acme/policies/sos", url.Values{"policy": {"{not json"}})
	setHas(t, "not JSON", r, "not valid JSON")

	good := `{"steps":[{"name":"first","recipients":[{"channel":"console"},{"channel":"email","role":"supervisor"}],"wait":"2m","repeat":"30s"}]}`
	r = admin.setPost("/console/acme/policies/sos", url.Values{"policy": {good}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("good policy: %d %s", r.status, r.body)
	}
	r = admin.do("GET", "/api/v1/orgs/acme/escalation-policies", "")
	if !strings.Contains(string(r.body), `{"kind":"sos","source":"org"`) {
		t.Errorf("policy not saved: %s", r.body)
	}
	r = admin.do("GET", "/console/acme/policies?saved=sos", "")
	setHas(t, "policies after save", r, "organisation's policy", "email: every supervisor", "2m0s", "Saved.")

	// Presets.
	r = admin.setPost("/console/acme/presets", url.Values{"name": {"night"}, "duration": {"banana"}, "checkin_interval": {"30m"}, "grace": {"5m"}})
	if r.status != 400 {
		t.Fatalf("bad preset: %d", r.status)
	}
	setHas(t, "bad preset", r, `id="err-duration"`, `value="banana"`)
	r = admin.setPost("/console/acme/presets", url.Values{"name": {"night"}, "duration": {"30h"}, "checkin_interval": {"30m"}, "grace": {"5m"}})
	if r.status != 400 {
		t.Fatalf("too long preset: %d", r.status)
	}
	setHas(t, "too long preset", r, `id="err-duration"`, "at most 24h")
	r = admin.setPost("/console/acme/presets", url.Values{"name": {"night"}, "duration": {"8h"}, "checkin_interval": {"30m"}, "grace": {"5m"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("preset: %d %s", r.status, r.body)
	}
	r = admin.do("GET", "/console/acme/presets?edit=night", "")
	setHas(t, "presets", r, `id="preset-night"`, "8h0m0s", "30m0s", `value="8h0m0s"`, "Change night")

	// Organisation settings.
	r = admin.do("GET", "/console/acme/settings", "")
	setHas(t, "settings", r, "Acme Care", `id="require-webauthn"`)
	setHasNot(t, "settings", r, "checked")
	if r = admin.setPost("/console/acme/settings", url.Values{"require_webauthn": {"on"}}); r.status != http.StatusSeeOther {
		t.Fatalf("settings: %d %s", r.status, r.body)
	}
	r = admin.do("GET", "/api/v1/orgs", "")
	if !strings.Contains(string(r.body), `"require_webauthn":true`) {
		t.Errorf("setting not saved: %s", r.body)
	}
	if r = admin.setPost("/console/acme/settings", url.Values{}); r.status != http.StatusSeeOther {
		t.Fatalf("settings off: %d %s", r.status, r.body)
	}
	r = admin.do("GET", "/console/acme/settings?done=saved", "")
	setHas(t, "settings off", r, "Saved.")
	setHasNot(t, "settings off", r, " checked")
}

// TestSettingsPagesRoles: an auditor reads the pages and the audit log
// but sees no write control and is refused every change (403); another
// organisation's admin meets 404; hostile text in the audit details is
// shown escaped.
func TestSettingsPagesRoles(t *testing.T) {
	w := newAccessWorld(t)
	admin, _, _ := w.enrolledAdmin(t)
	for _, o := range []string{`{"id":"acme","name":"Acme Care"}`, `{"id":"beta","name":"Beta"}`} {
		if r := admin.do("POST", "/api/v1/orgs", o); r.status != 201 {
			t.Fatalf("create org: %d %s", r.status, r.body)
		}
	}
	auditor := w.setMemberSession(t, "u-auditor", "acme", store.RoleAuditor)
	other := w.setMemberSession(t, "u-other", "beta", store.RoleAdmin)

	for _, page := range []string{"/console/acme/users", "/console/acme/tokens", "/console/acme/policies", "/console/acme/presets",
		"/console/acme/reports?month=2026-11", "/console/acme/audit"} {
		r := auditor.do("GET", page, "")
		if r.status != 200 {
			t.Errorf("auditor GET %s: %d", page, r.status)
		}
		setHasNot(t, "auditor "+page, r, `id="invite-form"`, "Change role", `id="token-form"`, "Revoke", `class="stack policy-form"`, `id="preset-form"`, "org-settings-link")
		if r := other.do("GET", page, ""); r.status != 404 {
			t.Errorf("other org's admin GET %s: %d", page, r.status)
		}
	}
	if r := auditor.do("GET", "/console/acme/settings", ""); r.status != 403 {
		t.Errorf("auditor settings: %d", r.status)
	}
	posts := map[string]url.Values{
		"/console/acme/users":                  {"email": {"x@example.org"}, "name": {"X"}, "role": {"admin"}},
		"/console/acme/users/u-auditor/role":   {"role": {"admin"}},
		"/console/acme/users/u-auditor/remove": nil,
		"/console/acme/tokens":                 {"name": {"t"}, "permissions": {"audit.read"}, "expires_in": {"720h"}},
		"/console/acme/policies/sos":           {"policy": {`{"steps":[]}`}},
		"/console/acme/presets":                {"name": {"x"}, "duration": {"1h"}},
		"/console/acme/settings":               {"require_webauthn": {"on"}},
	}
	for path, v := range posts {
		if r := auditor.setPost(path, v); r.status != 403 {
			t.Errorf("auditor POST %s: %d", path, r.status)
		}
		if r := other.setPost(path, v); r.status != 404 {
			t.Errorf("other org's admin POST %s: %d", path, r.status)
		}
	}
	if _, role := setUserID(t, admin, "u-auditor@example.org"); role != "auditor" {
		t.Errorf("auditor's role now %q", role)
	}

	// Hostile text reaches the audit log (the browse records its filter)
	// and comes back escaped.
	if r := auditor.do("GET", "/console/acme/audit?action="+url.QueryEscape(setXSSImg), ""); r.status != 200 {
		t.Fatalf("filtered audit: %d", r.status)
	}
	r := auditor.do("GET", "/console/acme/audit?action=audit.read", "")
	setHas(t, "audit page", r, `class="action">audit.read`, "&lt;img src=x onerror=alert(1)&gt;", `id="audit-filter"`)
	setHasNot(t, "audit page", r, setXSSImg)
	r = auditor.do("GET", "/console/acme/audit?limit=2", "")
	setHas(t, "audit paging", r, `id="audit-next"`, "after=")
	r = auditor.do("GET", "/console/acme/audit?limit=5000", "")
	if r.status != 400 {
		t.Errorf("bad limit: %d", r.status)
	}
	setHas(t, "bad limit", r, `id="err-limit"`)
}
