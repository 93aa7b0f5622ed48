package snapshot_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"log"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"vigil/internal/audit"
	"vigil/internal/backup"
	"vigil/internal/backup/remote"
	"vigil/internal/backup/snapshot"
	"vigil/internal/store"
	"vigil/internal/store/sqlite"
)

// dataDir makes a SQLite data directory with an org, audit records and a
// key file under tls/.
func dataDir(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, snapshot.StoreFile), sqlite.Options{AutoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.CreateOrg(ctx, store.Org{ID: "acme", Name: "Acme", CreatedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	key, err := audit.LoadOrCreateKey(filepath.Join(dir, audit.KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	al := audit.New(st, key, slog.New(slog.DiscardHandler), nil, audit.Config{CheckpointEvery: 2})
	for range 4 {
		if err := al.Record(ctx, audit.Entry{OrgID: "acme", Actor: "u1", Action: "person.read", Outcome: audit.OutcomeOK}); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(dir, "tls"), 0o700)
	os.WriteFile(filepath.Join(dir, "tls", "ca.key"), []byte("ca key"), 0o600)
	return dir
}

// TestTakeToRemote: TakeTo with an uploader writes the backup to the
// HTTPS target only (the staging copy is gone), and it restores from a
// download with every check.
func TestTakeToRemote(t *testing.T) {
	ctx := context.Background()
	dd := dataDir(t)
	host := filepath.Join(t.TempDir(), "host")
	const token = "snapshot-test-token-0001"
	rv, err := remote.NewReceiver(host, token, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(rv)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	c, err := remote.NewClient(srv.URL+"/", ca, token)
	if err != nil {
		t.Fatal(err)
	}
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	id, _ := age.GenerateX25519Identity()
	src := snapshot.Source{DataDir: dd, Kind: snapshot.KindSQLite, DSN: filepath.Join(dd, snapshot.StoreFile), VigilVersion: "test"}
	loc, m, err := snapshot.TakeTo(ctx, src, "", c, time.Now(), id.Recipient(), key)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(loc, srv.URL+"/vigil-") || m.Counts["orgs"] != 1 || m.Counts["audit_log"] != 4 {
		t.Fatalf("TakeTo: %s %+v", loc, m.Counts)
	}
	if _, err := backup.Verify(filepath.Join(host, m.Name), pub); err != nil {
		t.Errorf("the host's copy: %v", err)
	}
	got, err := remote.Download(ctx, loc, ca, token, pub, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, sum, err := snapshot.Restore(ctx, got, snapshot.Target{DataDir: filepath.Join(t.TempDir(), "r")}, pub, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.AuditRecords != 4 || sum.AuditCheckpoints != 2 || sum.Counts["orgs"] != 1 {
		t.Errorf("restored: %+v", sum)
	}
}

// TestRestoreRefusesKinds: a SQLite backup given a PostgreSQL target is
// refused before anything is written, as is an unknown store kind.
func TestRestoreRefusesKinds(t *testing.T) {
	ctx := context.Background()
	dd := dataDir(t)
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	id, _ := age.GenerateX25519Identity()
	dir, _, err := snapshot.Take(ctx, snapshot.Source{DataDir: dd, Kind: snapshot.KindSQLite, DSN: filepath.Join(dd, snapshot.StoreFile)}, t.TempDir(), time.Now(), id.Recipient(), key)
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "r")
	_, _, err = snapshot.Restore(ctx, dir, snapshot.Target{DataDir: target, PostgresURL: "postgres://127.0.0.1:1/x"}, pub, id, nil)
	if err == nil || !strings.Contains(err.Error(), "SQLite backup") {
		t.Errorf("SQLite backup into PostgreSQL: %v", err)
	}
	if _, err := os.Stat(target); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused restore created its target: %v", err)
	}
	if _, _, err := snapshot.Take(ctx, snapshot.Source{DataDir: dd, Kind: "mysql"}, t.TempDir(), time.Now(), id.Recipient(), key); err == nil {
		t.Error("Take of an unknown store kind")
	}
	if left, _ := filepath.Glob(filepath.Join(dd, ".backup-*")); len(left) != 0 {
		t.Errorf("temp dirs left in the data dir: %v", left)
	}
}
