package app_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"vigil/internal/auth/mfa"
	"vigil/internal/auth/password"
	"vigil/internal/device"
	"vigil/internal/store"
)

// The directory admin pages (internal/web/console/admin*.go) against the
// real server: the admin does each thing through the pages, roles without
// the write permission see no write controls and are refused, another
// organisation's admin meets 404, a new device's secret is shown once and
// works, and hostile names are escaped.

const (
	admXSSImg = `<img src=x onerror=alert(1)>`
	admXSSSVG = `"><svg onload=alert(1)>`
)

// admWorld is a server with organisation acme and its enrolled admin.
func admWorld(t *testing.T) (*accessWorld, *browser, []byte) {
	t.Helper()
	w := newAccessWorld(t)
	admin, secret, _ := w.enrolledAdmin(t)
	if r := admin.do("POST", "/api/v1/orgs", `{"id":"acme","name":"Acme Care"}`); r.status != 201 {
		t.Fatalf("create org: %d %s", r.status, r.body)
	}
	return w, admin, secret
}

// admUser makes a user of org with role (the organisation is made if
// missing), signs them in with password and an enrolled TOTP and returns
// the client and the TOTP secret. The enrolment used this step's code:
// advance the clock before another sign-in of the same user.
func admUser(t *testing.T, w *accessWorld, org string, role store.Role, email string) (*browser, []byte) {
	t.Helper()
	ctx := context.Background()
	st := w.a.Store()
	if _, err := st.GetOrg(ctx, org); err != nil {
		if err := st.CreateOrg(ctx, store.Org{ID: org, Name: "Org " + org, CreatedAt: w.clk.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	h, err := password.Hash(strongPassword, password.DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	uid := "u-" + strings.SplitN(email, "@", 2)[0]
	if err := st.CreateUser(ctx, store.User{ID: uid, Email: email, Name: string(role) + " " + uid, PasswordHash: h, CreatedAt: w.clk.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutMembership(ctx, store.Membership{UserID: uid, OrgID: org, Role: role, CreatedAt: w.clk.Now()}); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, w.a)
	if r := b.do("POST", "/api/v1/auth/login", `{"email":"`+email+`","password":"`+strongPassword+`"}`); r.status != 200 {
		t.Fatalf("login %s: %d %s", email, r.status, r.body)
	}
	r := b.do("POST", "/api/v1/auth/totp/enrol", `{}`)
	if r.status != 200 {
		t.Fatalf("enrol %s: %d %s", email, r.status, r.body)
	}
	u, err := url.Parse(r.json(t)["otpauth_uri"].(string))
	if err != nil {
		t.Fatal(err)
	}
	secret := decodeBase32(t, u.Query().Get("secret"))
	if r := b.do("POST", "/api/v1/auth/totp/confirm", `{"code":"`+mfa.TOTPCode(secret, w.clk.Now())+`"}`); r.status != 200 {
		t.Fatalf("confirm %s: %d %s", email, r.status, r.body)
	}
	return b, secret
}

// admPost posts a console form as b and does not follow a redirect.
func admPost(t *testing.T, b *browser, path string, v url.Values) reply {
	t.Helper()
	req, err := http.NewRequest("POST", "https://"+b.a.Addr("https")+path, strings.NewReader(v.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range b.cookies {
		req.AddCookie(c)
	}
	hc := *b.hc
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, body, resp.Header, resp.Cookies()}
}

// admPage gets a console page and wants status.
func admPage(t *testing.T, b *browser, path string, status int) string {
	t.Helper()
	r := b.do("GET", path, "")
	if r.status != status {
		t.Fatalf("GET %s: %d, want %d\n%s", path, r.status, status, r.body)
	}
	return string(r.body)
}

// admRedirect wants a 303 to a path starting with prefix and returns it.
func admRedirect(t *testing.T, r reply, prefix string) string {
	t.Helper()
	loc := r.header.Get("Location")
	if r.status != http.StatusSeeOther || !strings.HasPrefix(loc, prefix) {
		t.Fatalf("got %d to %q, want 303 to %s…\n%s", r.status, loc, prefix, r.body)
	}
	return loc
}

func admHas(t *testing.T, page, what string, want bool) {
	t.Helper()
	if strings.Contains(page, what) != want {
		t.Errorf("page has %q: %v, want %v\n%s", what, !want, want, page)
	}
}

var (
	admSecretRe = regexp.MustCompile(`<code id="device-secret">([^<]+)</code>`)
	admDeviceRe = regexp.MustCompile(`<code id="device-id">([^<]+)</code>`)
	admQRRe     = regexp.MustCompile(`<img id="pairing-qr" src="data:image/png;base64,([A-Za-z0-9+/=&#;]+)"`)
	admTokenRe  = regexp.MustCompile(`<code id="enrol-token-value">([^<]+)</code>`)
)

// TestAdminPagesPeople: the admin lists and creates people (a hostile
// name is escaped), edits medical notes, adds and deletes an emergency
// contact (with a tel: link), links and unlinks a carer; validation
// errors show next to their field.
func TestAdminPagesPeople(t *testing.T) {
	w, admin, _ := admWorld(t)
	ctx := context.Background()
	st := w.a.Store()

	page := admPage(t, admin, "/console/acme/people", 200)
	admHas(t, page, `id="person-form"`, true)
	admHas(t, page, `aria-current="page">People`, true)

	// A blank name: the API's error next to the field, nothing made.
	r := admPost(t, admin, "/console/acme/people", url.Values{"name": {"  "}, "kind": {"worker"}})
	if r.status != 400 || !strings.Contains(string(r.body), `id="person-name-error"`) {
		t.Fatalf("blank name: %d %s", r.status, r.body)
	}
	loc := admRedirect(t, admPost(t, admin, "/console/acme/people", url.Values{"name": {admXSSImg}, "kind": {"resident"}}),
		"/console/acme/people/")
	pid := strings.TrimPrefix(loc, "/console/acme/people/")
	p, err := st.GetPerson(ctx, pid)
	if err != nil || p.Name != admXSSImg || p.Kind != store.PersonResident || p.OrgID != "acme" {
		t.Fatalf("person %+v %v", p, err)
	}
	page = admPage(t, admin, loc, 200)
	admHas(t, page, html.EscapeString(admXSSImg), true)
	admHas(t, page, admXSSImg, false)
	admHas(t, page, `<img src=x`, false)
	list := admPage(t, admin, "/console/acme/people", 200)
	admHas(t, list, admXSSImg, false)
	admHas(t, list, `href="/console/acme/people/`+pid+`"`, true)

	// Medical notes.
	admRedirect(t, admPost(t, admin, "/console/acme/people/"+pid+"/notes", url.Values{"medical_notes": {"asthma\r\n" + admXSSSVG}}),
		"/console/acme/people/"+pid)
	if notes, _ := st.GetPersonNotes(ctx, pid); notes != "asthma\n"+admXSSSVG {
		t.Errorf("notes %q", notes)
	}
	page = admPage(t, admin, loc, 200)
	admHas(t, page, `id="notes-form"`, true)
	admHas(t, page, admXSSSVG, false)
	admHas(t, page, html.EscapeString(admXSSSVG), true)

	// Contacts: a bad phone number is refused next to its field.
	r = admPost(t, admin, "/console/acme/people/"+pid+"/contacts", url.Values{"name": {"Kim"}, "phone": {"0113 496 0000"}, "priority": {"1"}})
	if r.status != 400 || !strings.Contains(string(r.body), `id="contact-phone-error"`) || !strings.Contains(string(r.body), `value="Kim"`) {
		t.Fatalf("bad phone: %d %s", r.status, r.body)
	}
	admRedirect(t, admPost(t, admin, "/console/acme/people/"+pid+"/contacts",
		url.Values{"name": {"Kim " + admXSSImg}, "relation": {"daughter"}, "phone": {"+44 7700 900123"}, "email": {"kim@example.org"}, "priority": {"1"}}),
		"/console/acme/people/"+pid)
	cs, err := st.ListContacts(ctx, pid)
	if err != nil || len(cs) != 1 || cs[0].Phone != "+447700900123" {
		t.Fatalf("contacts %+v %v", cs, err)
	}
	page = admPage(t, admin, loc, 200)
	admHas(t, page, `href="tel:&#43;447700900123"`, true) // + is &#43; in an attribute
	admHas(t, page, `href="mailto:kim@example.org"`, true)
	admHas(t, page, admXSSImg, false)
	admRedirect(t, admPost(t, admin, "/console/acme/people/"+pid+"/contacts/"+cs[0].ID+"/delete", nil), "/console/acme/people/"+pid)
	if cs, _ := st.ListContacts(ctx, pid); len(cs) != 0 {
		t.Errorf("contact not deleted: %+v", cs)
	}

	// Carers: a carer user of acme is linked, then unlinked.
	if err := st.CreateUser(ctx, store.User{ID: "u-cara", Email: "cara@example.org", Name: "Cara Carer", CreatedAt: w.clk.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutMembership(ctx, store.Membership{UserID: "u-cara", OrgID: "acme", Role: store.RoleCarer, CreatedAt: w.clk.Now()}); err != nil {
		t.Fatal(err)
	}
	page = admPage(t, admin, loc, 200)
	admHas(t, page, `<option value="u-cara">Cara Carer`, true)
	admRedirect(t, admPost(t, admin, "/console/acme/people/"+pid+"/carers", url.Values{"user": {"u-cara"}}), "/console/acme/people/"+pid)
	if ps, _ := st.ListCarerPeople(ctx, "u-cara"); len(ps) != 1 || ps[0] != pid {
		t.Fatalf("carer links %v", ps)
	}
	page = admPage(t, admin, loc, 200)
	admHas(t, page, `/carers/u-cara/delete`, true)
	admRedirect(t, admPost(t, admin, "/console/acme/people/"+pid+"/carers/u-cara/delete", nil), "/console/acme/people/"+pid)
	if ps, _ := st.ListCarerPeople(ctx, "u-cara"); len(ps) != 0 {
		t.Errorf("carer still linked: %v", ps)
	}
}

// TestAdminPagesDevices: the admin registers a device for a person; its
// credentials and pairing QR code are in that one answer (no-store),
// never on a later page; the store keeps only the hash; the secret
// connects over MQTT; the device is reassigned on the person page; an
// enrolment token is shown once.
func TestAdminPagesDevices(t *testing.T) {
	w, admin, _ := admWorld(t)
	ctx := context.Background()
	st := w.a.Store()
	if err := st.CreatePerson(ctx, store.Person{ID: "p-ann", OrgID: "acme", Kind: store.PersonWorker, Name: "Ann", CreatedAt: w.clk.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreatePerson(ctx, store.Person{ID: "p-bob", OrgID: "acme", Kind: store.PersonWorker, Name: "Bob", CreatedAt: w.clk.Now()}); err != nil {
		t.Fatal(err)
	}
	page := admPage(t, admin, "/console/acme/devices", 200)
	admHas(t, page, `id="register-link"`, true)
	page = admPage(t, admin, "/console/acme/devices/new", 200)
	admHas(t, page, `<option value="p-ann">Ann (p-ann)</option>`, true)

	r := admPost(t, admin, "/console/acme/devices", url.Values{"name": {""}})
	if r.status != 400 || !strings.Contains(string(r.body), `id="device-name-error"`) {
		t.Fatalf("blank name: %d %s", r.status, r.body)
	}
	r = admPost(t, admin, "/console/acme/devices", url.Values{"name": {"pendant " + admXSSSVG}, "person_id": {"p-ann"}})
	if r.status != 200 || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("register: %d %v\n%s", r.status, r.header, r.body)
	}
	body := string(r.body)
	sm, dm, qm := admSecretRe.FindStringSubmatch(body), admDeviceRe.FindStringSubmatch(body), admQRRe.FindStringSubmatch(body)
	if sm == nil || dm == nil || qm == nil {
		t.Fatalf("no credentials or QR code shown:\n%s", body)
	}
	secret, devID := sm[1], dm[1]
	admHas(t, body, "This is shown once", true)
	admHas(t, body, admXSSSVG, false)
	if strings.Contains(r.header.Get("Location"), secret) {
		t.Error("secret in a URL")
	}
	// The QR code is a PNG.
	if png, err := base64.StdEncoding.DecodeString(html.UnescapeString(qm[1])); err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("QR code not a PNG: %v", err)
	}

	d, err := st.GetDevice(ctx, devID)
	if err != nil || d.OrgID != "acme" || d.PersonID != "p-ann" || d.Name != "pendant "+admXSSSVG {
		t.Fatalf("device %+v %v", d, err)
	}
	if h := sha256.Sum256([]byte(secret)); !bytes.Equal(d.SecretHash, h[:]) || bytes.Contains(d.SecretHash, []byte(secret)) {
		t.Error("the store does not keep (only) the secret's hash")
	}
	// Shown once: no later page has it.
	for _, path := range []string{"/console/acme/devices", "/console/acme/devices/new", "/console/acme/people/p-ann"} {
		page := admPage(t, admin, path, 200)
		admHas(t, page, secret, false)
		admHas(t, page, `id="device-secret"`, false)
	}
	page = admPage(t, admin, "/console/acme/devices", 200)
	admHas(t, page, `id="device-`+devID+`"`, true)
	admHas(t, page, `>Ann</a>`, true)
	admHas(t, page, admXSSSVG, false)

	// The secret works: the device connects over MQTT.
	mqttConnect(t, w.a, device.Credentials{DeviceID: devID, Secret: secret})

	// Reassigned to Bob on his page.
	admRedirect(t, admPost(t, admin, "/console/acme/people/p-bob/device", url.Values{"device_id": {devID}}), "/console/acme/people/p-bob")
	if d, _ := st.GetDevice(ctx, devID); d.PersonID != "p-bob" {
		t.Errorf("device with %q, want p-bob", d.PersonID)
	}

	// An enrolment token, shown once.
	r = admPost(t, admin, "/console/acme/devices/"+devID+"/enrol-token", nil)
	tm := admTokenRe.FindStringSubmatch(string(r.body))
	if r.status != 200 || tm == nil || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("enrol token: %d %s", r.status, r.body)
	}
	admHas(t, admPage(t, admin, "/console/acme/devices", 200), tm[1], false)

	// The registration is in the audit log with high severity, without the secret.
	recs, err := st.ListAudit(ctx, store.AuditFilter{OrgID: "acme", Action: "device.register", Limit: 10})
	if err != nil || len(recs) != 1 || recs[0].Severity != "high" || recs[0].ObjectID != devID || strings.Contains(recs[0].Details, secret) {
		t.Errorf("audit %+v %v", recs, err)
	}
}

// TestAdminPagesTeams: the admin creates a team (hostile name escaped),
// adds and removes a member and deletes it.
func TestAdminPagesTeams(t *testing.T) {
	w, admin, _ := admWorld(t)
	ctx := context.Background()
	st := w.a.Store()
	page := admPage(t, admin, "/console/acme/teams", 200)
	admHas(t, page, `id="team-form"`, true)
	admRedirect(t, admPost(t, admin, "/console/acme/teams", url.Values{"name": {"Night " + admXSSSVG}}), "/console/acme/teams")
	ts, err := st.ListTeams(ctx, "acme")
	if err != nil || len(ts) != 1 {
		t.Fatalf("teams %+v %v", ts, err)
	}
	tid := ts[0].ID
	// The same name again: the API's conflict next to the field.
	r := admPost(t, admin, "/console/acme/teams", url.Values{"name": {"Night " + admXSSSVG}})
	if r.status != 409 || !strings.Contains(string(r.body), `id="team-name-error"`) {
		t.Errorf("duplicate team: %d %s", r.status, r.body)
	}
	page = admPage(t, admin, "/console/acme/teams", 200)
	admHas(t, page, admXSSSVG, false)
	admHas(t, page, html.EscapeString("Night "+admXSSSVG), true)
	me := ""
	for _, u := range mustUsers(t, st, "acme") {
		me = u
	}
	admRedirect(t, admPost(t, admin, "/console/acme/teams/"+tid+"/members", url.Values{"user": {me}}), "/console/acme/teams")
	if tm, _ := st.GetTeam(ctx, tid); len(tm.Members) != 1 || tm.Members[0] != me {
		t.Fatalf("members %v", tm.Members)
	}
	admHas(t, admPage(t, admin, "/console/acme/teams", 200), "/teams/"+tid+"/members/"+me+"/delete", true)
	admRedirect(t, admPost(t, admin, "/console/acme/teams/"+tid+"/members/"+me+"/delete", nil), "/console/acme/teams")
	if tm, _ := st.GetTeam(ctx, tid); len(tm.Members) != 0 {
		t.Errorf("members %v", tm.Members)
	}
	admRedirect(t, admPost(t, admin, "/console/acme/teams/"+tid+"/delete", nil), "/console/acme/teams")
	if ts, _ := st.ListTeams(ctx, "acme"); len(ts) != 0 {
		t.Errorf("teams %+v", ts)
	}
}

func mustUsers(t *testing.T, st store.Store, org string) []string {
	t.Helper()
	us, err := st.ListUsers(context.Background(), org)
	if err != nil || len(us) == 0 {
		t.Fatalf("users %v %v", us, err)
	}
	var ids []string
	for _, u := range us {
		ids = append(ids, u.ID)
	}
	return ids
}

// TestAdminPagesPermissions: a supervisor and an auditor read the pages
// without write controls and are refused (403) every change; the auditor
// does not see medical notes; a worker gets 403; another organisation's
// admin gets 404 for acme's pages and person.
func TestAdminPagesPermissions(t *testing.T) {
	w, admin, _ := admWorld(t)
	ctx := context.Background()
	st := w.a.Store()
	if err := st.CreatePerson(ctx, store.Person{ID: "p-ann", OrgID: "acme", Kind: store.PersonWorker, Name: "Ann", CreatedAt: w.clk.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetPersonNotes(ctx, "p-ann", "diabetic"); err != nil {
		t.Fatal(err)
	}
	if err := st.PutContact(ctx, store.Contact{ID: "c-1", OrgID: "acme", PersonID: "p-ann", Name: "Kin", Phone: "+447700900123", CreatedAt: w.clk.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateDevice(ctx, store.Device{ID: "d-1", OrgID: "acme", Name: "pendant", SecretHash: make([]byte, 32), CreatedAt: w.clk.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateTeam(ctx, store.Team{ID: "t-1", OrgID: "acme", Name: "Day", CreatedAt: w.clk.Now()}); err != nil {
		t.Fatal(err)
	}
	// The admin sees the notes form and the contacts' delete buttons.
	page := admPage(t, admin, "/console/acme/people/p-ann", 200)
	admHas(t, page, `id="notes-form"`, true)
	admHas(t, page, `/contacts/c-1/delete`, true)

	sup, _ := admUser(t, w, "acme", store.RoleSupervisor, "sue@example.org")
	aud, _ := admUser(t, w, "acme", store.RoleAuditor, "otto@example.org")
	for _, c := range []struct {
		name  string
		b     *browser
		notes bool
	}{{"supervisor", sup, true}, {"auditor", aud, false}} {
		t.Run(c.name, func(t *testing.T) {
			b := c.b
			admHas(t, admPage(t, b, "/console/acme/people", 200), `id="person-form"`, false)
			page := admPage(t, b, "/console/acme/people/p-ann", 200)
			for _, ctl := range []string{`id="notes-form"`, `id="contact-form"`, `/contacts/c-1/delete`, `id="assign-form"`, `id="carer-form"`} {
				admHas(t, page, ctl, false)
			}
			admHas(t, page, "diabetic", c.notes)
			devs := admPage(t, b, "/console/acme/devices", 200)
			admHas(t, devs, `id="register-link"`, false)
			admHas(t, devs, `/enrol-token`, false)
			admHas(t, devs, `id="device-d-1"`, true)
			admHas(t, admPage(t, b, "/console/acme/teams", 200), `id="team-form"`, false)
			admPage(t, b, "/console/acme/devices/new", 403)
			for _, f := range []struct {
				path string
				v    url.Values
			}{
				{"/console/acme/people", url.Values{"name": {"X"}, "kind": {"worker"}}},
				{"/console/acme/people/p-ann/notes", url.Values{"medical_notes": {"changed"}}},
				{"/console/acme/people/p-ann/contacts", url.Values{"name": {"X"}, "phone": {"+447700900124"}, "priority": {"1"}}},
				{"/console/acme/people/p-ann/contacts/c-1/delete", nil},
				{"/console/acme/people/p-ann/device", url.Values{"device_id": {"d-1"}}},
				{"/console/acme/devices", url.Values{"name": {"sneaky"}}},
				{"/console/acme/devices/d-1/enrol-token", nil},
				{"/console/acme/teams", url.Values{"name": {"X"}}},
				{"/console/acme/teams/t-1/delete", nil},
			} {
				if r := admPost(t, b, f.path, f.v); r.status != 403 {
					t.Errorf("POST %s: %d, want 403", f.path, r.status)
				}
			}
		})
	}
	if notes, _ := st.GetPersonNotes(ctx, "p-ann"); notes != "diabetic" {
		t.Errorf("notes changed to %q", notes)
	}
	if ds, _ := st.ListDevices(ctx, "acme"); len(ds) != 1 || ds[0].PersonID != "" {
		t.Errorf("devices changed: %+v", ds)
	}
	if ts, _ := st.ListTeams(ctx, "acme"); len(ts) != 1 {
		t.Errorf("teams changed: %+v", ts)
	}

	// A worker is limited to their own person: not the admin pages.
	wk, _ := admUser(t, w, "acme", store.RoleWorker, "wyn@example.org")
	admPage(t, wk, "/console/acme/people", 403)

	// Another organisation's admin: acme does not exist for them.
	other, _ := admUser(t, w, "zeta", store.RoleAdmin, "zed@example.org")
	for _, path := range []string{"/console/acme/people", "/console/acme/people/p-ann", "/console/acme/devices", "/console/acme/teams", "/console/acme/devices/new"} {
		admPage(t, other, path, 404)
	}
	// Nor under their own organisation's path.
	admPage(t, other, "/console/zeta/people/p-ann", 404)
	if r := admPost(t, other, "/console/zeta/devices/d-1/enrol-token", nil); r.status != 404 {
		t.Errorf("other org enrol token: %d", r.status)
	}
	if r := admPost(t, other, "/console/zeta/people/p-ann/notes", url.Values{"medical_notes": {"x"}}); r.status != 404 {
		t.Errorf("other org notes: %d", r.status)
	}
	// Signed out: back to sign-in.
	anon := newBrowser(t, w.a)
	hc := *anon.hc
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Get("https://" + w.a.Addr("https") + "/console/acme/people")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/" {
		t.Errorf("signed out: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestDeviceRegistrationAPI: POST /api/v1/orgs/{org}/devices answers the
// credentials once (no-store), assigns to a person of the organisation
// only, and obeys the permission table (403 without devices.write, 404
// for another organisation).
func TestDeviceRegistrationAPI(t *testing.T) {
	w, admin, _ := admWorld(t)
	ctx := context.Background()
	st := w.a.Store()
	if err := st.CreatePerson(ctx, store.Person{ID: "p-ann", OrgID: "acme", Kind: store.PersonWorker, Name: "Ann", CreatedAt: w.clk.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateOrg(ctx, store.Org{ID: "zeta", Name: "Zeta", CreatedAt: w.clk.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreatePerson(ctx, store.Person{ID: "p-zed", OrgID: "zeta", Kind: store.PersonWorker, Name: "Zed", CreatedAt: w.clk.Now()}); err != nil {
		t.Fatal(err)
	}
	r := admin.do("POST", "/api/v1/orgs/acme/devices", `{"name":"pendant 1","person_id":"p-ann"}`)
	if r.status != 201 || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("register: %d %v %s", r.status, r.header, r.body)
	}
	m := r.json(t)
	id, secret := m["device_id"].(string), m["secret"].(string)
	if d, err := st.GetDevice(ctx, id); err != nil || d.PersonID != "p-ann" || d.Name != "pendant 1" || m["mqtt_username"] != id {
		t.Errorf("device %+v %v; answer %v", d, err, m)
	}
	if orgID, ok, err := w.a.Devices().AuthenticateDevice(ctx, id, secret); err != nil || !ok || orgID != "acme" {
		t.Errorf("the secret does not authenticate: %q %v %v", orgID, ok, err)
	}
	for body, field := range map[string]string{
		`{"name":""}`:                                  "name",
		`{"name":"x","person_id":"nobody"}`:            "person_id",
		`{"name":"x","person_id":"p-zed"}`:             "person_id",
		`{"name":"x\u0007"}`:                           "name",
		`{"name":"x","secret":"chosen-by-the-caller"}`: "secret",
	} {
		r := admin.do("POST", "/api/v1/orgs/acme/devices", body)
		if r.status != 400 {
			t.Errorf("%s: %d %s", body, r.status, r.body)
			continue
		}
		if e, _ := r.json(t)["error"].(map[string]any); e["field"] != field {
			t.Errorf("%s: field %v, want %s", body, e["field"], field)
		}
	}
	sup, _ := admUser(t, w, "acme", store.RoleSupervisor, "sue@example.org")
	if r := sup.do("POST", "/api/v1/orgs/acme/devices", `{"name":"x"}`); r.status != 403 {
		t.Errorf("supervisor: %d %s", r.status, r.body)
	}
	other, _ := admUser(t, w, "zeta", store.RoleAdmin, "zed@example.org")
	if r := other.do("POST", "/api/v1/orgs/acme/devices", `{"name":"x"}`); r.status != 404 {
		t.Errorf("other organisation: %d %s", r.status, r.body)
	}
	if ds, _ := st.ListDevices(ctx, ""); len(ds) != 1 {
		t.Errorf("%d devices, want 1", len(ds))
	}
}
