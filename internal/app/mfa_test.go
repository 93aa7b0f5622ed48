package app_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/base32"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vigil/internal/app"
	"vigil/internal/auth"
	"vigil/internal/auth/mfa"
	"vigil/internal/auth/mfa/mfatest"
	"vigil/internal/clock"
	"vigil/internal/event"
	"vigil/internal/store"
	"vigil/internal/vigiltest"
)

// TestPasskeyAndResetKeepMFA is security requirement 22 over the API: a
// passkey registers and signs in (a software authenticator stands in for
// the browser's), a cloned key is refused, a password reset still asks for
// the second factor, and neither the TOTP seed nor a recovery code is in
// the database files in the clear.
func TestPasskeyAndResetKeepMFA(t *testing.T) {
	clk := clock.NewManual(time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC))
	cfg := vigiltest.Config(t)
	cfg.Notify.BaseURL = "https://localhost:8443"
	var out bytes.Buffer
	a, _ := vigiltest.StartAppWith(t, cfg, app.Deps{Clock: clk, Out: &out})
	w := &accessWorld{a: a, clk: clk, token: bootstrapRe.FindString(out.String())}
	admin, secret, codes := w.enrolledAdmin(t)

	key := mfatest.NewAuthenticator("https://localhost:8443")
	r := admin.do("POST", "/api/v1/auth/webauthn/register/begin", "")
	if r.status != 200 {
		t.Fatalf("register begin: %d %s", r.status, r.body)
	}
	resp, err := key.Create(r.body)
	if err != nil {
		t.Fatal(err)
	}
	if r := admin.do("POST", "/api/v1/auth/webauthn/register/finish?name=laptop", string(resp)); r.status != 200 {
		t.Fatalf("register finish: %d %s", r.status, r.body)
	}
	clone := key.Clone()

	signIn := func(k *mfatest.Authenticator) int {
		t.Helper()
		b := newBrowser(t, a)
		r := b.do("POST", "/api/v1/auth/login", `{"email":"ada@example.org","password":"`+strongPassword+`"}`)
		if r.status != 200 || !strings.Contains(string(r.body), `"webauthn"`) {
			t.Fatalf("login: %d %s (want webauthn among the methods)", r.status, r.body)
		}
		r = b.do("POST", "/api/v1/auth/webauthn/login/begin", "")
		if r.status != 200 {
			t.Fatalf("login begin: %d %s", r.status, r.body)
		}
		as, err := k.Get(r.body)
		if err != nil {
			t.Fatal(err)
		}
		if r := b.do("POST", "/api/v1/auth/webauthn/login/finish", string(as)); r.status != 200 {
			return r.status
		}
		return b.do("GET", "/api/v1/orgs", "").status
	}
	if got := signIn(key); got != 200 {
		t.Fatalf("sign-in with the passkey: %d", got)
	}
	if got := signIn(key); got != 200 {
		t.Fatalf("second sign-in with the passkey: %d", got)
	}
	// The clone's counter is behind the original's: refused.
	if got := signIn(clone); got != 401 {
		t.Fatalf("sign-in with a cloned key: %d, want 401", got)
	}

	// A reset sets the password but completes no second factor.
	ctx := context.Background()
	u, err := a.Store().GetUserByEmail(ctx, "ada@example.org")
	if err != nil {
		t.Fatal(err)
	}
	const resetTok = "vgr_test-reset-token-0123456789abcdef"
	if err := a.Store().CreateResetToken(ctx, store.ResetToken{TokenHash: auth.HashToken(resetTok), UserID: u.ID,
		CreatedAt: clk.Now(), ExpiresAt: clk.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, a)
	const newPassword = "an entirely different passphrase 42"
	if r := b.do("POST", "/api/v1/auth/reset/confirm", `{"token":"`+resetTok+`","password":"`+newPassword+`"}`); r.status != 200 {
		t.Fatalf("reset: %d %s", r.status, r.body)
	}
	if r := b.do("POST", "/api/v1/auth/reset/confirm", `{"token":"`+resetTok+`","password":"`+newPassword+`x"}`); r.status != 400 {
		t.Fatalf("reset token reused: %d %s, want 400", r.status, r.body)
	}
	if r := admin.do("GET", "/api/v1/orgs", ""); r.status != 401 {
		t.Fatalf("a session from before the reset still works: %d", r.status)
	}
	r = b.do("POST", "/api/v1/auth/login", `{"email":"ada@example.org","password":"`+newPassword+`"}`)
	if r.status != 200 || r.json(t)["must_enrol"] != false {
		t.Fatalf("login after reset: %d %s", r.status, r.body)
	}
	if r := b.do("GET", "/api/v1/orgs", ""); r.status != 401 {
		t.Fatalf("after a reset, the password alone reached the API: %d", r.status)
	}

	// No seed and no recovery code in the clear in the database files.
	b32 := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(secret)
	canaries := [][]byte{secret, []byte(b32)}
	for _, c := range codes {
		canaries = append(canaries, []byte(c), []byte(strings.ReplaceAll(c, "-", "")))
	}
	files, _ := filepath.Glob(filepath.Join(cfg.DataDir, "vigil.db*"))
	if len(files) == 0 {
		t.Fatal("no database files")
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range canaries {
			if bytes.Contains(raw, c) {
				t.Errorf("%s holds a TOTP seed or recovery code in the clear", filepath.Base(f))
			}
		}
	}
}

// TestAuditDownFailsClosed is security requirement 30's last part: when
// the audit log cannot be written, personal data is not served (503),
// while an SOS still reaches the store and the console feed.
func TestAuditDownFailsClosed(t *testing.T) {
	cfg := vigiltest.Config(t)
	a := vigiltest.StartApp(t, cfg)
	dev := registerWorker(t, a, "p1")
	api := newAPIClient(t, a)
	var person map[string]any
	if code := api.do("GET", "/api/v1/people/p1", "", &person); code != 200 {
		t.Fatalf("read person with the audit log up: %d", code)
	}

	// The audit log goes down: every insert into it fails.
	db, err := sql.Open("sqlite", filepath.Join(cfg.DataDir, "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER audit_down BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit store down'); END`); err != nil {
		t.Fatal(err)
	}
	if code := api.do("GET", "/api/v1/people/p1", "", nil); code != http.StatusServiceUnavailable {
		t.Fatalf("read person with the audit log down: %d, want 503", code)
	}
	if code := api.do("GET", "/api/v1/alerts?org=acme", "", nil); code != http.StatusServiceUnavailable {
		t.Fatalf("list alerts with the audit log down: %d, want 503", code)
	}

	// The console feed (no personal data is read to subscribe) still
	// answers, and an SOS still reaches it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", api.base+"/api/v1/orgs/acme/feed", nil)
	req.Header.Set("Authorization", "Bearer "+api.token())
	resp, err := api.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("feed with the audit log down: %d", resp.StatusCode)
	}
	cl := mqttConnect(t, a, dev)
	publishEvent(t, cl, dev.DeviceID, event.Message{V: 1, ID: "sos-1", TS: time.Now().UTC(), Type: event.TypeButton,
		Button: &event.Button{Kind: event.ButtonSOS}})
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.Contains(sc.Text(), `"sos"`) {
			break
		}
	}
	if ctx.Err() != nil || sc.Err() != nil {
		t.Fatalf("the SOS never reached the console feed: %v %v", ctx.Err(), sc.Err())
	}
	alerts, err := a.Store().ListAlerts(context.Background(), store.AlertFilter{OrgID: "acme"})
	if err != nil || len(alerts) != 1 || alerts[0].Kind != "sos" {
		t.Fatalf("alerts in the store: %v %+v", err, alerts)
	}
}

// TestBreakGlass is security requirement 24's emergency access: provider
// staff (who never see medical notes) give a reason and read one person's
// notes for ten minutes; the console hears of it, the audit log has a
// high-severity entry, and at the end of the ten minutes the access is gone.
func TestBreakGlass(t *testing.T) {
	clk := clock.NewManual(time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC))
	a, _ := vigiltest.StartAppWith(t, vigiltest.Config(t), app.Deps{Clock: clk})
	ctx := context.Background()
	st := a.Store()
	if err := st.CreateOrg(ctx, store.Org{ID: "x", Name: "X", CreatedAt: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreatePerson(ctx, store.Person{ID: "res-1", OrgID: "x", Kind: store.PersonResident, Name: "Rae", CreatedAt: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetPersonNotes(ctx, "res-1", "insulin-dependent diabetic"); err != nil {
		t.Fatal(err)
	}
	session := func(id string, role store.Role) *browser {
		t.Helper()
		if err := st.CreateUser(ctx, store.User{ID: id, Email: id + "@example.org", Name: id, CreatedAt: clk.Now(), Provider: role == store.RoleProvider}); err != nil {
			t.Fatal(err)
		}
		if err := st.PutMembership(ctx, store.Membership{UserID: id, OrgID: "x", Role: role, CreatedAt: clk.Now()}); err != nil {
			t.Fatal(err)
		}
		tok := id + "-session-0123456789abcdef0123456789"
		if err := st.CreateWebSession(ctx, store.WebSession{IDHash: auth.HashToken(tok), UserID: id, CreatedAt: clk.Now(),
			LastSeenAt: clk.Now(), ExpiresAt: clk.Now().Add(12 * time.Hour), MFAAt: clk.Now(), MFAMethod: "totp"}); err != nil {
			t.Fatal(err)
		}
		b := newBrowser(t, a)
		b.cookies["s"] = &http.Cookie{Name: "__Host-vigil_session", Value: tok}
		return b
	}
	prov := session("prov", store.RoleProvider)
	admin := session("adm", store.RoleAdmin)

	// The admin's console is listening.
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(fctx, "GET", "https://"+a.Addr("https")+"/api/v1/orgs/x/feed", nil)
	req.AddCookie(admin.cookies["s"])
	feed, err := admin.hc.Do(req)
	if err != nil || feed.StatusCode != 200 {
		t.Fatalf("feed: %v %v", err, feed)
	}
	defer feed.Body.Close()

	if r := prov.do("GET", "/api/v1/people/res-1", ""); r.status != 200 || strings.Contains(string(r.body), "insulin") {
		t.Fatalf("provider before break-glass: %d %s (want the person without notes)", r.status, r.body)
	}
	if r := prov.do("POST", "/api/v1/people/res-1/break-glass", `{"reason":"x"}`); r.status != 400 {
		t.Fatalf("break-glass without a real reason: %d %s, want 400", r.status, r.body)
	}
	if r := prov.do("POST", "/api/v1/people/res-1/break-glass", `{"reason":"ambulance crew asks about medication","minutes":10}`); r.status != 201 {
		t.Fatalf("break-glass: %d %s", r.status, r.body)
	}
	if r := prov.do("GET", "/api/v1/people/res-1", ""); r.status != 200 || !strings.Contains(string(r.body), "insulin") {
		t.Fatalf("provider under break-glass: %d %s (want the notes)", r.status, r.body)
	}
	sc := bufio.NewScanner(feed.Body)
	for sc.Scan() && !strings.Contains(sc.Text(), "break_glass") {
	}
	if fctx.Err() != nil {
		t.Fatal("the admin's console never heard of the break-glass")
	}
	recs, err := st.ListAudit(ctx, store.AuditFilter{OrgID: "x", Action: "break_glass"})
	if err != nil || len(recs) != 1 || recs[0].Severity != "high" || recs[0].Actor != "prov" || strings.Contains(recs[0].Details, "medication") {
		t.Fatalf("audit of the break-glass: %v %+v (want one high-severity entry without the reason's text)", err, recs)
	}
	clk.Advance(10 * time.Minute)
	if r := prov.do("GET", "/api/v1/people/res-1", ""); r.status != 200 || strings.Contains(string(r.body), "insulin") {
		t.Fatalf("provider after the grant expired: %d %s (want no notes)", r.status, r.body)
	}
}

// TestRequireWebAuthnAndTokens: an organisation that requires passkeys
// refuses TOTP and recovery codes for its users; an API token works until
// it expires or is revoked.
func TestRequireWebAuthnAndTokens(t *testing.T) {
	w := newAccessWorld(t)
	admin, secret, codes := w.enrolledAdmin(t)
	if r := admin.do("POST", "/api/v1/orgs", `{"id":"acme","name":"Acme"}`); r.status != 201 {
		t.Fatalf("org: %d %s", r.status, r.body)
	}
	r := admin.do("POST", "/api/v1/orgs/acme/tokens", `{"name":"ci","permissions":["alerts.read"],"expires_in":"1h"}`)
	if r.status != 201 {
		t.Fatalf("token: %d %s", r.status, r.body)
	}
	tok := r.json(t)["token"].(string)
	id := r.json(t)["id"].(string)
	if r := admin.do("POST", "/api/v1/orgs/acme/tokens", `{"name":"x","permissions":["no.such"],"expires_in":"1h"}`); r.status != 400 {
		t.Fatalf("token with an unknown permission: %d %s", r.status, r.body)
	}
	bearer := newBrowser(t, w.a)
	bearer.header.Set("Authorization", "Bearer "+tok)
	if r := bearer.do("GET", "/api/v1/alerts?org=acme", ""); r.status != 200 {
		t.Fatalf("token: %d %s", r.status, r.body)
	}
	if r := bearer.do("GET", "/api/v1/orgs/acme/users", ""); r.status != 403 {
		t.Fatalf("token beyond its permissions: %d %s, want 403", r.status, r.body)
	}
	w.clk.Advance(time.Hour)
	if r := bearer.do("GET", "/api/v1/alerts?org=acme", ""); r.status != 401 {
		t.Fatalf("expired token: %d, want 401", r.status)
	}
	// A fresh sign-in for the admin (the last one idled out).
	admin = newBrowser(t, w.a)
	admin.do("POST", "/api/v1/auth/login", `{"email":"ada@example.org","password":"`+strongPassword+`"}`)
	if r := admin.do("POST", "/api/v1/auth/totp", `{"code":"`+mfa.TOTPCode(secret, w.clk.Now())+`"}`); r.status != 200 {
		t.Fatalf("totp: %d %s", r.status, r.body)
	}
	r = admin.do("POST", "/api/v1/orgs/acme/tokens", `{"name":"ci2","permissions":["alerts.read"],"expires_in":"24h"}`)
	tok2, id2 := r.json(t)["token"].(string), r.json(t)["id"].(string)
	if id2 == id {
		t.Fatal("token ids repeat")
	}
	if r := admin.do("DELETE", "/api/v1/orgs/acme/tokens/"+id2, ""); r.status != 204 {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	bearer.header.Set("Authorization", "Bearer "+tok2)
	if r := bearer.do("GET", "/api/v1/alerts?org=acme", ""); r.status != 401 {
		t.Fatalf("revoked token: %d, want 401", r.status)
	}

	// Passkeys required: TOTP and recovery codes no longer sign in.
	if r := admin.do("PUT", "/api/v1/orgs/acme/settings", `{"require_webauthn":true}`); r.status != 200 {
		t.Fatalf("settings: %d %s", r.status, r.body)
	}
	b := newBrowser(t, w.a)
	r = b.do("POST", "/api/v1/auth/login", `{"email":"ada@example.org","password":"`+strongPassword+`"}`)
	if r.status != 200 || strings.Contains(string(r.body), "totp") {
		t.Fatalf("login: %d %s (want no totp among the methods)", r.status, r.body)
	}
	w.clk.Advance(30 * time.Second)
	if r := b.do("POST", "/api/v1/auth/totp", `{"code":"`+mfa.TOTPCode(secret, w.clk.Now())+`"}`); r.status != 403 {
		t.Fatalf("TOTP where passkeys are required: %d %s, want 403", r.status, r.body)
	}
	if r := b.do("POST", "/api/v1/auth/recovery", `{"code":"`+codes[1]+`"}`); r.status != 403 {
		t.Fatalf("recovery code where passkeys are required: %d %s, want 403", r.status, r.body)
	}
}
