package web

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vigil/internal/audit"
	"vigil/internal/auth"
	"vigil/internal/clock"
	"vigil/internal/datakey"
	"vigil/internal/event"
	"vigil/internal/store"
	"vigil/internal/store/encrypted"
	"vigil/internal/store/sqlite"
)

// privacyWorld is an API over a real SQLite store behind the encryption
// decorator, with a real audit log on the same store.
type privacyWorld struct {
	a   *API
	st  *encrypted.Store
	key ed25519.PrivateKey
}

var privacyNow = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func newPrivacyWorld(t *testing.T) *privacyWorld {
	t.Helper()
	ctx := context.Background()
	inner, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "vigil.db"), sqlite.Options{AutoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = inner.Close() })
	kek, err := datakey.OpenFileKEK(filepath.Join(t.TempDir(), "keys", "kek.key"))
	if err != nil {
		t.Fatal(err)
	}
	st := encrypted.Wrap(inner, encrypted.NewKeyring(inner, kek, datakey.Config{}))
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	al := audit.New(st, key, log, clock.NewManual(privacyNow), audit.Config{CheckpointEvery: 2})
	a := NewAPI(nil, nil, nil, log, func() time.Time { return privacyNow })
	a.audit, a.dir = al, st
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	t0 := privacyNow.Add(-24 * time.Hour)
	must(st.CreateOrg(ctx, store.Org{ID: "x", Name: "X Care", CreatedAt: t0}))
	must(st.CreatePerson(ctx, store.Person{ID: "x-worker", OrgID: "x", Kind: store.PersonWorker, Name: "Wyn <b>Jones</b>", CreatedAt: t0}))
	must(st.SetPersonNotes(ctx, "x-worker", "epilepsy"))
	must(st.PutContact(ctx, store.Contact{ID: "c1", OrgID: "x", PersonID: "x-worker", Name: "Kin", Phone: "+447700900123", CreatedAt: t0}))
	must(st.CreateDevice(ctx, store.Device{ID: "d1", OrgID: "x", Name: "pendant", PersonID: "x-worker", CreatedAt: t0}))
	if _, err := st.ApplyEvents(ctx, []event.Event{{V: event.SchemaVersion, OrgID: "x", DeviceID: "d1", MsgID: "m1", Type: event.TypePosition,
		DeviceTime: t0, ReceivedAt: t0, Source: event.SourceMQTT, Position: &event.Position{Lat: 51.5, Lon: -0.1, AccuracyM: 5}}}); err != nil {
		t.Fatal(err)
	}
	must(st.CreateSession(ctx, store.Session{ID: "s1", OrgID: "x", PersonID: "x-worker", Note: "<script>alert(1)</script> flat 3", StartedAt: t0, ExpectedEnd: t0.Add(time.Hour)}))
	_, _, err = st.RaiseAlert(ctx, store.Alert{ID: "a1", OrgID: "x", DeviceID: "d1", PersonID: "x-worker", Kind: "sos", Severity: "critical",
		State: store.AlertRaised, DedupKey: "sos:d1", RaisedAt: t0, CauseTime: t0, Note: "flat 3", Detail: "button"},
		store.AlertEntry{At: t0, Actor: "device:d1", Action: "raised", Detail: "pressed", Cause: "ev:1"})
	must(err)
	return &privacyWorld{a: a, st: st, key: key}
}

// closeAll ends the session and resolves the alert, so erasure may go on.
func (w *privacyWorld) closeAll(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	s, err := w.st.GetSession(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	s.State, s.EndedAt, s.EndedBy = store.SessionEnded, s.StartedAt.Add(time.Hour), "api"
	if _, err := w.st.UpdateSession(ctx, s); err != nil {
		t.Fatal(err)
	}
	al, err := w.st.GetAlert(ctx, "a1")
	if err != nil {
		t.Fatal(err)
	}
	al.State, al.ClosedAt, al.ClosedBy, al.Outcome = store.AlertResolved, al.RaisedAt.Add(time.Hour), "user:u1", "assisted"
	if _, err := w.st.UpdateAlert(ctx, al, store.AlertEntry{At: al.ClosedAt, Actor: "user:u1", Action: "resolved", Detail: "helped up"}); err != nil {
		t.Fatal(err)
	}
}

func TestEraseValidation(t *testing.T) {
	w := newPrivacyWorld(t)
	for _, tt := range []struct{ body, field string }{
		{`{}`, "reason"},
		{`{"reason":"   "}`, "reason"},
		{`{"reason":"a\nb"}`, "reason"},
		{`{"reason":"` + strings.Repeat("r", 501) + `"}`, "reason"},
		{`{"reason":7}`, "reason"},
		{`{"reason":"ok","person":"x"}`, "person"},
	} {
		rec := callAs(t, w.a.erasePerson, store.RoleAdmin, "POST", "/", map[string]string{"id": "x-worker"}, tt.body)
		if rec.Code != http.StatusBadRequest || errField(t, rec) != tt.field {
			t.Errorf("body %s: %d %s; want 400 naming %s", tt.body, rec.Code, rec.Body.String(), tt.field)
		}
	}
	for _, role := range []store.Role{store.RoleSupervisor, store.RoleResponder, store.RoleAuditor, store.RoleProvider} {
		rec := callAs(t, w.a.erasePerson, role, "POST", "/", map[string]string{"id": "x-worker"}, `{"reason":"GDPR Art. 17"}`)
		if rec.Code != http.StatusForbidden {
			t.Errorf("erase as %s: %d; want 403", role, rec.Code)
		}
	}
	rec := callAs(t, w.a.erasePerson, store.RoleAdmin, "POST", "/", map[string]string{"id": "nobody"}, `{"reason":"GDPR Art. 17"}`)
	if rec.Code != http.StatusNotFound {
		t.Errorf("erase an unknown person: %d; want 404", rec.Code)
	}
}

// TestErase: an erasure is refused while an alert is open, then deletes
// and shreds, answers a receipt, answers the same receipt again, and the
// audit chain still verifies.
func TestErase(t *testing.T) {
	w := newPrivacyWorld(t)
	ctx := context.Background()
	rec := callAs(t, w.a.erasePerson, store.RoleAdmin, "POST", "/", map[string]string{"id": "x-worker"}, `{"reason":"GDPR Art. 17 request"}`)
	if rec.Code != http.StatusConflict {
		t.Fatalf("erase with an open alert: %d %s; want 409", rec.Code, rec.Body.String())
	}
	w.closeAll(t)
	rec = callAs(t, w.a.erasePerson, store.RoleAdmin, "POST", "/", map[string]string{"id": "x-worker"}, `{"reason":"GDPR Art. 17 request"}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("erase: %d %s", rec.Code, rec.Body.String())
	}
	var r store.ErasureReceipt
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.PersonID != "x-worker" || !r.DataKeyDestroyed || r.Erased["person"] != 1 || r.Erased["positions"] != 1 || r.Erased["sessions"] != 1 ||
		r.Erased["contacts"] != 1 || r.Erased["medical_notes"] != 1 || r.Reason != "GDPR Art. 17 request" || len(r.Kept) == 0 {
		t.Errorf("receipt %s", rec.Body.String())
	}
	if strings.Contains(rec.Body.String(), "Wyn") || strings.Contains(rec.Body.String(), "epilepsy") {
		t.Errorf("the receipt holds personal data: %s", rec.Body.String())
	}
	al, err := w.st.GetAlert(ctx, "a1")
	if err != nil {
		t.Fatal(err)
	}
	if al.Note != encrypted.Erased || al.Timeline[0].Detail != encrypted.Erased {
		t.Errorf("kept alert reads %q / %q; want %s", al.Note, al.Timeline[0].Detail, encrypted.Erased)
	}
	// Again: the same receipt.
	rec2 := callAs(t, w.a.erasePerson, store.RoleAdmin, "POST", "/", map[string]string{"id": "x-worker"}, `{"reason":"again"}`)
	var r2 store.ErasureReceipt
	if rec2.Code != http.StatusOK || json.Unmarshal(rec2.Body.Bytes(), &r2) != nil || r2.ID != r.ID {
		t.Errorf("second erase: %d %s; want 200 and receipt %s", rec2.Code, rec2.Body.String(), r.ID)
	}
	// Another organisation's admin does not learn of it.
	p := callAsOrg(t, w.a.erasePerson, "y", store.RoleAdmin, map[string]string{"id": "x-worker"}, `{"reason":"x"}`)
	if p.Code != http.StatusNotFound {
		t.Errorf("another org's admin re-erasing: %d; want 404", p.Code)
	}
	// The audit log records the erasure by id only, and verifies.
	recs, err := w.st.ListAudit(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, x := range recs {
		actions = append(actions, x.Action+":"+x.ObjectID)
		if strings.Contains(x.Details, "Wyn") || strings.Contains(x.Details, "GDPR") {
			t.Errorf("audit record %d holds free text: %s", x.Seq, x.Details)
		}
	}
	if !strings.Contains(strings.Join(actions, " "), "person.erased:x-worker") {
		t.Errorf("audit actions %v: want person.erased", actions)
	}
	rep, err := audit.Verify(ctx, w.st, w.key.Public().(ed25519.PublicKey))
	if err != nil || !rep.OK() || rep.Records == 0 {
		t.Errorf("audit verify after erasure: %+v, %v", rep, err)
	}
}

// callAsOrg calls h as a member of org with role.
func callAsOrg(t *testing.T, h http.HandlerFunc, org string, role store.Role, vals map[string]string, body string) *httptest.ResponseRecorder {
	t.Helper()
	p := auth.NewPrincipal(store.User{ID: "u-" + org}, []store.Membership{{UserID: "u-" + org, OrgID: org, Role: role}}, nil)
	r := httptest.NewRequest("POST", "/", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	for k, v := range vals {
		r.SetPathValue(k, v)
	}
	r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
	rec := httptest.NewRecorder()
	h(rec, r)
	return rec
}

func TestExport(t *testing.T) {
	w := newPrivacyWorld(t)
	rec := callAs(t, w.a.exportPerson, store.RoleAdmin, "GET", "/", map[string]string{"id": "x-worker"}, "")
	if rec.Code != http.StatusOK {
		t.Fatalf("export: %d %s", rec.Code, rec.Body.String())
	}
	var x ExportJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &x); err != nil {
		t.Fatal(err)
	}
	if x.Person.Name != "Wyn <b>Jones</b>" || x.MedicalNotes != "epilepsy" || len(x.Contacts) != 1 || x.Contacts[0].Phone != "+447700900123" ||
		len(x.Devices) != 1 || len(x.Sessions) != 1 || len(x.Alerts) != 1 || len(x.Alerts[0].Timeline) != 1 || len(x.Positions) != 1 {
		t.Errorf("export %s", rec.Body.String())
	}
	rec = callAs(t, w.a.exportPerson, store.RoleAdmin, "GET", "/?format=html", map[string]string{"id": "x-worker"}, "")
	body := rec.Body.String()
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("html export: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	if !strings.Contains(rec.Header().Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("html export CSP %q", rec.Header().Get("Content-Security-Policy"))
	}
	if strings.Contains(body, "<script") || strings.Contains(body, "<b>Jones") {
		t.Error("html export has unescaped markup from the data")
	}
	for _, want := range []string{"Wyn &lt;b&gt;Jones&lt;/b&gt;", "epilepsy", "447700900123", "&lt;script&gt;", "51.5"} {
		if !strings.Contains(body, want) {
			t.Errorf("html export lacks %q", want)
		}
	}
	rec = callAs(t, w.a.exportPerson, store.RoleAdmin, "GET", "/?format=pdf", map[string]string{"id": "x-worker"}, "")
	if rec.Code != http.StatusBadRequest || errField(t, rec) != "format" {
		t.Errorf("format=pdf: %d %s; want 400 naming format", rec.Code, rec.Body.String())
	}
	for _, role := range []store.Role{store.RoleSupervisor, store.RoleResponder, store.RoleProvider} {
		if rec := callAs(t, w.a.exportPerson, role, "GET", "/", map[string]string{"id": "x-worker"}, ""); rec.Code != http.StatusForbidden {
			t.Errorf("export as %s: %d; want 403", role, rec.Code)
		}
	}
}
