package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"vigil/internal/store"
	"vigil/internal/store/sqlite"
)

// TestCLIPersonPrivacy walks a person through the data-subject commands:
// added (name encrypted at rest), exported as JSON and HTML, keys rotated
// with the old one removed, erased twice (the same receipt), and the
// audit log still verifies.
func TestCLIPersonPrivacy(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "data")
	const name = "Zebedee Quackenbush"
	if code, _, errs := cli(t, nil, "org", "add", "--data-dir", dir, "--id", "acme", "--name", "Acme Care"); code != 0 {
		t.Fatalf("org add: %s", errs)
	}
	code, out, errs := cli(t, nil, "person", "add", "--data-dir", dir, "--org", "acme", "--name", name, "--kind", "resident")
	if code != 0 {
		t.Fatalf("person add: %s", errs)
	}
	id := regexp.MustCompile(`person (\S+) created`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("person add printed %q", out)
	}
	pid := id[1]
	// The key-encryption key is beside the data directory, not in it.
	if _, err := os.Stat(filepath.Join(root, "data-keys", "kek.key")); err != nil {
		t.Errorf("default key file: %v", err)
	}
	if code, out, _ := cli(t, nil, "person", "list", "--data-dir", dir, "--org", "acme"); code != 0 || !strings.Contains(out, name) {
		t.Fatalf("person list: %d %q", code, out)
	}
	var db []byte
	files, _ := filepath.Glob(filepath.Join(dir, "vigil.db*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		db = append(db, b...)
	}
	if bytes.Contains(db, []byte("Quackenbush")) {
		t.Error("the person's name is in the database in plaintext")
	}

	code, out, errs = cli(t, nil, "person", "export", "--data-dir", dir, "--id", pid)
	var x struct {
		Person struct{ Name string } `json:"person"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &x) != nil || x.Person.Name != name {
		t.Fatalf("person export: %d %q %s", code, out, errs)
	}
	if code, out, _ := cli(t, nil, "person", "export", "--data-dir", dir, "--id", pid, "--html"); code != 0 || !strings.Contains(out, "<h1>Data held about "+name) {
		t.Fatalf("person export --html: %d %.200q", code, out)
	}
	if code, _, errs := cli(t, nil, "person", "export", "--data-dir", dir); code != 2 || !strings.Contains(errs, "--id") {
		t.Errorf("person export without --id: %d %q", code, errs)
	}

	// Rotation: status, rotate, old key removed, data still opens.
	code, out, errs = cli(t, nil, "keys", "status", "--data-dir", dir, "--json")
	var st keysStatusJSON
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st.KEKs) != 1 || st.DataKeys[st.Current] != 1 {
		t.Fatalf("keys status: %d %q %s", code, out, errs)
	}
	old := st.Current
	if code, out, errs := cli(t, nil, "keys", "rotate", "--data-dir", dir, "--remove-old"); code != 0 || !strings.Contains(out, "1 data keys re-wrapped") || !strings.Contains(out, "removed older keys "+old) {
		t.Fatalf("keys rotate --remove-old: %d %q %s", code, out, errs)
	}
	code, out, _ = cli(t, nil, "keys", "status", "--data-dir", dir, "--json")
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st.KEKs) != 1 || st.Current == old || st.DataKeys[st.Current] != 1 {
		t.Fatalf("keys status after rotation: %d %q", code, out)
	}
	if code, out, _ := cli(t, nil, "person", "list", "--data-dir", dir, "--org", "acme"); code != 0 || !strings.Contains(out, name) {
		t.Fatalf("person list after rotation: %d %q", code, out)
	}
	if code, out, errs := cli(t, nil, "keys", "encrypt-existing", "--data-dir", dir); code != 0 || !strings.Contains(out, "0 values sealed") {
		t.Errorf("keys encrypt-existing on encrypted data: %d %q %s", code, out, errs)
	}
	if code, _, errs := cli(t, nil, "keys", "spin", "--data-dir", dir); code != 2 || !strings.Contains(errs, "encrypt-existing") {
		t.Errorf("keys with an unknown subcommand: %d %q", code, errs)
	}

	// Erasure.
	if code, _, errs := cli(t, nil, "person", "erase", "--data-dir", dir, "--id", pid); code != 2 || !strings.Contains(errs, "--reason") {
		t.Errorf("person erase without --reason: %d %q", code, errs)
	}
	code, out, errs = cli(t, nil, "person", "erase", "--data-dir", dir, "--id", pid, "--reason", "GDPR Art. 17 request")
	var r store.ErasureReceipt
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil || r.PersonID != pid || !r.DataKeyDestroyed || r.Erased["person"] != 1 {
		t.Fatalf("person erase: %d %q %s", code, out, errs)
	}
	code, out, errs = cli(t, nil, "person", "erase", "--data-dir", dir, "--id", pid, "--reason", "again")
	var r2 store.ErasureReceipt
	if code != 0 || json.Unmarshal([]byte(out), &r2) != nil || r2.ID != r.ID || !strings.Contains(errs, "already erased") {
		t.Errorf("second erase: %d %q %q; want receipt %s", code, out, errs, r.ID)
	}
	if code, _, errs := cli(t, nil, "person", "export", "--data-dir", dir, "--id", pid); code != 1 || !strings.Contains(errs, "was erased") {
		t.Errorf("export of an erased person: %d %q", code, errs)
	}
	if code, out, errs := cli(t, nil, "audit", "verify", "--data-dir", dir); code != 0 || !strings.Contains(out, "audit log intact") {
		t.Errorf("audit verify after erasure: %d %q %s", code, out, errs)
	}
}

// TestCLIKeysEncryptExisting: a person stored before encryption was on
// (written straight to SQLite) is sealed in place and still listed.
func TestCLIKeysEncryptExisting(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if code, _, errs := cli(t, nil, "org", "add", "--data-dir", dir, "--id", "acme", "--name", "Acme Care"); code != 0 {
		t.Fatalf("org add: %s", errs)
	}
	ctx := context.Background()
	raw, err := sqlite.Open(ctx, filepath.Join(dir, "vigil.db"), sqlite.Options{AutoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.CreatePerson(ctx, store.Person{ID: "p_legacy", OrgID: "acme", Kind: store.PersonWorker, Name: "Legacy Plaintextson", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := raw.SetPersonNotes(ctx, "p_legacy", "old notes"); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	code, out, errs := cli(t, nil, "keys", "encrypt-existing", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "people.name\t1") || !strings.Contains(out, "people.medical_notes\t1") || !strings.Contains(out, "2 values sealed") {
		t.Fatalf("keys encrypt-existing: %d %q %s", code, out, errs)
	}
	raw, err = sqlite.Open(ctx, filepath.Join(dir, "vigil.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := raw.GetPerson(ctx, "p_legacy")
	raw.Close()
	if err != nil || !strings.HasPrefix(p.Name, "enc1:") {
		t.Errorf("stored name after encrypt-existing: %q, %v", p.Name, err)
	}
	if code, out, _ := cli(t, nil, "person", "list", "--data-dir", dir, "--org", "acme"); code != 0 || !strings.Contains(out, "Legacy Plaintextson") {
		t.Errorf("person list after encrypt-existing: %d %q", code, out)
	}
}
