package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"vigil/internal/app"
	"vigil/internal/backup"
	"vigil/internal/config"
	"vigil/internal/store"
	"vigil/internal/store/encrypted"
)

// TestRestoreReappliesErasures: a person erased after a backup was taken
// is erased again when that backup is restored, from the erasure ledger
// kept beside the key-encryption key (outside the data directory and its
// backups), even though the database that recorded the erasure is gone.
// Another person in the same backup is restored readable.
func TestRestoreReappliesErasures(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "data")
	if code, _, errs := cli(t, nil, "org", "add", "--data-dir", dir, "--id", "acme", "--name", "Acme Care"); code != 0 {
		t.Fatalf("org add: %s", errs)
	}
	add := func(name string) string {
		code, out, errs := cli(t, nil, "person", "add", "--data-dir", dir, "--org", "acme", "--name", name, "--kind", "resident")
		m := regexp.MustCompile(`person (\S+) created`).FindStringSubmatch(out)
		if code != 0 || m == nil {
			t.Fatalf("person add: %d %q %s", code, out, errs)
		}
		return m[1]
	}
	gone, kept := add("Zebedee Quackenbush"), add("Ada Lovelace")
	keys := backupKeys(t)
	to := filepath.Join(root, "backups")
	if code, out, errs := cli(t, nil, "backup", "--data-dir", dir, "--to", to, "--recipient", filepath.Join(keys, backup.RecipientFile),
		"--signing-key", filepath.Join(keys, backup.SigningKeyFile)); code != 0 {
		t.Fatalf("backup: %s%s", out, errs)
	}
	if code, out, errs := cli(t, nil, "person", "erase", "--data-dir", dir, "--id", gone, "--reason", "GDPR Art. 17 request"); code != 0 {
		t.Fatalf("erase: %s%s", out, errs)
	}
	kek := filepath.Join(root, "data-keys", "kek.key")
	ledger, err := encrypted.ReadLedger(encrypted.LedgerFile(kek))
	if err != nil || len(ledger) != 1 || ledger[0].PersonID != gone {
		t.Fatalf("ledger beside the key: %+v %v", ledger, err)
	}
	// Ransomware took the data directory: restore the earlier backup.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	bdirs, _ := filepath.Glob(filepath.Join(to, "vigil-*"))
	if len(bdirs) != 1 {
		t.Fatalf("backups %v", bdirs)
	}
	restored := filepath.Join(root, "restored")
	code, out, errs := cli(t, nil, "restore", "--from", bdirs[0], "--to", restored, "--identity", filepath.Join(keys, backup.IdentityFile),
		"--verify-key", filepath.Join(keys, backup.VerifyKeyFile), "--kek-file", kek)
	if code != 0 || !strings.Contains(out, "1 people erased again") {
		t.Fatalf("restore: %d\n%s%s", code, out, errs)
	}
	cfg := config.Default()
	cfg.DataDir, cfg.Keys.KEKFile = restored, kek
	st, err := app.OpenStore(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.GetPerson(context.Background(), gone); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the erased person is back after the restore: %v", err)
	}
	if p, err := st.GetPerson(context.Background(), kept); err != nil || p.Name != "Ada Lovelace" {
		t.Errorf("the other person: %+v %v", p, err)
	}
}
