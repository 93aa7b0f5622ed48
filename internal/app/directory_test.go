package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"vigil/internal/store"
	"vigil/internal/web"
)

// TestDirectoryPersonAndAudit checks what the matrix test cannot: what a
// permitted answer holds. A carer reads the person linked to them without
// the medical notes (no key at all) while a supervisor gets them; another
// organisation's person is 404 even to a supervisor; the audit browse of
// x never shows y's entries, and is itself audited.
func TestDirectoryPersonAndAudit(t *testing.T) {
	w := newAuthzWorld(t)
	ctx := context.Background()
	st := w.a.Store()
	if err := st.CreatePerson(ctx, store.Person{ID: "y-resident", OrgID: "y", Kind: store.PersonResident, Name: "Yara",
		CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}

	if code, body := w.call("admin", "PUT", "/api/v1/people/x-worker/notes", `{"medical_notes":"Type 1 diabetes"}`); code != http.StatusNoContent {
		t.Fatalf("admin PUT notes: %d %s, want 204", code, body)
	}
	if code, body := w.call("admin", "POST", "/api/v1/people/x-worker/contacts", `{"name":"Kin","phone":"+447700900123"}`); code != http.StatusCreated {
		t.Fatalf("admin POST contact: %d %s, want 201", code, body)
	}

	person := func(caller, id string) map[string]json.RawMessage {
		t.Helper()
		code, body := w.call(caller, "GET", "/api/v1/people/"+id, "")
		if code != http.StatusOK {
			t.Fatalf("GET person %s as %s: %d %s, want 200", id, caller, code, body)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatalf("GET person %s as %s: %v in %s", id, caller, err, body)
		}
		return m
	}
	carer := person("carer", "x-worker")
	if v, ok := carer["medical_notes"]; ok {
		t.Errorf("carer got medical_notes %s; want no such key", v)
	}
	if v, ok := carer["contacts"]; ok {
		t.Errorf("carer got contacts %s; want no such key", v)
	}
	sup := person("supervisor", "x-worker")
	if got, want := string(sup["medical_notes"]), `"Type 1 diabetes"`; got != want {
		t.Errorf("supervisor medical_notes = %s, want %s", got, want)
	}
	var contacts []map[string]any
	if err := json.Unmarshal(sup["contacts"], &contacts); err != nil || len(contacts) != 1 {
		t.Errorf("supervisor contacts = %s (%v), want one", sup["contacts"], err)
	}

	// Another organisation's person does not exist for x's staff.
	if code, body := w.call("supervisor", "GET", "/api/v1/people/y-resident", ""); code != http.StatusNotFound {
		t.Errorf("supervisor of x GET y's person: %d %s, want 404", code, body)
	}
	if code, body := w.call("admin", "GET", "/api/v1/people/y-resident/contacts", ""); code != http.StatusNotFound {
		t.Errorf("admin of x GET y's person's contacts: %d %s, want 404", code, body)
	}
	person("other-org", "y-resident") // y's admin: there it is, and y's log has a person.read

	ys, err := st.ListAudit(ctx, store.AuditFilter{OrgID: "y", Action: "person.read"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ys) == 0 {
		t.Fatal("no person.read entry in y's log")
	}
	ySeq := map[int64]bool{}
	for _, rec := range ys {
		ySeq[rec.Seq] = true
	}

	type entry struct {
		Seq     int64          `json:"seq"`
		OrgID   string         `json:"org_id"`
		Actor   string         `json:"actor"`
		Action  string         `json:"action"`
		Hash    string         `json:"hash"`
		Details map[string]any `json:"details"`
	}
	browse := func(caller, query string) []entry {
		t.Helper()
		code, body := w.call(caller, "GET", "/api/v1/orgs/x/audit?"+query, "")
		if code != http.StatusOK {
			t.Fatalf("audit browse %s as %s: %d %s, want 200", query, caller, code, body)
		}
		var v struct {
			Entries []entry `json:"entries"`
		}
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatalf("audit browse %s: %v in %s", query, err, body)
		}
		return v.Entries
	}
	got := browse("auditor", "action=person.read&limit=1000")
	if len(got) < 2 {
		t.Errorf("auditor sees %d person.read entries of x, want the carer's and the supervisor's", len(got))
	}
	for _, e := range got {
		if ySeq[e.Seq] || e.OrgID != "x" {
			t.Errorf("auditor of x sees entry %d of org %q", e.Seq, e.OrgID)
		}
		if e.Action != "person.read" || len(e.Hash) != 64 || e.Details == nil {
			t.Errorf("entry %+v: want action person.read, a hex SHA-256 hash, details as an object", e)
		}
	}
	reads := browse("auditor", "action=audit.read")
	if len(reads) == 0 || reads[len(reads)-1].Actor != w.users["auditor"] {
		t.Errorf("audit.read entries %+v: want the auditor's browse recorded", reads)
	}
	if code, body := w.call("other-org", "GET", "/api/v1/orgs/x/audit", ""); code != http.StatusNotFound {
		t.Errorf("y's admin browsing x's audit: %d %s, want 404", code, body)
	}
	if code, body := w.call("supervisor", "GET", "/api/v1/orgs/x/audit", ""); code != http.StatusForbidden {
		t.Errorf("supervisor browsing the audit: %d %s, want 403", code, body)
	}
}

// TestDirectoryRoutesAnswerAdmin walks the directory's routes as x's admin
// with the matrix test's fixtures and bodies: each must succeed (the matrix
// only proves they are not refused).
func TestDirectoryRoutesAnswerAdmin(t *testing.T) {
	w := newAuthzWorld(t)
	n := 0
	for _, rt := range web.Routes {
		method, pattern, _ := strings.Cut(rt.Pattern, " ")
		if !slices.ContainsFunc([]string{"/people", "/contacts/", "/teams", "/devices", "/audit"}, func(s string) bool {
			return strings.Contains(pattern, s)
		}) {
			continue
		}
		if strings.HasSuffix(pattern, "/erase") {
			continue // TestPrivacyEndToEnd: the fixture person's open alert rightly blocks it (409)
		}
		n++
		fx := w.fixture("x-worker")
		path := strings.ReplaceAll(pattern, "{id}", fx[objectOf(pattern)])
		for k, v := range fx {
			if strings.HasPrefix(k, "{") && v != "" {
				path = strings.ReplaceAll(path, k, v)
			}
		}
		if code, body := w.call("admin", method, path, bodies[rt.Pattern]); code < 200 || code > 299 {
			t.Errorf("%s as admin (%s): %d %s, want success", rt.Pattern, path, code, body)
		}
	}
	if n < 17 {
		t.Errorf("walked %d directory routes, want at least 17", n)
	}
}
