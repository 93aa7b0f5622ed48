package app_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vigil/internal/audit"
	"vigil/internal/store"
	"vigil/internal/store/encrypted"
)

// TestPrivacyEndToEnd runs the data-subject rights through the running
// server: personal data written through the API is encrypted at rest, the
// export returns it, erasure answers a receipt (the same one twice), the
// person is gone, and the audit chain still verifies.
func TestPrivacyEndToEnd(t *testing.T) {
	w := newAuthzWorld(t)
	ctx := context.Background()
	if _, ok := w.a.Store().(*encrypted.Store); !ok {
		t.Fatal("app.OpenStore does not wrap the store in encrypted.WrapWithKeyFile (issue 9 wiring, docs/privacy.md): personal data is stored in plaintext and erasure is unavailable")
	}
	const name, notes, phone = "Quentin Zebedee-Marchbanks", "Brittle asthma; reliever in the left pocket", "+447700900987"
	code, body := w.call("admin", "POST", "/api/v1/orgs/x/people", `{"kind":"resident","name":"`+name+`"}`)
	if code != http.StatusCreated {
		t.Fatalf("create person: %d %s", code, body)
	}
	var p struct{ ID string }
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatal(err)
	}
	if code, body := w.call("admin", "PUT", "/api/v1/people/"+p.ID+"/notes", `{"medical_notes":"`+notes+`"}`); code != http.StatusNoContent {
		t.Fatalf("notes: %d %s", code, body)
	}
	if code, body := w.call("admin", "POST", "/api/v1/people/"+p.ID+"/contacts", `{"name":"Kin","phone":"`+phone+`"}`); code != http.StatusCreated {
		t.Fatalf("contact: %d %s", code, body)
	}
	// Nothing of it in the database files.
	var db []byte
	files, _ := filepath.Glob(filepath.Join(w.dir, "vigil.db*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		db = append(db, b...)
	}
	for _, s := range []string{name, "Marchbanks", notes, "asthma", phone} {
		if bytes.Contains(db, []byte(s)) {
			t.Errorf("%q is in the database files in plaintext", s)
		}
	}
	code, body = w.call("admin", "GET", "/api/v1/people/"+p.ID+"/export", "")
	if code != http.StatusOK || !strings.Contains(body, name) || !strings.Contains(body, notes) || !strings.Contains(body, phone) {
		t.Fatalf("export: %d %s", code, body)
	}
	if code, _ := w.call("supervisor", "GET", "/api/v1/people/"+p.ID+"/export", ""); code != http.StatusForbidden {
		t.Errorf("supervisor export: %d, want 403", code)
	}
	if code, _ := w.call("supervisor", "POST", "/api/v1/people/"+p.ID+"/erase", `{"reason":"GDPR Art. 17"}`); code != http.StatusForbidden {
		t.Errorf("supervisor erase: %d, want 403", code)
	}
	code, body = w.call("admin", "POST", "/api/v1/people/"+p.ID+"/erase", `{"reason":"GDPR Art. 17 request"}`)
	var r store.ErasureReceipt
	if code != http.StatusOK || json.Unmarshal([]byte(body), &r) != nil || r.PersonID != p.ID || !r.DataKeyDestroyed || r.Erased["contacts"] != 1 {
		t.Fatalf("erase: %d %s", code, body)
	}
	code, body = w.call("admin", "POST", "/api/v1/people/"+p.ID+"/erase", `{"reason":"again"}`)
	var r2 store.ErasureReceipt
	if code != http.StatusOK || json.Unmarshal([]byte(body), &r2) != nil || r2.ID != r.ID {
		t.Errorf("second erase: %d %s; want the receipt %s", code, body, r.ID)
	}
	if code, _ := w.call("other-org", "POST", "/api/v1/people/"+p.ID+"/erase", `{"reason":"x"}`); code != http.StatusNotFound {
		t.Errorf("another org's admin re-erasing: %d, want 404", code)
	}
	if code, _ := w.call("admin", "GET", "/api/v1/people/"+p.ID, ""); code != http.StatusNotFound {
		t.Errorf("GET erased person: %d, want 404", code)
	}
	key, err := audit.LoadKey(filepath.Join(w.dir, audit.KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(ctx, w.a.Store(), key.Public().(ed25519.PublicKey))
	if err != nil || !rep.OK() {
		t.Errorf("audit verify after erasure: %+v %v", rep, err)
	}
	recs, err := w.a.Store().ListAudit(ctx, store.AuditFilter{OrgID: "x", Action: "person.erased"})
	if err != nil || len(recs) != 1 || recs[0].ObjectID != p.ID {
		t.Errorf("person.erased audit records: %+v %v", recs, err)
	}
}
