package encrypted_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite"

	"vigil/internal/datakey"
	"vigil/internal/event"
	"vigil/internal/store"
	"vigil/internal/store/encrypted"
	"vigil/internal/store/postgres"
	"vigil/internal/store/sqlite"
	"vigil/internal/store/storetest"
)

// Known personal data the tests store and then look for in the raw
// database.
const (
	secretName    = "Philippa Quattlebaum"
	secretPhone   = "+447700900123"
	secretEmail   = "quattle@example.org"
	secretNotes   = "Type 1 diabetic; insulin in fridge"
	secretAmber   = "Visiting 14 Larkspur Close, aggressive dog"
	secretAlert   = "Found on stairs, conscious"
	secretContact = "Bartholomew Quattlebaum"
)

func newKEK(t testing.TB) *datakey.FileKEK {
	t.Helper()
	kek, err := datakey.OpenFileKEK(filepath.Join(t.TempDir(), "keys", "kek.key"))
	if err != nil {
		t.Fatal(err)
	}
	return kek
}

func newKeyring(t testing.TB, st store.Store) *datakey.Keyring {
	t.Helper()
	return encrypted.NewKeyring(st, newKEK(t), datakey.Config{})
}

func openSQLite(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path, sqlite.Options{AutoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("VIGIL_TEST_POSTGRES_URL")
	if u == "" {
		tb.Skip("VIGIL_TEST_POSTGRES_URL not set (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable); skipping PostgreSQL tests")
	}
	return u
}

func freshSchema(tb testing.TB, url string) string {
	tb.Helper()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	schema := "vigil_test_" + hex.EncodeToString(b)
	tb.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			tb.Errorf("drop schema: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			tb.Errorf("drop schema: %v", err)
		}
	})
	return schema
}

// TestConformanceSQLite runs the whole store contract through the
// decorator: encryption is invisible to every caller.
func TestConformanceSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		inner := openSQLite(t, filepath.Join(t.TempDir(), "vigil.db"))
		return encrypted.Wrap(inner, newKeyring(t, inner))
	})
}

func TestConformancePostgres(t *testing.T) {
	url := testURL(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		inner, err := postgres.Open(context.Background(), url, postgres.Options{AutoMigrate: true, Schema: freshSchema(t, url)})
		if err != nil {
			t.Fatal(err)
		}
		return encrypted.Wrap(inner, newKeyring(t, inner))
	})
}

// fill stores one person with every kind of personal field, and returns
// the ids of the alert it raised.
func fill(t *testing.T, s store.Store) {
	t.Helper()
	ctx := context.Background()
	t0 := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	must(t, s.CreateOrg(ctx, store.Org{ID: "acme", Name: "Acme Care", CreatedAt: t0}))
	must(t, s.CreatePerson(ctx, store.Person{ID: "p1", OrgID: "acme", Kind: store.PersonWorker, Name: secretName, CreatedAt: t0}))
	must(t, s.CreatePerson(ctx, store.Person{ID: "p2", OrgID: "acme", Kind: store.PersonWorker, Name: "Other Person", CreatedAt: t0}))
	must(t, s.SetPersonNotes(ctx, "p1", secretNotes))
	must(t, s.PutContact(ctx, store.Contact{ID: "c1", OrgID: "acme", PersonID: "p1", Name: secretContact, Relation: "brother", Phone: secretPhone, Email: secretEmail, CreatedAt: t0}))
	must(t, s.PutPersonPhoto(ctx, store.PersonPhoto{PersonID: "p1", ContentType: "image/jpeg", Bytes: []byte("JFIF" + secretName), UpdatedAt: t0}))
	must(t, s.CreateDevice(ctx, store.Device{ID: "d1", OrgID: "acme", Name: "pendant", PersonID: "p1", CreatedAt: t0}))
	must(t, s.CreateSession(ctx, store.Session{ID: "s1", OrgID: "acme", PersonID: "p1", DeviceID: "d1", Note: secretAmber, StartedAt: t0, ExpectedEnd: t0.Add(time.Hour)}))
	_, _, err := s.RaiseAlert(ctx, store.Alert{ID: "a1", OrgID: "acme", DeviceID: "d1", PersonID: "p1", SessionID: "s1", Kind: "sos", Severity: "critical",
		State: store.AlertRaised, DedupKey: "sos:d1", RaisedAt: t0.Add(time.Minute), CauseTime: t0.Add(time.Minute), Note: secretAmber, Detail: "button",
		Position: &event.Position{Lat: 51.5, Lon: -0.1, AccuracyM: 5}, PositionTime: t0.Add(time.Minute)},
		store.AlertEntry{At: t0.Add(time.Minute), Actor: "device:d1", Action: "raised", Detail: "sos pressed", Cause: "ev:1"})
	must(t, err)
	ok, err := s.AddAlertEntry(ctx, "a1", store.AlertEntry{At: t0.Add(2 * time.Minute), Actor: "user:u1", Action: "note", Detail: secretAlert})
	must(t, err)
	if !ok {
		t.Fatal("note not added")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestNoPlaintextSQLite: after storing a name, phone number, medical
// notes, an amber note and an alert note through the decorator, none of
// them is anywhere in the database file (or its WAL), while reading back
// through the decorator gives them all.
func TestNoPlaintextSQLite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vigil.db")
	inner := openSQLite(t, path)
	s := encrypted.Wrap(inner, newKeyring(t, inner))
	fill(t, s)
	checkReadBack(t, s)
	must(t, inner.Close())
	var all []byte
	files, _ := filepath.Glob(path + "*")
	for _, f := range files {
		b, err := os.ReadFile(f)
		must(t, err)
		all = append(all, b...)
	}
	if len(all) == 0 {
		t.Fatal("no database bytes read")
	}
	for _, secret := range []string{secretName, secretPhone, secretEmail, secretNotes, secretAmber, secretAlert, secretContact, "Quattlebaum", "Larkspur", "diabetic"} {
		if bytes.Contains(all, []byte(secret)) {
			t.Errorf("%q is in the database file in plaintext", secret)
		}
	}
	// The test can see it: the same search finds an unencrypted value.
	if !bytes.Contains(all, []byte("Acme Care")) {
		t.Error("the organisation's name (not encrypted) was not found: the search is broken")
	}
}

// TestNoPlaintextPostgres: the same in PostgreSQL, every table of the
// schema read as text.
func TestNoPlaintextPostgres(t *testing.T) {
	url := testURL(t)
	schema := freshSchema(t, url)
	ctx := context.Background()
	inner, err := postgres.Open(ctx, url, postgres.Options{AutoMigrate: true, Schema: schema})
	must(t, err)
	t.Cleanup(func() { _ = inner.Close() })
	s := encrypted.Wrap(inner, newKeyring(t, inner))
	fill(t, s)
	checkReadBack(t, s)
	conn, err := pgx.Connect(ctx, url)
	must(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = $1`, schema)
	must(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	must(t, err)
	var all strings.Builder
	for _, tb := range tables {
		rows, err := conn.Query(ctx, `SELECT t::text FROM `+pgx.Identifier{schema, tb}.Sanitize()+` t`)
		must(t, err)
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		must(t, err)
		for _, x := range texts {
			all.WriteString(x)
		}
	}
	dump := all.String()
	for _, secret := range []string{secretName, secretPhone, secretEmail, secretNotes, secretAmber, secretAlert, secretContact, "Quattlebaum", "Larkspur"} {
		if strings.Contains(dump, secret) {
			t.Errorf("%q is in PostgreSQL in plaintext", secret)
		}
	}
	if !strings.Contains(dump, "Acme Care") {
		t.Error("the organisation's name (not encrypted) was not found: the search is broken")
	}
}

func checkReadBack(t *testing.T, s store.Store) {
	t.Helper()
	ctx := context.Background()
	p, err := s.GetPerson(ctx, "p1")
	must(t, err)
	notes, err := s.GetPersonNotes(ctx, "p1")
	must(t, err)
	c, err := s.GetContact(ctx, "c1")
	must(t, err)
	x, err := s.GetSession(ctx, "s1")
	must(t, err)
	a, err := s.GetAlert(ctx, "a1")
	must(t, err)
	ph, err := s.GetPersonPhoto(ctx, "p1")
	must(t, err)
	got := []string{p.Name, notes, c.Name, c.Phone, c.Email, x.Note, a.Note, a.Timeline[1].Detail, string(ph.Bytes)}
	want := []string{secretName, secretNotes, secretContact, secretPhone, secretEmail, secretAmber, secretAmber, secretAlert, "JFIF" + secretName}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("read back field %d = %q, want %q", i, got[i], want[i])
		}
	}
}

// TestTamper: a flipped byte in a stored ciphertext, or a ciphertext
// copied into another row, is an integrity error, never wrong data.
func TestTamper(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "vigil.db")
	inner := openSQLite(t, path)
	t.Cleanup(func() { _ = inner.Close() })
	s := encrypted.Wrap(inner, newKeyring(t, inner))
	fill(t, s)
	db, err := sql.Open("sqlite", path)
	must(t, err)
	defer db.Close()

	// Another person's name copied into p2's row.
	var name1 string
	must(t, db.QueryRow(`SELECT name FROM people WHERE id = 'p1'`).Scan(&name1))
	if !strings.HasPrefix(name1, "enc1:") {
		t.Fatalf("stored name %q is not sealed", name1)
	}
	_, err = db.Exec(`UPDATE people SET name = ? WHERE id = 'p2'`, name1)
	must(t, err)
	if p, err := s.GetPerson(ctx, "p2"); !errors.Is(err, datakey.ErrIntegrity) {
		t.Errorf("a name moved to another row: GetPerson = %q, %v; want ErrIntegrity", p.Name, err)
	}
	// The medical notes moved into the name column.
	var notes string
	must(t, db.QueryRow(`SELECT medical_notes FROM people WHERE id = 'p1'`).Scan(&notes))
	_, err = db.Exec(`UPDATE people SET name = ? WHERE id = 'p1'`, notes)
	must(t, err)
	if p, err := s.GetPerson(ctx, "p1"); !errors.Is(err, datakey.ErrIntegrity) {
		t.Errorf("notes moved to the name column: GetPerson = %q, %v; want ErrIntegrity", p.Name, err)
	}
	// One flipped character of a session note (base64: each changes bits).
	var note string
	must(t, db.QueryRow(`SELECT note FROM sessions WHERE id = 's1'`).Scan(&note))
	var at []int
	for i := len("enc1:"); i < len(note); i += 7 {
		at = append(at, i)
	}
	at = append(at, len(note)-1) // the last character: its low bits are padding
	for _, i := range at {
		b := []byte(note)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		_, err = db.Exec(`UPDATE sessions SET note = ? WHERE id = 's1'`, string(b))
		must(t, err)
		x, err := s.GetSession(ctx, "s1")
		if err == nil {
			t.Fatalf("flipped note at %d opened as %q", i, x.Note)
		}
		if !errors.Is(err, datakey.ErrIntegrity) && !errors.Is(err, datakey.ErrUnknownKey) {
			t.Fatalf("flipped note at %d: %v; want an integrity error", i, err)
		}
	}
}

// TestEraseSQLite: erasing a person deletes their rows, shreds what is
// kept, is idempotent, and a restore of an earlier copy of the database
// is erased again from the ledger.
func TestEraseSQLite(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "vigil.db")
	inner := openSQLite(t, path)
	kek := newKEK(t)
	s := encrypted.Wrap(inner, encrypted.NewKeyring(inner, kek, datakey.Config{}))
	fill(t, s)

	// Blocked while the alert is open and the session active.
	if _, _, err := s.ErasePersonData(ctx, "p1", "GDPR Art. 17", time.Now()); !errors.Is(err, encrypted.ErrErasureBlocked) {
		t.Fatalf("erase with an open alert: %v; want ErrErasureBlocked", err)
	}
	if p, err := s.GetPerson(ctx, "p1"); err != nil || p.Name != secretName {
		t.Fatalf("a blocked erasure changed the person: %q, %v", p.Name, err)
	}
	closeAll(t, s)
	// The "backup": a copy of the database taken before the erasure.
	must(t, inner.Close())
	backup, err := os.ReadFile(path)
	must(t, err)
	inner = openSQLite(t, path)
	s = encrypted.Wrap(inner, encrypted.NewKeyring(inner, kek, datakey.Config{}))

	at := time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC)
	r, fresh, err := s.ErasePersonData(ctx, "p1", "GDPR Art. 17", at)
	must(t, err)
	if !fresh || !r.DataKeyDestroyed || r.PersonID != "p1" || r.OrgID != "acme" || !strings.HasPrefix(r.ID, "er_") {
		t.Errorf("receipt %+v, fresh %v", r, fresh)
	}
	for _, k := range []string{"person", "medical_notes", "contacts", "photo", "sessions"} {
		if r.Erased[k] != 1 {
			t.Errorf("receipt erased[%s] = %d, want 1", k, r.Erased[k])
		}
	}
	if r.Kept[0].Class != "closed_alerts" || r.Kept[0].Count != 1 || r.Kept[0].Why == "" {
		t.Errorf("receipt kept %+v", r.Kept)
	}
	a, err := s.GetAlert(ctx, "a1")
	must(t, err)
	if a.Note != encrypted.Erased || a.Timeline[1].Detail != encrypted.Erased || a.Position != nil {
		t.Errorf("kept alert: note %q, entry %q, position %v; want [erased] and no position", a.Note, a.Timeline[1].Detail, a.Position)
	}
	if _, err := s.GetPerson(ctx, "p1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetPerson after erasure: %v", err)
	}
	// Idempotent: the same receipt.
	r2, fresh, err := s.ErasePersonData(ctx, "p1", "again", at.Add(time.Hour))
	must(t, err)
	if fresh || r2.ID != r.ID {
		t.Errorf("second erasure: receipt %s fresh %v; want %s, false", r2.ID, fresh, r.ID)
	}
	// Others are untouched.
	if p, err := s.GetPerson(ctx, "p2"); err != nil || p.Name != "Other Person" {
		t.Errorf("another person after erasure: %q, %v", p.Name, err)
	}
	// New alert text about the erased person is not lost: it is sealed
	// with the organisation's key.
	_, err = s.AddAlertEntry(ctx, "a1", store.AlertEntry{At: at, Actor: "user:u1", Action: "note", Detail: "late note"})
	must(t, err)
	a, err = s.GetAlert(ctx, "a1")
	must(t, err)
	if got := a.Timeline[len(a.Timeline)-1].Detail; got != "late note" {
		t.Errorf("a note added after erasure reads %q", got)
	}

	// Restore the earlier copy: the person is back, in ciphertext whose
	// key the backup holds wrapped.
	ledger, err := s.ListErasures(ctx)
	must(t, err)
	must(t, inner.Close())
	for _, f := range []string{path + "-wal", path + "-shm"} {
		_ = os.Remove(f)
	}
	must(t, os.WriteFile(path, backup, 0o600))
	inner = openSQLite(t, path)
	t.Cleanup(func() { _ = inner.Close() })
	s = encrypted.Wrap(inner, encrypted.NewKeyring(inner, kek, datakey.Config{}))
	if p, err := s.GetPerson(ctx, "p1"); err != nil || p.Name != secretName {
		t.Fatalf("restored backup: %q, %v", p.Name, err)
	}
	n, err := encrypted.ApplyErasures(ctx, s, ledger)
	must(t, err)
	if n != 1 {
		t.Errorf("ApplyErasures = %d, want 1", n)
	}
	if _, err := s.GetPerson(ctx, "p1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after ApplyErasures GetPerson: %v", err)
	}
	a, err = s.GetAlert(ctx, "a1")
	must(t, err)
	if a.Note != encrypted.Erased {
		t.Errorf("after ApplyErasures the kept alert's note is %q", a.Note)
	}
	if n, err := encrypted.ApplyErasures(ctx, s, ledger); err != nil || n != 0 {
		t.Errorf("ApplyErasures again = %d, %v; want 0", n, err)
	}
}

// closeAll ends p1's session and resolves alert a1.
func closeAll(t *testing.T, s store.Store) {
	t.Helper()
	ctx := context.Background()
	x, err := s.GetSession(ctx, "s1")
	must(t, err)
	x.State, x.EndedAt, x.EndedBy = store.SessionEnded, x.StartedAt.Add(time.Hour), "api"
	_, err = s.UpdateSession(ctx, x)
	must(t, err)
	a, err := s.GetAlert(ctx, "a1")
	must(t, err)
	a.State, a.ClosedAt, a.ClosedBy, a.Outcome, a.OutcomeNote = store.AlertResolved, a.RaisedAt.Add(time.Hour), "user:u1", "assisted", "taken home"
	_, err = s.UpdateAlert(ctx, a, store.AlertEntry{At: a.ClosedAt, Actor: "user:u1", Action: "resolved", Detail: "taken home"})
	must(t, err)
}

// TestErasedIDNotReused: an erased person's id cannot be given to a new
// person, and writes about them are not found.
func TestErasedIDNotReused(t *testing.T) {
	ctx := context.Background()
	inner := openSQLite(t, filepath.Join(t.TempDir(), "vigil.db"))
	t.Cleanup(func() { _ = inner.Close() })
	s := encrypted.Wrap(inner, newKeyring(t, inner))
	must(t, s.CreateOrg(ctx, store.Org{ID: "acme", Name: "Acme", CreatedAt: time.Now()}))
	must(t, s.CreatePerson(ctx, store.Person{ID: "alice", OrgID: "acme", Kind: store.PersonWorker, Name: "Alice", CreatedAt: time.Now()}))
	_, _, err := s.ErasePersonData(ctx, "alice", "GDPR Art. 17", time.Now())
	must(t, err)
	err = s.CreatePerson(ctx, store.Person{ID: "alice", OrgID: "acme", Kind: store.PersonWorker, Name: "Another Alice", CreatedAt: time.Now()})
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("reusing an erased id: %v; want ErrConflict", err)
	}
	if err := s.SetPersonNotes(ctx, "alice", "x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("notes of an erased person: %v; want ErrNotFound", err)
	}
}
