package console

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"vigil/internal/alert"
	"vigil/internal/audit"
	"vigil/internal/auth"
	"vigil/internal/store"
)

const xss = `<img src=x onerror=alert(1)>`

// fakeAuth signs in ada@example.org with "pw" and code "123456"; sessions
// are tokens mapped to principals.
type fakeAuth struct {
	mu       sync.Mutex
	sessions map[string]*auth.Principal
	next     int
}

func newFakeAuth() *fakeAuth { return &fakeAuth{sessions: map[string]*auth.Principal{}} }

// session adds a session for a user with role in org (mfa: second factor
// done) and returns its token.
func (f *fakeAuth) session(org string, role store.Role, mfa bool) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	tok := "tok" + string(rune('a'+f.next))
	p := auth.NewPrincipal(store.User{ID: "u-" + string(role), Email: "ada@example.org", Name: "Ada " + xss},
		[]store.Membership{{UserID: "u-" + string(role), OrgID: org, Role: role}}, nil)
	p.MFA = mfa
	p.SessionHash = []byte(tok)
	f.sessions[tok] = p
	return tok
}

func (f *fakeAuth) Login(_ context.Context, email, pw, _, _ string) (auth.LoginResult, error) {
	if email != "ada@example.org" || pw != "pw" {
		return auth.LoginResult{}, auth.ErrBadCredentials
	}
	return auth.LoginResult{Token: f.session("acme", store.RoleSupervisor, false)}, nil
}

func (f *fakeAuth) VerifyTOTP(_ context.Context, p *auth.Principal, code, _ string) (string, error) {
	if code != "123456" {
		return "", auth.ErrBadCode
	}
	f.mu.Lock()
	delete(f.sessions, string(p.SessionHash))
	f.mu.Unlock()
	return f.session("acme", store.RoleSupervisor, true), nil
}

func (f *fakeAuth) Authenticate(_ context.Context, tok string) (*auth.Principal, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.sessions[tok]; ok {
		return p, nil
	}
	return nil, auth.ErrUnauthenticated
}

func (f *fakeAuth) Logout(_ context.Context, p *auth.Principal, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.sessions, string(p.SessionHash))
	return nil
}

func (f *fakeAuth) DeviceCookieFor(*auth.Principal) string { return "" }
func (f *fakeAuth) Config() auth.Config                    { return auth.Config{MaxLifetime: time.Hour} }

type fakeStore struct {
	alerts map[string]store.Alert
	people map[string]store.Person
}

func (s *fakeStore) GetAlert(_ context.Context, id string) (store.Alert, error) {
	if al, ok := s.alerts[id]; ok {
		return al, nil
	}
	return store.Alert{}, store.ErrNotFound
}

func (s *fakeStore) ListAlerts(_ context.Context, f store.AlertFilter) ([]store.Alert, error) {
	var out []store.Alert
	for _, id := range []string{"al_1", "al_2", "al_other"} {
		if al, ok := s.alerts[id]; ok && al.OrgID == f.OrgID && al.State.Open() {
			out = append(out, al)
		}
	}
	return out, nil
}

func (s *fakeStore) GetPerson(_ context.Context, id string) (store.Person, error) {
	if p, ok := s.people[id]; ok {
		return p, nil
	}
	return store.Person{}, store.ErrNotFound
}

type fakeAlerts struct {
	st  *fakeStore
	got []string // "id by"
}

func (a *fakeAlerts) Acknowledge(_ context.Context, id, by, _ string) (store.Alert, error) {
	al := a.st.alerts[id]
	if al.State != store.AlertRaised {
		return al, alert.ErrIllegal
	}
	al.State = store.AlertAcknowledged
	a.st.alerts[id] = al
	a.got = append(a.got, id+" "+by)
	return al, nil
}

type fakeAudit struct {
	fail    bool
	entries []audit.Entry
}

func (a *fakeAudit) Record(_ context.Context, e audit.Entry) error {
	if a.fail {
		return errors.New("audit: disk full")
	}
	a.entries = append(a.entries, e)
	return nil
}

type world struct {
	auth   *fakeAuth
	st     *fakeStore
	alerts *fakeAlerts
	audit  *fakeAudit
	h      http.Handler
}

func newWorld(t *testing.T) *world {
	t.Helper()
	raised := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	st := &fakeStore{
		alerts: map[string]store.Alert{
			"al_1":     {ID: "al_1", OrgID: "acme", PersonID: "p1", DeviceID: "d1", Kind: "sos", Severity: "critical", State: store.AlertRaised, RaisedAt: raised},
			"al_2":     {ID: "al_2", OrgID: "acme", DeviceID: xss, Kind: xss, Severity: "high", State: store.AlertAcknowledged, RaisedAt: raised},
			"al_other": {ID: "al_other", OrgID: "other", PersonID: "p9", Kind: "sos", Severity: "critical", State: store.AlertRaised, RaisedAt: raised},
		},
		people: map[string]store.Person{"p1": {ID: "p1", OrgID: "acme", Name: xss}},
	}
	w := &world{auth: newFakeAuth(), st: st, alerts: &fakeAlerts{st: st}, audit: &fakeAudit{}}
	c, err := New(Deps{Auth: w.auth, Store: w.st, Alerts: w.alerts, Audit: w.audit, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	c.Register(mux)
	w.h = mux
	return w
}

type resp struct {
	code int
	body string
	hdr  http.Header
}

// do sends a request as a same-origin browser would (Sec-Fetch-Site), with
// the session token tok ("" for none).
func (w *world) do(t *testing.T, method, target, tok string, form url.Values, hdr ...string) resp {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, "https://vigil.example"+target, body)
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	if tok != "" {
		r.AddCookie(&http.Cookie{Name: sessionCookie, Value: tok})
	}
	rec := httptest.NewRecorder()
	w.h.ServeHTTP(rec, r)
	return resp{rec.Code, rec.Body.String(), rec.Header()}
}

// checkPage asserts what every console page carries: the strict CSP and
// no inline script, event handler or style.
func checkPage(t *testing.T, what string, r resp) {
	t.Helper()
	got := r.hdr.Get("Content-Security-Policy")
	nm := regexp.MustCompile(`'nonce-([A-Za-z0-9+/=]{24})' 'strict-dynamic'`).FindStringSubmatch(got)
	if nm == nil || strings.Replace(got, " '"+"nonce-"+nm[1]+"' 'strict-dynamic'", "", 1) != CSP {
		t.Errorf("%s: CSP %q, want %q with a script nonce", what, got, CSP)
	}
	nonce := ""
	if nm != nil {
		nonce = nm[1]
	}
	if got := r.hdr.Get("Content-Type"); got != "text/html; charset=utf-8" {
		t.Errorf("%s: content type %q", what, got)
	}
	for _, m := range regexp.MustCompile(`(?is)<script[^>]*>.*?</script>`).FindAllString(r.body, -1) {
		if !regexp.MustCompile(`^<script nonce="` + regexp.QuoteMeta(nonce) + `" src="/static/[^"]+" defer></script>$`).MatchString(m) {
			t.Errorf("%s: inline or unexpected script, or not this answer's nonce: %q", what, m)
		}
	}
	if m := regexp.MustCompile(`(?i)<[a-z][a-z0-9-]*(?:\s+[a-z-]+(?:="[^"]*"|='[^']*')?)*\s+(?:on[a-z]+|style)\s*=|javascript:|<style`).FindString(r.body); m != "" {
		t.Errorf("%s: inline handler or style %q", what, m)
	}
}

func TestSignIn(t *testing.T) {
	w := newWorld(t)
	r := w.do(t, "GET", "/", "", nil)
	if r.code != 200 || !strings.Contains(r.body, `action="/console/login"`) {
		t.Fatalf("sign-in page: %d %s", r.code, r.body)
	}
	checkPage(t, "sign-in page", r)

	r = w.do(t, "POST", "/console/login", "", url.Values{"email": {xss}, "password": {"wrong"}})
	if r.code != 401 || !strings.Contains(r.body, "Wrong e-mail or password.") {
		t.Errorf("wrong password: %d %s", r.code, r.body)
	}
	if strings.Contains(r.body, xss) || !strings.Contains(r.body, `value="&lt;img src=x onerror=alert(1)&gt;"`) {
		t.Errorf("the e-mail typed is not escaped: %s", r.body)
	}
	checkPage(t, "wrong password", r)

	// A form posted from another site is refused (CSRF).
	r = w.do(t, "POST", "/console/login", "", url.Values{"email": {"ada@example.org"}, "password": {"pw"}}, "Sec-Fetch-Site", "cross-site")
	if r.code != 403 {
		t.Errorf("cross-site login: %d", r.code)
	}

	r = w.do(t, "POST", "/console/login", "", url.Values{"email": {"ada@example.org"}, "password": {"pw"}})
	if r.code != 303 || r.hdr.Get("Location") != "/" {
		t.Fatalf("login: %d %v", r.code, r.hdr)
	}
	tok := cookieOf(t, r)
	r = w.do(t, "GET", "/", tok, nil)
	if r.code != 200 || !strings.Contains(r.body, `action="/console/totp"`) {
		t.Fatalf("after the password, the code form: %d %s", r.code, r.body)
	}
	// Before the second factor, no console page.
	if r := w.do(t, "GET", "/console/acme", tok, nil); r.code != 303 {
		t.Errorf("console before the second factor: %d", r.code)
	}
	r = w.do(t, "POST", "/console/totp", tok, url.Values{"code": {"000000"}})
	if r.code != 401 || !strings.Contains(r.body, "Wrong or already used code") {
		t.Errorf("wrong code: %d %s", r.code, r.body)
	}
	r = w.do(t, "POST", "/console/totp", tok, url.Values{"code": {"123456"}})
	if r.code != 303 {
		t.Fatalf("code: %d %s", r.code, r.body)
	}
	tok = cookieOf(t, r)
	r = w.do(t, "GET", "/", tok, nil)
	if r.code != 200 || !strings.Contains(r.body, `href="/console/acme"`) {
		t.Fatalf("signed in: %d %s", r.code, r.body)
	}
	if strings.Contains(r.body, xss) {
		t.Errorf("the user's name is not escaped: %s", r.body)
	}
	checkPage(t, "organisations", r)

	r = w.do(t, "POST", "/console/logout", tok, url.Values{})
	if r.code != 303 || !strings.Contains(r.hdr.Get("Set-Cookie"), "Max-Age=0") {
		t.Errorf("logout: %d %v", r.code, r.hdr)
	}
	if r := w.do(t, "GET", "/", tok, nil); !strings.Contains(r.body, `action="/console/login"`) {
		t.Errorf("after logout the session still works")
	}
}

func cookieOf(t *testing.T, r resp) string {
	t.Helper()
	for _, c := range (&http.Response{Header: r.hdr}).Cookies() {
		if c.Name == sessionCookie {
			if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
				t.Errorf("session cookie %+v", c)
			}
			return c.Value
		}
	}
	t.Fatalf("no session cookie in %v", r.hdr)
	return ""
}

func TestAlarmListEscapes(t *testing.T) {
	w := newWorld(t)
	tok := w.auth.session("acme", store.RoleSupervisor, true)
	r := w.do(t, "GET", "/console/acme", tok, nil)
	if r.code != 200 {
		t.Fatalf("page: %d %s", r.code, r.body)
	}
	checkPage(t, "alarm list", r)
	if strings.Contains(r.body, "<img") {
		t.Errorf("a name or kind from users or devices reached the page unescaped:\n%s", r.body)
	}
	for _, want := range []string{
		`<tr id="alert-al_1" class="sev-critical state-raised">`,
		`&lt;img src=x onerror=alert(1)&gt; <span class="id">(p1)</span>`, // the person's name
		`<td class="kind">&lt;img src=x onerror=alert(1)&gt;</td>`,        // a kind
		`unassigned device &lt;img src=x onerror=alert(1)&gt;`,            // a device id
		`2026-11-29 09:00:00 UTC`,
		`action="/console/acme/alerts/al_1/acknowledge" hx-post="/console/acme/alerts/al_1/acknowledge"`,
		`data-feed="/api/v1/orgs/acme/feed" data-src="/console/acme/alerts"`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(r.body, "al_other") {
		t.Error("another organisation's alert is listed")
	}
	if n := strings.Count(r.body, ">Acknowledge</button>"); n != 1 {
		t.Errorf("%d Acknowledge buttons, want 1 (the acknowledged alert has none)", n)
	}
	if len(w.audit.entries) != 1 || w.audit.entries[0].Action != "alert.list" || w.audit.entries[0].Actor != "u-supervisor" {
		t.Errorf("audit %+v", w.audit.entries)
	}

	r = w.do(t, "GET", "/console/acme/alerts", tok, nil, "HX-Request", "true")
	if r.code != 200 || strings.Contains(r.body, "<html") || !strings.Contains(r.body, `id="alert-al_1"`) {
		t.Errorf("fragment: %d %s", r.code, r.body)
	}
}

func TestAccessDecisions(t *testing.T) {
	for _, tc := range []struct {
		name       string
		org        string
		role       store.Role
		method     string
		path       string
		want       int
		wantAcked  bool
		hxFragment bool
	}{
		{"another org's page", "other", store.RoleAdmin, "GET", "/console/acme", 404, false, false},
		{"another org's fragment", "other", store.RoleAdmin, "GET", "/console/acme/alerts", 404, false, false},
		{"worker sees only own person", "acme", store.RoleWorker, "GET", "/console/acme", 403, false, false},
		{"auditor reads", "acme", store.RoleAuditor, "GET", "/console/acme", 200, false, false},
		{"auditor may not respond", "acme", store.RoleAuditor, "POST", "/console/acme/alerts/al_1/acknowledge", 403, false, false},
		{"another org's admin acknowledges", "other", store.RoleAdmin, "POST", "/console/acme/alerts/al_1/acknowledge", 404, false, false},
		{"an alert of another org through acme's path", "acme", store.RoleAdmin, "POST", "/console/acme/alerts/al_other/acknowledge", 404, false, false},
		{"no such alert", "acme", store.RoleAdmin, "POST", "/console/acme/alerts/al_none/acknowledge", 404, false, false},
		{"responder acknowledges (form)", "acme", store.RoleResponder, "POST", "/console/acme/alerts/al_1/acknowledge", 303, true, false},
		{"supervisor acknowledges (htmx)", "acme", store.RoleSupervisor, "POST", "/console/acme/alerts/al_1/acknowledge", 200, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			tok := w.auth.session(tc.org, tc.role, true)
			var form url.Values
			var hdr []string
			if tc.method == "POST" {
				form = url.Values{}
			}
			if tc.hxFragment {
				hdr = []string{"HX-Request", "true"}
			}
			r := w.do(t, tc.method, tc.path, tok, form, hdr...)
			if r.code != tc.want {
				t.Fatalf("%s %s: %d, want %d\n%s", tc.method, tc.path, r.code, tc.want, r.body)
			}
			if got := len(w.alerts.got) == 1; got != tc.wantAcked {
				t.Errorf("acknowledged %v, want %v", w.alerts.got, tc.wantAcked)
			}
			if tc.wantAcked && w.alerts.got[0] != "al_1 u-"+string(tc.role) {
				t.Errorf("acknowledged as %q", w.alerts.got[0])
			}
			if tc.hxFragment && !strings.Contains(r.body, `<tr id="alert-al_1" class="sev-critical state-acknowledged">`) {
				t.Errorf("fragment after acknowledge:\n%s", r.body)
			}
			if r.code >= 400 {
				checkPage(t, "error page", r)
				if last := w.audit.entries[len(w.audit.entries)-1]; last.Outcome != "denied" {
					t.Errorf("denial not audited: %+v", w.audit.entries)
				}
			}
		})
	}
}

func TestAcknowledgeRefusals(t *testing.T) {
	w := newWorld(t)
	tok := w.auth.session("acme", store.RoleSupervisor, true)
	// Cross-site POST: refused before anything happens.
	r := w.do(t, "POST", "/console/acme/alerts/al_1/acknowledge", tok, url.Values{}, "Sec-Fetch-Site", "cross-site")
	if r.code != 403 || len(w.alerts.got) != 0 {
		t.Errorf("cross-site acknowledge: %d %v", r.code, w.alerts.got)
	}
	// Not signed in.
	if r := w.do(t, "POST", "/console/acme/alerts/al_1/acknowledge", "", url.Values{}); r.code != 401 {
		t.Errorf("anonymous acknowledge: %d", r.code)
	}
	// Already acknowledged: a notice, not an error.
	r = w.do(t, "POST", "/console/acme/alerts/al_2/acknowledge", tok, url.Values{}, "HX-Request", "true")
	if r.code != 200 || !strings.Contains(r.body, "already acknowledged or closed") {
		t.Errorf("second acknowledge: %d %s", r.code, r.body)
	}
	// The audit log down: nothing is read or changed.
	w.audit.fail = true
	if r := w.do(t, "GET", "/console/acme", tok, nil); r.code != 503 {
		t.Errorf("page with the audit log down: %d", r.code)
	}
	if r := w.do(t, "POST", "/console/acme/alerts/al_1/acknowledge", tok, url.Values{}); r.code != 503 || len(w.alerts.got) != 0 {
		t.Errorf("acknowledge with the audit log down: %d %v", r.code, w.alerts.got)
	}
}

func TestNotSignedIn(t *testing.T) {
	w := newWorld(t)
	if r := w.do(t, "GET", "/console/acme", "", nil); r.code != 303 || r.hdr.Get("Location") != "/" {
		t.Errorf("page: %d %v", r.code, r.hdr)
	}
	if r := w.do(t, "GET", "/console/acme/alerts", "", nil); r.code != 401 {
		t.Errorf("fragment: %d", r.code)
	}
	if r := w.do(t, "GET", "/console/acme", "forged", nil); r.code != 303 {
		t.Errorf("forged cookie: %d", r.code)
	}
	if r := w.do(t, "GET", "/console/", "", nil); r.code != 404 {
		t.Errorf("/console/: %d", r.code)
	}
}

func TestStatic(t *testing.T) {
	w := newWorld(t)
	page := w.do(t, "GET", "/", "", nil).body
	srcs := regexp.MustCompile(`(?:src|href)="(/static/[^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(srcs) != 3 {
		t.Fatalf("assets on the page: %v", srcs)
	}
	types := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
	for _, m := range srcs {
		u := strings.ReplaceAll(m[1], "&amp;", "&")
		r := w.do(t, "GET", u, "", nil)
		ext := u[strings.LastIndex(u, "."):strings.Index(u, "?")]
		if r.code != 200 || r.hdr.Get("Content-Type") != types[ext] || r.hdr.Get("Cache-Control") != "public, max-age=31536000, immutable" || len(r.body) == 0 {
			t.Errorf("%s: %d %v", u, r.code, r.hdr)
		}
		// Without the current hash: served, but revalidated.
		r = w.do(t, "GET", u[:strings.Index(u, "?")], "", nil)
		if r.code != 200 || r.hdr.Get("Cache-Control") != "no-cache" {
			t.Errorf("%s without hash: %d %v", u, r.code, r.hdr)
		}
	}
	for _, p := range []string{"/static/vendor/VERSIONS", "/static/nope.js", "/static/", "/static/vendor"} {
		if r := w.do(t, "GET", p, "", nil); r.code != 404 {
			t.Errorf("%s: %d, want 404", p, r.code)
		}
	}
	if r := w.do(t, "GET", "/static/../console.go", "", nil); r.code == 200 {
		t.Errorf("/static/../console.go served")
	}
}

// TestRoutesNeedSessionAndSameOrigin walks the console's allowlist: every
// route but the public ones serves nothing to an anonymous caller, and
// every POST from another site is refused before its handler runs.
func TestRoutesNeedSessionAndSameOrigin(t *testing.T) {
	for _, rt := range routes {
		method, p, _ := strings.Cut(rt.pattern, " ")
		p = strings.NewReplacer("{org}", "acme", "{id}", "al_1", "{$}", "").Replace(p)
		t.Run(rt.pattern, func(t *testing.T) {
			w := newWorld(t)
			var form url.Values
			if method == "POST" {
				form = url.Values{"email": {"ada@example.org"}, "password": {"pw"}, "code": {"123456"}}
			}
			if !rt.public {
				if r := w.do(t, method, p, "", form); r.code == 200 || len(w.alerts.got) != 0 {
					t.Errorf("anonymous %s %s: %d, acknowledged %v", method, p, r.code, w.alerts.got)
				}
			}
			if method == "POST" {
				tok := w.auth.session("acme", store.RoleAdmin, true)
				r := w.do(t, method, p, tok, form, "Sec-Fetch-Site", "cross-site")
				if r.code != 403 || len(w.alerts.got) != 0 {
					t.Errorf("cross-site %s %s: %d, acknowledged %v", method, p, r.code, w.alerts.got)
				}
			}
		})
	}
}

func TestLiveFeedOnlyWithFeedRead(t *testing.T) {
	w := newWorld(t)
	r := w.do(t, "GET", "/console/acme", w.auth.session("acme", store.RoleAuditor, true), nil)
	if r.code != 200 || strings.Contains(r.body, "data-feed") || !strings.Contains(r.body, "does not follow the live feed") {
		t.Errorf("auditor's page (no feed.read): %d %s", r.code, r.body)
	}
	r = w.do(t, "GET", "/console/acme/alerts", "", nil, "HX-Request", "true")
	if r.code != 401 || r.hdr.Get("HX-Redirect") != "/" {
		t.Errorf("expired session's fragment: %d %v", r.code, r.hdr)
	}
}

// TestScriptNonceFresh: every answer has its own script nonce.
func TestScriptNonceFresh(t *testing.T) {
	w := newWorld(t)
	a, b := w.do(t, "GET", "/", "", nil), w.do(t, "GET", "/", "", nil)
	na := regexp.MustCompile(`nonce="([^"]+)"`).FindStringSubmatch(a.body)
	nb := regexp.MustCompile(`nonce="([^"]+)"`).FindStringSubmatch(b.body)
	if na == nil || nb == nil || na[1] == nb[1] {
		t.Errorf("nonces %v and %v: want two different ones", na, nb)
	}
}

// TestRoutePermsComplete: every organisation route declares its
// permission in routePerms, and routePerms names no route that is gone.
func TestRoutePermsComplete(t *testing.T) {
	seen := map[string]bool{}
	for _, rt := range Routes() {
		seen[rt.Pattern] = true
		if _, ok := routePerms[rt.Pattern]; strings.Contains(rt.Pattern, "/console/{org}") && !ok {
			t.Errorf("route %s declares no permission in routePerms", rt.Pattern)
		}
	}
	for p := range routePerms {
		if !seen[p] {
			t.Errorf("routePerms names %s, which is not a route", p)
		}
	}
}
