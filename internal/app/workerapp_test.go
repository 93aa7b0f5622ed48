package app_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"vigil/internal/auth/mfa"
	"vigil/internal/auth/password"
	"vigil/internal/store"
	"vigil/internal/web/workerapp"
)

// newWorkerAppUser creates a worker of org linked to person personID (made
// here, named name) with a password and enrolled TOTP; it returns a
// client signed in with both factors and the TOTP secret. The enrolment
// used this step's code: advance the clock before the next one.
func newWorkerAppUser(t *testing.T, w *accessWorld, org, personID, name, email string) (*browser, []byte) {
	t.Helper()
	ctx := context.Background()
	st := w.a.Store()
	if err := st.CreatePerson(ctx, store.Person{ID: personID, OrgID: org, Kind: store.PersonWorker, Name: name}); err != nil {
		t.Fatal(err)
	}
	h, err := password.Hash(strongPassword, password.DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	uid := "u-" + personID
	if err := st.CreateUser(ctx, store.User{ID: uid, Email: email, Name: name, PasswordHash: h, PersonID: personID, CreatedAt: w.clk.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutMembership(ctx, store.Membership{UserID: uid, OrgID: org, Role: store.RoleWorker, CreatedAt: w.clk.Now()}); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, w.a)
	if r := b.do("POST", "/api/v1/auth/login", `{"email":"`+email+`","password":"`+strongPassword+`"}`); r.status != 200 {
		t.Fatalf("worker login: %d %s", r.status, r.body)
	}
	r := b.do("POST", "/api/v1/auth/totp/enrol", `{}`)
	if r.status != 200 {
		t.Fatalf("worker enrol: %d %s", r.status, r.body)
	}
	u, err := url.Parse(r.json(t)["otpauth_uri"].(string))
	if err != nil {
		t.Fatal(err)
	}
	secret := decodeBase32(t, u.Query().Get("secret"))
	if r := b.do("POST", "/api/v1/auth/totp/confirm", `{"code":"`+mfa.TOTPCode(secret, w.clk.Now())+`"}`); r.status != 200 {
		t.Fatalf("worker confirm: %d %s", r.status, r.body)
	}
	return b, secret
}

// workerAppDeviceEvents posts a batch to the HTTPS device API with a bearer secret.
func workerAppDeviceEvents(t *testing.T, w *accessWorld, deviceID, secret, body string) int {
	t.Helper()
	req, err := http.NewRequest("POST", "https://"+w.a.Addr("https")+"/api/v1/devices/"+deviceID+"/events", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := newBrowser(t, w.a).hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestWorkerAppPairingAPI: a worker pairs a phone for their own person
// (POST /api/v1/me/device); the secret is shown once, stored only as a
// hash, and works on the device API; an admin, a worker of another
// organisation, a half-signed-in caller and no one at all are refused;
// the pairing is audited.
func TestWorkerAppPairingAPI(t *testing.T) {
	w := newAccessWorld(t)
	admin, _, _ := w.enrolledAdmin(t)
	for _, o := range []string{`{"id":"acme","name":"Acme Care"}`, `{"id":"beta","name":"Beta Care"}`} {
		if r := admin.do("POST", "/api/v1/orgs", o); r.status != 201 {
			t.Fatalf("create org: %d %s", r.status, r.body)
		}
	}
	worker, _ := newWorkerAppUser(t, w, "acme", "p-wyn", "Wyn", "wyn@example.org")
	other, _ := newWorkerAppUser(t, w, "beta", "p-bo", "Bo", "bo@example.org")

	r := worker.do("POST", "/api/v1/me/device", `{"org":"acme","name":"Wyn's phone"}`)
	if r.status != 201 {
		t.Fatalf("pair: %d %s", r.status, r.body)
	}
	m := r.json(t)
	id, _ := m["device_id"].(string)
	secret, _ := m["secret"].(string)
	if id == "" || len(secret) < 40 || m["person_id"] != "p-wyn" {
		t.Fatalf("pair answer %s", r.body)
	}
	ctx := context.Background()
	d, err := w.a.Store().GetDevice(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(secret))
	if d.OrgID != "acme" || d.PersonID != "p-wyn" || d.Name != "Wyn's phone" || !bytes.Equal(d.SecretHash, sum[:]) ||
		bytes.Contains(d.SecretHash, []byte(secret)) {
		t.Errorf("device %+v", d)
	}
	ts := w.clk.Now().UTC().Format(time.RFC3339)
	ev := `{"events":[{"v":1,"id":"hb-1","ts":"` + ts + `","type":"heartbeat"}]}`
	if got := workerAppDeviceEvents(t, w, id, secret, ev); got != 200 {
		t.Errorf("device API with the paired secret: %d", got)
	}
	if got := workerAppDeviceEvents(t, w, id, secret+"x", ev); got != 401 {
		t.Errorf("device API with a wrong secret: %d", got)
	}

	for _, c := range []struct {
		who  string
		b    *browser
		body string
		want int
	}{
		{"admin (not a worker)", admin, `{"org":"acme"}`, 403},
		{"worker of another organisation", other, `{"org":"acme"}`, 404},
		{"worker, unknown organisation", worker, `{"org":"nope"}`, 404},
		{"worker, no organisation", worker, `{}`, 400},
		{"worker, bad name", worker, `{"org":"acme","name":"a\u0007b"}`, 400},
		{"anonymous", newBrowser(t, w.a), `{"org":"acme"}`, 401},
	} {
		if r := c.b.do("POST", "/api/v1/me/device", c.body); r.status != c.want {
			t.Errorf("%s: %d %s, want %d", c.who, r.status, r.body, c.want)
		}
	}
	// Password only: no device.
	half := newBrowser(t, w.a)
	if r := half.do("POST", "/api/v1/auth/login", `{"email":"wyn@example.org","password":"`+strongPassword+`"}`); r.status != 200 {
		t.Fatalf("login: %d", r.status)
	}
	if r := half.do("POST", "/api/v1/me/device", `{"org":"acme"}`); r.status != 401 {
		t.Errorf("password only: %d %s", r.status, r.body)
	}
	// Cross-origin: refused before anything happens.
	worker.header.Set("Sec-Fetch-Site", "cross-site")
	if r := worker.do("POST", "/api/v1/me/device", `{"org":"acme"}`); r.status != 403 {
		t.Errorf("cross-site: %d", r.status)
	}
	worker.header.Del("Sec-Fetch-Site")

	devs, err := w.a.Store().ListDevices(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 1 {
		t.Errorf("%d devices in acme, want 1 (refusals create none)", len(devs))
	}
	recs, err := w.a.Store().ListAudit(ctx, store.AuditFilter{OrgID: "acme", Action: "device.pair"})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].ObjectID != id || recs[0].Actor != "u-p-wyn" {
		t.Errorf("audit %+v", recs)
	}
}

// TestWorkerAppServed: the real server serves the app at /app/ with its
// own CSP and the browser security headers on every answer (row 26),
// 404 included; /app redirects to /app/.
func TestWorkerAppServed(t *testing.T) {
	w := newAccessWorld(t)
	b := newBrowser(t, w.a)
	b.hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, c := range []struct {
		path   string
		status int
		ctype  string
	}{
		{"/app/", 200, "text/html; charset=utf-8"},
		{"/app/app.js", 200, "text/javascript; charset=utf-8"},
		{"/app/sw.js", 200, "text/javascript; charset=utf-8"},
		{"/app/manifest.webmanifest", 200, "application/manifest+json"},
		{"/app/icon.svg", 200, "image/svg+xml"},
		{"/app/nope.html", 404, ""},
		{"/app/..%2fapp.go", 404, ""},
		{"/app", 301, ""},
	} {
		r := b.do("GET", c.path, "")
		if r.status != c.status || (c.ctype != "" && r.header.Get("Content-Type") != c.ctype) {
			t.Errorf("%s: %d %q, want %d %q", c.path, r.status, r.header.Get("Content-Type"), c.status, c.ctype)
		}
		if got := r.header.Get("Content-Security-Policy"); got != workerapp.CSP {
			t.Errorf("%s: CSP %q", c.path, got)
		}
		if r.header.Get("Strict-Transport-Security") == "" || r.header.Get("X-Content-Type-Options") != "nosniff" ||
			r.header.Get("Referrer-Policy") != "no-referrer" || r.header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s: headers %v", c.path, r.header)
		}
	}
	if r := b.do("POST", "/app/", "{}"); r.status != 405 {
		t.Errorf("POST /app/: %d", r.status)
	}
}
