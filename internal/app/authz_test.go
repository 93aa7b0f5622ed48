package app_test

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"vigil/internal/app"
	"vigil/internal/auth"
	"vigil/internal/store"
	"vigil/internal/vigiltest"
	"vigil/internal/web"
)

// authzWorld is two organisations, x and y, with a user of every role in
// x (signed in, second factor done), an admin of y, and fresh objects of x
// for every request, so a permitted DELETE cannot change what the next
// caller meets.
type authzWorld struct {
	t     *testing.T
	a     *app.App
	hc    *http.Client
	seq   int
	users map[string]string // caller name → user id
	dir   string            // the data directory
}

// callers are every role in x (provider staff assigned to x among them),
// an admin of y (another tenant), provider staff assigned only to y, and
// no one at all.
var callers = []string{"admin", "provider", "supervisor", "responder", "auditor", "worker", "carer", "other-org", "other-provider", "anonymous"}

func newAuthzWorld(t *testing.T) *authzWorld {
	cfg := vigiltest.Config(t)
	a := vigiltest.StartApp(t, cfg)
	w := &authzWorld{t: t, a: a, dir: cfg.DataDir, hc: &http.Client{Transport: &http.Transport{TLSClientConfig: vigiltest.ClientTLS(t, a)}},
		users: map[string]string{}}
	ctx := context.Background()
	st := a.Store()
	for _, o := range []string{"x", "y"} {
		if err := st.CreateOrg(ctx, store.Org{ID: o, Name: "Org " + o, CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []store.Person{{ID: "x-worker", OrgID: "x", Kind: store.PersonWorker, Name: "Wyn"},
		{ID: "x-other", OrgID: "x", Kind: store.PersonWorker, Name: "Otto"}} {
		if err := st.CreatePerson(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range callers {
		if c == "anonymous" {
			continue
		}
		org, role := "x", store.Role(c)
		switch c {
		case "other-org":
			org, role = "y", store.RoleAdmin
		case "other-provider":
			org, role = "y", store.RoleProvider
		}
		u := store.User{ID: "u-" + c, Email: c + "@example.org", Name: c, CreatedAt: time.Now(),
			Provider: c == "provider" || c == "other-provider"}
		if c == "worker" {
			u.PersonID = "x-worker"
		}
		if err := st.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		if err := st.PutMembership(ctx, store.Membership{UserID: u.ID, OrgID: org, Role: role, CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if c == "carer" {
			if err := st.LinkCarer(ctx, u.ID, "x-worker"); err != nil {
				t.Fatal(err)
			}
		}
		w.users[c] = u.ID
	}
	return w
}

// session signs caller in afresh (second factor done: how is other
// tests' business), so that a sign-out route cannot end the next call's.
func (w *authzWorld) session(caller string) string {
	w.t.Helper()
	uid, ok := w.users[caller]
	if !ok {
		return ""
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	tok := hex.EncodeToString(b)
	now := time.Now()
	if err := w.a.Store().CreateWebSession(context.Background(), store.WebSession{IDHash: auth.HashToken(tok), UserID: uid,
		CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour), MFAAt: now, MFAMethod: "totp"}); err != nil {
		w.t.Fatal(err)
	}
	return tok
}

// fixture makes fresh objects of org x for one request and returns the
// path parameters that name them.
func (w *authzWorld) fixture(person string) map[string]string {
	w.t.Helper()
	w.seq++
	n := fmt.Sprint(w.seq)
	ctx := context.Background()
	st := w.a.Store()
	now := time.Now()
	al := store.Alert{ID: "al-" + n, OrgID: "x", PersonID: person, Kind: "sos", Severity: "critical", State: store.AlertRaised,
		DedupKey: "sos:" + n, RaisedAt: now, CauseTime: now}
	if _, _, err := st.RaiseAlert(ctx, al, store.AlertEntry{At: now, Actor: "test", Action: "raised", Cause: "c" + n}); err != nil {
		w.t.Fatal(err)
	}
	// One active session per person: end the last fixture's.
	active, err := st.ListSessions(ctx, store.SessionFilter{OrgID: "x", PersonID: person, ActiveOnly: true})
	if err != nil {
		w.t.Fatal(err)
	}
	for _, s := range active {
		s.State, s.EndedAt, s.EndedBy = store.SessionEnded, now, "test"
		if _, err := st.UpdateSession(ctx, s); err != nil {
			w.t.Fatal(err)
		}
	}
	if err := st.CreateSession(ctx, store.Session{ID: "se-" + n, OrgID: "x", PersonID: person, StartedAt: now,
		ExpectedEnd: now.Add(time.Hour), LastCheckin: now, State: store.SessionActive}); err != nil {
		w.t.Fatal(err)
	}
	feature := `{"type":"Feature","id":"zo-` + n + `","properties":{"name":"Zone ` + n + `","rule":"must_stay_inside"},` +
		`"geometry":{"type":"Polygon","coordinates":[[[0,0],[0,1],[1,1],[0,0]]]}}`
	if err := st.PutGeofence(ctx, store.GeofenceRecord{ID: "zo-" + n, OrgID: "x", Name: "Zone " + n, Feature: []byte(feature),
		CreatedAt: now, UpdatedAt: now}); err != nil {
		w.t.Fatal(err)
	}
	var tok auth.NewToken
	target := store.User{ID: "ut-" + n, Email: "target" + n + "@example.org", Name: "Target", CreatedAt: now}
	if err := st.CreateUser(ctx, target); err != nil {
		w.t.Fatal(err)
	}
	if err := st.PutMembership(ctx, store.Membership{UserID: target.ID, OrgID: "x", Role: store.RoleResponder, CreatedAt: now}); err != nil {
		w.t.Fatal(err)
	}
	tok, err = w.a.Auth().IssueToken(ctx, "x", "fixture "+n, []auth.Permission{auth.AlertsRead}, time.Hour, "test")
	if err != nil {
		w.t.Fatal(err)
	}
	// Directory objects: a contact of the person, a carer user of x
	// linked to the person, a team of x with that user on it.
	if err := st.PutContact(ctx, store.Contact{ID: "co-" + n, OrgID: "x", PersonID: person, Name: "Kin " + n,
		Phone: "+447700900123", CreatedAt: now}); err != nil {
		w.t.Fatal(err)
	}
	carer := store.User{ID: "uc-" + n, Email: "carer" + n + "@example.org", Name: "Carer", CreatedAt: now}
	if err := st.CreateUser(ctx, carer); err != nil {
		w.t.Fatal(err)
	}
	if err := st.PutMembership(ctx, store.Membership{UserID: carer.ID, OrgID: "x", Role: store.RoleCarer, CreatedAt: now}); err != nil {
		w.t.Fatal(err)
	}
	if err := st.LinkCarer(ctx, carer.ID, person); err != nil {
		w.t.Fatal(err)
	}
	if err := st.CreateTeam(ctx, store.Team{ID: "te-" + n, OrgID: "x", Name: "Team " + n, CreatedAt: now}); err != nil {
		w.t.Fatal(err)
	}
	if err := st.AddTeamMember(ctx, "te-"+n, carer.ID); err != nil {
		w.t.Fatal(err)
	}
	if err := st.CreateDevice(ctx, store.Device{ID: "dv-" + n, OrgID: "x", Name: "pendant " + n, SecretHash: make([]byte, 32), CreatedAt: now}); err != nil {
		w.t.Fatal(err)
	}
	// Quarantined, so that releasing it is a real change.
	if _, err := st.QuarantineDevice(ctx, "dv-"+n, "flood", now); err != nil {
		w.t.Fatal(err)
	}
	if err := st.PutRota(ctx, store.Rota{OrgID: "x", Name: "p" + n, TimeZone: "UTC"}); err != nil {
		w.t.Fatal(err)
	}
	if err := st.AddRotaOverride(ctx, store.RotaOverride{ID: "ov-" + n, OrgID: "x", Rota: "p" + n, UserID: target.ID, From: now, To: now.Add(time.Hour)}); err != nil {
		w.t.Fatal(err)
	}
	return map[string]string{"override": "ov-" + n, "{org}": "x", "{id}": "", "device": "dv-" + n, "alert": al.ID, "session": "se-" + n, "zone": "zo-" + n,
		"user": target.ID, "token": tok.ID, "{name}": "p" + n, "{kind}": "sos",
		"person": person, "contact": "co-" + n, "team": "te-" + n, "{user}": carer.ID}
}

// bodies are valid requests, so that what answers is authorisation, not
// validation.
var bodies = map[string]string{
	"PUT /api/v1/orgs/{org}/sso":                        `{"issuer":"https://idp.example.org","client_id":"vigil","client_secret":"s3cret"}`,
	"POST /api/v1/alerts/{id}/notes":                    `{"note":"called her daughter"}`,
	"POST /api/v1/orgs/{org}/devices":                   `{"name":"pendant"}`,
	"POST /api/v1/devices/{id}/revoke":                  `{"reason":"lost on a visit"}`,
	"POST /api/v1/people/{id}/leave":                    `{"reason":"left the service"}`,
	"POST /api/v1/devices/{id}/release":                 `{"reason":"checked"}`,
	"POST /api/v1/alerts/{id}/acknowledge":              `{"note":"on it"}`,
	"POST /api/v1/alerts/{id}/resolve":                  `{"outcome":"false_alarm"}`,
	"POST /api/v1/alerts/{id}/cancel":                   `{}`,
	"POST /api/v1/sessions":                             `{"person_id":"x-worker","duration":"1h"}`,
	"POST /api/v1/sessions/{id}/extend":                 `{"by":"10m"}`,
	"PUT /api/v1/orgs/{org}/session-presets/{name}":     `{"duration":"1h","checkin_interval":"30m","grace":"5m"}`,
	"PUT /api/v1/orgs/{org}/escalation-policies/{kind}": `{"steps":[{"name":"duty","recipients":[{"channel":"console","address":"x"}],"wait":"1m"}]}`,
	"POST /api/v1/orgs/{org}/zones":                     `{"type":"FeatureCollection","features":[]}`,
	"PUT /api/v1/orgs/{org}/settings":                   `{"require_webauthn":false}`,
	"POST /api/v1/orgs/{org}/users":                     `{"email":"new@example.org","name":"New","role":"responder"}`,
	"PUT /api/v1/orgs/{org}/users/{id}/role":            `{"role":"supervisor"}`,
	"POST /api/v1/devices/{id}/enrol-token":             `{"ttl":"10m"}`,
	"POST /api/v1/people/{id}/break-glass":              `{"reason":"fall reported by a neighbour","minutes":10}`,
	"POST /api/v1/orgs/{org}/tokens":                    `{"name":"t","permissions":["alerts.read"],"expires_in":"1h"}`,
	"POST /api/v1/orgs/{org}/people":                    `{"kind":"resident","name":"New Person"}`,
	"PUT /api/v1/people/{id}/notes":                     `{"medical_notes":"asthma; inhaler in the left pocket"}`,
	"POST /api/v1/people/{id}/contacts":                 `{"name":"Kin","relation":"daughter","phone":"+447700900123","priority":1}`,
	"PUT /api/v1/people/{id}/device":                    `{"device_id":""}`,
	"POST /api/v1/orgs/{org}/teams":                     `{"name":"Night shift"}`,
	"PUT /api/v1/orgs/{org}/retention":                  `{"positions_days":30}`,

	"PUT /api/v1/orgs/{org}/rotas/{name}":            `{"time_zone":"Europe/London","shifts":[]}`,
	"POST /api/v1/orgs/{org}/rotas/{name}/overrides": `{"user":"nobody","from":"2030-01-01T00:00:00Z","to":"2030-01-02T00:00:00Z"}`,
	"PUT /api/v1/people/{id}/photo":                  `{"content_type":"image/png","image":"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAADklEQVR4nGJiAAQAAP//AAYAA/rQWa4AAAAASUVORK5CYII="}`,
}

// objectOf says which fixture object a route's {id} names.
func objectOf(pattern string) string {
	switch {
	case strings.Contains(pattern, "/alerts/{id}"):
		return "alert"
	case strings.Contains(pattern, "/sessions/{id}"):
		return "session"
	case strings.Contains(pattern, "/zones/{id}"):
		return "zone"
	case strings.Contains(pattern, "/users/{id}"):
		return "user"
	case strings.Contains(pattern, "/tokens/{id}"):
		return "token"
	case strings.Contains(pattern, "/people/{id}"):
		return "person"
	case strings.Contains(pattern, "/contacts/{id}"):
		return "contact"
	case strings.Contains(pattern, "/devices/{id}"):
		return "device"
	case strings.Contains(pattern, "/teams/{id}"):
		return "team"
	case strings.Contains(pattern, "/overrides/{id}"):
		return "override"
	}
	return ""
}

func (w *authzWorld) call(caller, method, path, body string) (int, string) {
	w.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "https://"+w.a.Addr("https")+path, rd)
	if err != nil {
		w.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c := w.session(caller); c != "" {
		req.AddCookie(&http.Cookie{Name: web.SessionCookie, Value: c})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := w.hc.Do(req.WithContext(ctx))
	if err != nil {
		if ctx.Err() != nil && strings.HasSuffix(path, "/feed") {
			return http.StatusOK, "" // the feed streams: reaching it was allowed
		}
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	// Security row 26: the browser headers on every answer.
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") ||
		!strings.Contains(csp, "object-src 'none'") || resp.Header.Get("X-Content-Type-Options") != "nosniff" ||
		resp.Header.Get("Strict-Transport-Security") == "" || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		w.t.Errorf("%s %s: security headers missing: %v", method, path, resp.Header)
	}
	if resp.Header.Get("Content-Type") == "text/event-stream" {
		return resp.StatusCode, ""
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b)
}

// TestAuthorizationMatrix walks every route of the JSON API for every
// role, provider staff, another organisation's admin and an anonymous
// caller, against fresh objects of organisation x, and checks the answer
// against the permission table: allowed (any status but 401/403/404),
// 403 (the caller reaches the object but the role may not), 404 (another
// organisation's object, or a person a worker or carer is not limited
// to), 401 (no sign-in).
func TestAuthorizationMatrix(t *testing.T) {
	w := newAuthzWorld(t)
	// Break-glass grants outlive the call that made them: walked last, so
	// they widen no other route's answer.
	routes := slices.Clone(web.Routes)
	slices.SortStableFunc(routes, func(a, b web.Route) int {
		return cmp.Compare(boolInt(strings.HasSuffix(a.Pattern, "/break-glass")), boolInt(strings.HasSuffix(b.Pattern, "/break-glass")))
	})
	for _, rt := range routes {
		if rt.Access == 0 {
			t.Errorf("route %s declares no access", rt.Pattern)
			continue
		}
		if (rt.Access == web.OrgPerm || rt.Access == web.ObjPerm) && rt.Perm == "" {
			t.Errorf("route %s checks a permission but names none", rt.Pattern)
		}
		if rt.Access == web.Public {
			continue // sign-in routes: their own tests
		}
		method, pattern, _ := strings.Cut(rt.Pattern, " ")
		for _, c := range callers {
			for _, person := range []string{"x-worker", "x-other"} {
				if person == "x-other" && c != "worker" && c != "carer" {
					continue // only person-scoped roles see a difference
				}
				fx := w.fixture(person)
				path := pattern
				if obj := objectOf(pattern); obj != "" {
					path = strings.ReplaceAll(path, "{id}", fx[obj])
				}
				for k, v := range fx {
					if strings.HasPrefix(k, "{") && v != "" {
						path = strings.ReplaceAll(path, k, v)
					}
				}
				if rt.Access == web.Signed && rt.Perm != "" && method == "GET" {
					path += "?org=x"
				}
				body := bodies[rt.Pattern]
				if b, ok := firmwareBodies[rt.Pattern]; ok {
					body = b
				}
				if b, ok := privacyBodies[rt.Pattern]; ok {
					body = b
				}
				if rt.Pattern == "POST /api/v1/sessions" {
					path += "?org=x"
					body = strings.ReplaceAll(body, "x-worker", person)
				}
				account := strings.HasPrefix(pattern, "/api/v1/auth/")
				if account && c != "anonymous" {
					continue // one's own account: the sign-in tests
				}
				got, resp := w.call(c, method, path, body)
				want := expect(rt, c, person)
				ok := got == want || (want == 0 && got != 401 && got != 403 && got != 404)
				if !ok {
					wantS := fmt.Sprint(want)
					if want == 0 {
						wantS = "allowed"
					}
					t.Errorf("%s as %s (person %s): %d %s, want %s", rt.Pattern, c, person, got, resp, wantS)
				}
			}
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// expect is the answer the permission table calls for (0: allowed).
func expect(rt web.Route, caller, person string) int {
	if caller == "anonymous" {
		return 401
	}
	if rt.Pattern == "POST /api/v1/orgs" {
		if caller == "provider" || caller == "other-provider" {
			return 0
		}
		return 403
	}
	if caller == "other-org" || caller == "other-provider" {
		switch rt.Access {
		case web.OrgPerm, web.ObjPerm:
			return 404
		case web.Signed:
			if rt.Perm != "" {
				return 404 // ?org=x is not theirs
			}
		}
		return 0
	}
	role := store.Role(caller)
	switch rt.Access {
	case web.PreMFA:
		return 0
	case web.Signed:
		if rt.Perm == "" {
			return 0
		}
	}
	scoped := role == store.RoleWorker || role == store.RoleCarer
	// Break-glass is how someone reaches a person beyond their scope: the
	// organisation-wide permission decides.
	breakGlass := strings.HasSuffix(rt.Pattern, "/break-glass")
	if scoped && !breakGlass && objectOf(rt.Pattern) != "" && objectOf(rt.Pattern) != "zone" && person != "x-worker" &&
		(objectOf(rt.Pattern) == "alert" || objectOf(rt.Pattern) == "session" ||
			objectOf(rt.Pattern) == "person" || objectOf(rt.Pattern) == "contact") {
		return 404
	}
	if rt.Pattern == "POST /api/v1/sessions" && scoped && person != "x-worker" {
		return 404
	}
	if !auth.RoleCan(role, rt.Perm) {
		return 403
	}
	return 0
}

// TestDisabledUserLosesFeed is security requirement 7 for users: a
// supervisor watching the live feed is disabled; the stream ends within a
// few seconds and the next request is refused.
func TestDisabledUserLosesFeed(t *testing.T) {
	w := newAuthzWorld(t)
	cookie := w.session("supervisor")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+w.a.Addr("https")+"/api/v1/orgs/x/feed", nil)
	req.AddCookie(&http.Cookie{Name: web.SessionCookie, Value: cookie})
	resp, err := w.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("feed: %d", resp.StatusCode)
	}
	if err := w.a.Store().SetUserDisabled(context.Background(), w.users["supervisor"], time.Now()); err != nil {
		t.Fatal(err)
	}
	disabled := time.Now()
	if _, err := io.Copy(io.Discard, resp.Body); ctx.Err() != nil {
		t.Fatalf("the feed stayed open after the user was disabled: %v", err)
	}
	t.Logf("feed closed %v after the user was disabled", time.Since(disabled).Round(10*time.Millisecond))
	req2, _ := http.NewRequest("GET", "https://"+w.a.Addr("https")+"/api/v1/orgs/x/people", nil)
	req2.AddCookie(&http.Cookie{Name: web.SessionCookie, Value: cookie})
	resp2, err := w.hc.Do(req2)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != 401 {
		t.Fatalf("next request of the disabled user: %d, want 401", resp2.StatusCode)
	}
}

// TestGetRoutesChangeNothing is security requirement 25's "no state change
// on GET": every GET route of the API, called by an admin, leaves every
// table as it was, but for the audit log (reads are recorded), and the
// sign-in bookkeeping (a session's last use, a token's last use).
func TestGetRoutesChangeNothing(t *testing.T) {
	w := newAuthzWorld(t)
	fx := w.fixture("x-worker")
	db, err := sql.Open("sqlite", filepath.Join(w.dir, "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	skip := map[string]bool{"audit_log": true, "audit_checkpoints": true, "web_sessions": true, "api_tokens": true}
	snapshot := func() map[string]string {
		t.Helper()
		rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
		if err != nil {
			t.Fatal(err)
		}
		var tables []string
		for rows.Next() {
			var n string
			_ = rows.Scan(&n)
			if !skip[n] {
				tables = append(tables, n)
			}
		}
		rows.Close()
		out := map[string]string{}
		for _, tb := range tables {
			rs, err := db.Query(`SELECT * FROM "` + tb + `" ORDER BY rowid`)
			if err != nil {
				rs, err = db.Query(`SELECT * FROM "` + tb + `"`)
			}
			if err != nil {
				t.Fatal(err)
			}
			cols, _ := rs.Columns()
			h := sha256.New()
			for rs.Next() {
				vals := make([]any, len(cols))
				ptrs := make([]any, len(cols))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				if err := rs.Scan(ptrs...); err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(h, "%v\n", vals)
			}
			rs.Close()
			out[tb] = hex.EncodeToString(h.Sum(nil))
		}
		return out
	}
	before := snapshot()
	n := 0
	for _, rt := range web.Routes {
		method, pattern, _ := strings.Cut(rt.Pattern, " ")
		if method != "GET" || strings.HasSuffix(pattern, "/feed") || strings.Contains(pattern, "/oidc/") {
			continue
		}
		path := pattern
		if obj := objectOf(pattern); obj != "" {
			path = strings.ReplaceAll(path, "{id}", fx[obj])
		}
		for k, v := range fx {
			if strings.HasPrefix(k, "{") && v != "" {
				path = strings.ReplaceAll(path, k, v)
			}
		}
		if rt.Access == web.Signed && rt.Perm != "" {
			path += "?org=x"
		}
		if strings.HasSuffix(pattern, "/reports/response") {
			path += "?month=2026-11"
		}
		if got, body := w.call("admin", method, path, ""); got >= 300 {
			t.Errorf("GET %s: %d %s", path, got, body)
		}
		n++
	}
	after := snapshot()
	for tb, h := range before {
		if after[tb] != h {
			t.Errorf("table %s changed across %d GET requests", tb, n)
		}
	}
	t.Logf("%d GET routes, %d tables unchanged", n, len(before))
}
