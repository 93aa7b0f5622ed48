package encrypted_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"vigil/internal/store"
	"vigil/internal/store/encrypted"
	"vigil/internal/store/postgres"
)

// testEncryptExisting: data stored before encryption was turned on is
// sealed in place, reads back the same, and a second run seals nothing.
func testEncryptExisting(t *testing.T, inner store.Store) *encrypted.Store {
	t.Helper()
	ctx := context.Background()
	fill(t, inner) // written without the decorator: plaintext
	_, _, err := inner.BeginDelivery(ctx, store.Delivery{Key: "a1/raised/0/0/sms/x", AlertID: "a1", OrgID: "acme", Event: "raised", Channel: "sms", Target: secretPhone, CreatedAt: time.Now()})
	must(t, err)
	must(t, inner.CreateUser(ctx, store.User{ID: "u1", Email: "u1@example.org", Name: "Sam", CreatedAt: time.Now()}))
	must(t, inner.CreateBreakGlass(ctx, store.BreakGlass{ID: "g1", OrgID: "acme", UserID: "u1", PersonID: "p1", Reason: "fall reported by " + secretContact, CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}))
	s := encrypted.Wrap(inner, newKeyring(t, inner))
	n, err := s.EncryptExisting(ctx)
	must(t, err)
	for _, k := range []string{"people.name", "people.medical_notes", "contacts.name", "contacts.phone", "contacts.email", "sessions.note",
		"alerts.note", "alert_entries.detail", "deliveries.target", "break_glass.reason", "person_photos.bytes"} {
		if n[k] == 0 {
			t.Errorf("EncryptExisting sealed no %s: %v", k, n)
		}
	}
	checkReadBack(t, s)
	ds, err := s.ListDeliveries(ctx, "a1")
	must(t, err)
	if len(ds) != 1 || ds[0].Target != secretPhone {
		t.Errorf("delivery after encrypt-existing: %+v", ds)
	}
	again, err := s.EncryptExisting(ctx)
	must(t, err)
	for k, v := range again {
		if v != 0 {
			t.Errorf("second EncryptExisting sealed %d of %s", v, k)
		}
	}
	return s
}

func TestEncryptExistingSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vigil.db")
	inner := openSQLite(t, path)
	testEncryptExisting(t, inner)
	must(t, inner.Close())
	var all []byte
	files, _ := filepath.Glob(path + "*")
	for _, f := range files {
		b, err := os.ReadFile(f)
		must(t, err)
		all = append(all, b...)
	}
	for _, secret := range []string{secretName, secretPhone, secretNotes, secretAmber, secretAlert, secretContact} {
		if bytes.Contains(all, []byte(secret)) {
			t.Errorf("%q is still in the database file after encrypt-existing", secret)
		}
	}
}

func TestEncryptExistingPostgres(t *testing.T) {
	url := testURL(t)
	inner, err := postgres.Open(context.Background(), url, postgres.Options{AutoMigrate: true, Schema: freshSchema(t, url)})
	must(t, err)
	t.Cleanup(func() { _ = inner.Close() })
	testEncryptExisting(t, inner)
}

// TestEraseLegacyPlaintext: erasing a person whose kept alert text was
// stored before encryption clears that text (no key could shred it).
func TestEraseLegacyPlaintext(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "vigil.db")
	inner := openSQLite(t, path)
	fill(t, inner)
	closeAll(t, inner)
	s := encrypted.Wrap(inner, newKeyring(t, inner))
	r, _, err := s.ErasePersonData(ctx, "p1", "GDPR Art. 17", time.Now())
	must(t, err)
	if r.Erased["alert_text_stored_unencrypted"] == 0 {
		t.Errorf("receipt %+v: want alert_text_stored_unencrypted counted", r.Erased)
	}
	a, err := s.GetAlert(ctx, "a1")
	must(t, err)
	for _, v := range []string{a.Note, a.Detail, a.OutcomeNote} {
		if v != "" && v != encrypted.Erased {
			t.Errorf("kept alert text %q after erasure", v)
		}
	}
	for _, e := range a.Timeline {
		if e.Detail != "" && e.Detail != encrypted.Erased {
			t.Errorf("kept timeline entry %d %q after erasure", e.Seq, e.Detail)
		}
	}
	// Older copies of rows written in plaintext (before an UPDATE) can
	// stay in the file's free space: docs/privacy.md, "Residual risks".
	must(t, inner.Close())
}
