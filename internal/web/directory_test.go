package web

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"vigil/internal/auth"
	"vigil/internal/store"
)

// fakeDir is the directory the unit tests need: people, contacts and
// memberships in memory; any other method panics (the embedded nil
// interface), which a test would show.
type fakeDir struct {
	Directory
	people   map[string]store.Person
	notes    map[string]string
	contacts []store.Contact
	members  map[string][]store.Membership
	devices  map[string]store.Device
	audit    []store.AuditRecord
}

func newFakeDir() *fakeDir {
	return &fakeDir{
		people: map[string]store.Person{
			"x-worker": {ID: "x-worker", OrgID: "x", Kind: store.PersonWorker, Name: "Wyn"},
			"y-person": {ID: "y-person", OrgID: "y", Kind: store.PersonResident, Name: "Yara"},
		},
		notes: map[string]string{},
		members: map[string][]store.Membership{
			"u-carer":     {{UserID: "u-carer", OrgID: "x", Role: store.RoleCarer}},
			"u-responder": {{UserID: "u-responder", OrgID: "x", Role: store.RoleResponder}},
			"u-y-carer":   {{UserID: "u-y-carer", OrgID: "y", Role: store.RoleCarer}},
		},
		devices: map[string]store.Device{
			"d-x": {ID: "d-x", OrgID: "x"},
			"d-y": {ID: "d-y", OrgID: "y"},
		},
	}
}

func (f *fakeDir) GetPerson(_ context.Context, id string) (store.Person, error) {
	p, ok := f.people[id]
	if !ok {
		return store.Person{}, store.ErrNotFound
	}
	return p, nil
}

func (f *fakeDir) CreatePerson(_ context.Context, p store.Person) error {
	if _, ok := f.people[p.ID]; ok {
		return store.ErrConflict
	}
	f.people[p.ID] = p
	return nil
}

func (f *fakeDir) SetPersonNotes(_ context.Context, id, notes string) error {
	f.notes[id] = notes
	return nil
}

func (f *fakeDir) GetPersonNotes(_ context.Context, id string) (string, error) {
	return f.notes[id], nil
}

func (f *fakeDir) PutContact(_ context.Context, c store.Contact) error {
	f.contacts = append(f.contacts, c)
	return nil
}

func (f *fakeDir) ListContacts(_ context.Context, personID string) ([]store.Contact, error) {
	var out []store.Contact
	for _, c := range f.contacts {
		if c.PersonID == personID {
			out = append(out, c)
		}
	}
	return out, nil
}

func (f *fakeDir) ListMemberships(_ context.Context, userID string) ([]store.Membership, error) {
	return f.members[userID], nil
}

func (f *fakeDir) LinkCarer(context.Context, string, string) error { return nil }

func (f *fakeDir) GetDevice(_ context.Context, id string) (store.Device, error) {
	d, ok := f.devices[id]
	if !ok {
		return store.Device{}, store.ErrNotFound
	}
	return d, nil
}

func (f *fakeDir) AssignDevice(_ context.Context, id, personID string) error {
	d := f.devices[id]
	d.PersonID = personID
	f.devices[id] = d
	return nil
}

func (f *fakeDir) ListAudit(_ context.Context, flt store.AuditFilter) ([]store.AuditRecord, error) {
	var out []store.AuditRecord
	for _, r := range f.audit {
		if r.OrgID == flt.OrgID && r.Seq > flt.AfterSeq {
			out = append(out, r)
		}
	}
	return out, nil
}

func testDirAPI(dir Directory) *API {
	a := NewAPI(nil, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), func() time.Time {
		return time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	})
	a.dir = dir
	return a
}

// callAs calls h as a member of x with role, path values as given.
func callAs(t *testing.T, h http.HandlerFunc, role store.Role, method, target string, vals map[string]string, body string) *httptest.ResponseRecorder {
	t.Helper()
	p := auth.NewPrincipal(store.User{ID: "u-test", PersonID: "x-worker"}, []store.Membership{{UserID: "u-test", OrgID: "x", Role: role}}, []string{"x-worker"})
	var rd io.Reader = http.NoBody
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, target, rd)
	r.Header.Set("Content-Type", "application/json")
	for k, v := range vals {
		r.SetPathValue(k, v)
	}
	r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
	w := httptest.NewRecorder()
	h(w, r)
	return w
}

func errField(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var v map[string]apiError
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("error body %q: %v", w.Body.String(), err)
	}
	return v["error"].Field
}

func TestDirectoryValidation(t *testing.T) {
	long := strings.Repeat("a", 201)
	tests := []struct {
		name      string
		handler   func(a *API) http.HandlerFunc
		method    string
		vals      map[string]string
		body      string
		wantField string
	}{
		{"person kind", func(a *API) http.HandlerFunc { return a.createPerson }, "POST", map[string]string{"org": "x"}, `{"kind":"robot","name":"R"}`, "kind"},
		{"person name missing", func(a *API) http.HandlerFunc { return a.createPerson }, "POST", map[string]string{"org": "x"}, `{"kind":"worker"}`, "name"},
		{"person name blank", func(a *API) http.HandlerFunc { return a.createPerson }, "POST", map[string]string{"org": "x"}, `{"kind":"worker","name":"  "}`, "name"},
		{"person name long", func(a *API) http.HandlerFunc { return a.createPerson }, "POST", map[string]string{"org": "x"}, `{"kind":"worker","name":"` + long + `"}`, "name"},
		{"person name control", func(a *API) http.HandlerFunc { return a.createPerson }, "POST", map[string]string{"org": "x"}, `{"kind":"worker","name":"A\nB"}`, "name"},
		{"person id", func(a *API) http.HandlerFunc { return a.createPerson }, "POST", map[string]string{"org": "x"}, `{"id":"Not A Slug","kind":"worker","name":"A"}`, "id"},
		{"person unknown field", func(a *API) http.HandlerFunc { return a.createPerson }, "POST", map[string]string{"org": "x"}, `{"kind":"worker","name":"A","medical_notes":"x"}`, "medical_notes"},
		{"person kind type", func(a *API) http.HandlerFunc { return a.createPerson }, "POST", map[string]string{"org": "x"}, `{"kind":1,"name":"A"}`, "kind"},
		{"notes missing", func(a *API) http.HandlerFunc { return a.putPersonNotes }, "PUT", map[string]string{"id": "x-worker"}, `{}`, "medical_notes"},
		{"notes long", func(a *API) http.HandlerFunc { return a.putPersonNotes }, "PUT", map[string]string{"id": "x-worker"}, `{"medical_notes":"` + strings.Repeat("é", maxNotes+1) + `"}`, "medical_notes"},
		{"notes control", func(a *API) http.HandlerFunc { return a.putPersonNotes }, "PUT", map[string]string{"id": "x-worker"}, `{"medical_notes":"a\u0000b"}`, "medical_notes"},
		{"contact name", func(a *API) http.HandlerFunc { return a.createContact }, "POST", map[string]string{"id": "x-worker"}, `{"phone":"+447700900123"}`, "name"},
		{"contact relation", func(a *API) http.HandlerFunc { return a.createContact }, "POST", map[string]string{"id": "x-worker"}, `{"name":"K","relation":"` + long + `","phone":"+447700900123"}`, "relation"},
		{"contact no way to reach", func(a *API) http.HandlerFunc { return a.createContact }, "POST", map[string]string{"id": "x-worker"}, `{"name":"K"}`, "phone"},
		{"contact phone spaces", func(a *API) http.HandlerFunc { return a.createContact }, "POST", map[string]string{"id": "x-worker"}, `{"name":"K","phone":"+44 7700 900123"}`, "phone"},
		{"contact phone no plus", func(a *API) http.HandlerFunc { return a.createContact }, "POST", map[string]string{"id": "x-worker"}, `{"name":"K","phone":"07700900123"}`, "phone"},
		{"contact phone too long", func(a *API) http.HandlerFunc { return a.createContact }, "POST", map[string]string{"id": "x-worker"}, `{"name":"K","phone":"+1234567890123456"}`, "phone"},
		{"contact phone leading zero", func(a *API) http.HandlerFunc { return a.createContact }, "POST", map[string]string{"id": "x-worker"}, `{"name":"K","phone":"+0447700900123"}`, "phone"},
		{"contact email", func(a *API) http.HandlerFunc { return a.createContact }, "POST", map[string]string{"id": "x-worker"}, `{"name":"K","email":"not an address"}`, "email"},
		{"contact email display name", func(a *API) http.HandlerFunc { return a.createContact }, "POST", map[string]string{"id": "x-worker"}, `{"name":"K","email":"Kin <kin@example.org>"}`, "email"},
		{"contact priority", func(a *API) http.HandlerFunc { return a.createContact }, "POST", map[string]string{"id": "x-worker"}, `{"name":"K","phone":"+447700900123","priority":-1}`, "priority"},
		{"contact id not accepted", func(a *API) http.HandlerFunc { return a.createContact }, "POST", map[string]string{"id": "x-worker"}, `{"id":"c1","name":"K","phone":"+447700900123"}`, "id"},
		{"carer not a member", func(a *API) http.HandlerFunc { return a.linkCarer }, "PUT", map[string]string{"id": "x-worker", "user": "u-nobody"}, ``, "user"},
		{"carer wrong role", func(a *API) http.HandlerFunc { return a.linkCarer }, "PUT", map[string]string{"id": "x-worker", "user": "u-responder"}, ``, "user"},
		{"carer of another org", func(a *API) http.HandlerFunc { return a.linkCarer }, "PUT", map[string]string{"id": "x-worker", "user": "u-y-carer"}, ``, "user"},
		{"device missing", func(a *API) http.HandlerFunc { return a.putPersonDevice }, "PUT", map[string]string{"id": "x-worker"}, `{}`, "device_id"},
		{"device type", func(a *API) http.HandlerFunc { return a.putPersonDevice }, "PUT", map[string]string{"id": "x-worker"}, `{"device_id":7}`, "device_id"},
		{"team name", func(a *API) http.HandlerFunc { return a.createTeam }, "POST", map[string]string{"org": "x"}, `{"name":""}`, "name"},
		{"audit after", func(a *API) http.HandlerFunc { return a.browseAudit }, "GET", map[string]string{"org": "x"}, ``, "after"},
		{"audit limit", func(a *API) http.HandlerFunc { return a.browseAudit }, "GET", map[string]string{"org": "x"}, ``, "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := "/"
			switch tt.wantField {
			case "after":
				target = "/?after=-1"
			case "limit":
				target = "/?limit=1001"
			}
			w := callAs(t, tt.handler(testDirAPI(newFakeDir())), store.RoleAdmin, tt.method, target, tt.vals, tt.body)
			if w.Code != http.StatusBadRequest {
				t.Fatalf("status %d %s, want 400", w.Code, w.Body.String())
			}
			if got := errField(t, w); got != tt.wantField {
				t.Errorf("field %q, want %q (%s)", got, tt.wantField, w.Body.String())
			}
		})
	}
}

func TestDirectoryCreatePerson(t *testing.T) {
	dir := newFakeDir()
	a := testDirAPI(dir)
	w := callAs(t, a.createPerson, store.RoleAdmin, "POST", "/", map[string]string{"org": "x"}, `{"kind":"resident","name":"Ada"}`)
	if w.Code != http.StatusCreated {
		t.Fatalf("status %d %s, want 201", w.Code, w.Body.String())
	}
	var got personJSON
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got.ID, "p_") || len(got.ID) != 18 || got.OrgID != "x" || got.Kind != "resident" {
		t.Errorf("created %+v, want a p_ id of 16 characters in org x", got)
	}
	if _, ok := dir.people[got.ID]; !ok {
		t.Errorf("person %s not stored", got.ID)
	}
	w = callAs(t, a.createPerson, store.RoleAdmin, "POST", "/", map[string]string{"org": "x"}, `{"id":"x-worker","kind":"worker","name":"Dup"}`)
	if w.Code != http.StatusConflict || errField(t, w) != "id" {
		t.Errorf("duplicate id: %d %s, want 409 naming id", w.Code, w.Body.String())
	}
}

func TestDirectoryGetPersonOmitsNotes(t *testing.T) {
	dir := newFakeDir()
	dir.notes["x-worker"] = "epilepsy"
	a := testDirAPI(dir)
	for _, tt := range []struct {
		role            store.Role
		notes, contacts bool
	}{
		{store.RoleAdmin, true, true},
		{store.RoleSupervisor, true, true},
		{store.RoleResponder, true, true},
		{store.RoleProvider, false, true},
		{store.RoleAuditor, false, false},
		{store.RoleWorker, false, false},
		{store.RoleCarer, false, false},
	} {
		w := callAs(t, a.getPerson, tt.role, "GET", "/", map[string]string{"id": "x-worker"}, "")
		if w.Code != http.StatusOK {
			t.Fatalf("%s: status %d %s, want 200", tt.role, w.Code, w.Body.String())
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		if _, ok := m["medical_notes"]; ok != tt.notes {
			t.Errorf("%s: medical_notes present %v, want %v (%s)", tt.role, ok, tt.notes, w.Body.String())
		}
		if _, ok := m["contacts"]; ok != tt.contacts {
			t.Errorf("%s: contacts present %v, want %v (%s)", tt.role, ok, tt.contacts, w.Body.String())
		}
	}
	// Another organisation's person: 404, however valid the request.
	w := callAs(t, a.getPerson, store.RoleAdmin, "GET", "/", map[string]string{"id": "y-person"}, "")
	if w.Code != http.StatusNotFound {
		t.Errorf("y's person: %d, want 404", w.Code)
	}
}

func TestDirectoryDeviceOfAnotherOrg(t *testing.T) {
	dir := newFakeDir()
	a := testDirAPI(dir)
	w := callAs(t, a.putPersonDevice, store.RoleAdmin, "PUT", "/", map[string]string{"id": "x-worker"}, `{"device_id":"d-y"}`)
	if w.Code != http.StatusNotFound {
		t.Errorf("y's device: %d %s, want 404", w.Code, w.Body.String())
	}
	if dir.devices["d-y"].PersonID != "" {
		t.Errorf("y's device assigned to %q", dir.devices["d-y"].PersonID)
	}
	w = callAs(t, a.putPersonDevice, store.RoleAdmin, "PUT", "/", map[string]string{"id": "x-worker"}, `{"device_id":"d-x"}`)
	if w.Code != http.StatusOK || dir.devices["d-x"].PersonID != "x-worker" {
		t.Errorf("x's device: %d %s, assigned to %q; want 200 and x-worker", w.Code, w.Body.String(), dir.devices["d-x"].PersonID)
	}
}

func TestDirectoryAuditBrowse(t *testing.T) {
	dir := newFakeDir()
	dir.audit = []store.AuditRecord{
		{Seq: 1, OrgID: "x", Actor: "u1", Action: "person.read", Details: `{"count":"2"}`, Hash: []byte{0xab}},
		{Seq: 2, OrgID: "y", Actor: "u2", Action: "person.read"},
		{Seq: 3, OrgID: "x", Actor: "u1", Action: "person.update"},
	}
	a := testDirAPI(dir)
	w := callAs(t, a.browseAudit, store.RoleAuditor, "GET", "/", map[string]string{"org": "x"}, "")
	if w.Code != http.StatusOK {
		t.Fatalf("status %d %s", w.Code, w.Body.String())
	}
	var v struct {
		Entries []struct {
			Seq     int64          `json:"seq"`
			Details map[string]any `json:"details"`
			Hash    string         `json:"hash"`
		} `json:"entries"`
		NextAfter int64 `json:"next_after"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Entries) != 2 || v.Entries[0].Seq != 1 || v.Entries[1].Seq != 3 || v.NextAfter != 3 {
		t.Fatalf("entries %+v next %d, want seq 1 and 3, next 3", v.Entries, v.NextAfter)
	}
	if v.Entries[0].Details["count"] != "2" || v.Entries[0].Hash != "ab" || v.Entries[1].Details == nil {
		t.Errorf("entry 1 %+v: want details parsed and the hash in hex", v.Entries[0])
	}
}

func TestValidE164(t *testing.T) {
	for s, want := range map[string]bool{
		"+447700900123": true, "+15551234567": true, "+6831234": true, "+123456789012345": true,
		"+1234567890123456": false, "+683123": false, "447700900123": false, "+44 7700": false, "+0123456789": false, "": false, "+": false,
	} {
		if got := validE164(s); got != want {
			t.Errorf("validE164(%q) = %v, want %v", s, got, want)
		}
	}
}
