package app_test

import (
	"context"
	"crypto/ed25519"
	"encoding/pem"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vigil/internal/app"
	"vigil/internal/backup"
	"vigil/internal/backup/remote"
	"vigil/internal/backup/snapshot"
	"vigil/internal/clock"
	"vigil/internal/config"
	"vigil/internal/store"
	"vigil/internal/vigiltest"
)

// backupMetric reads a scheduled-backup gauge or counter.
func backupMetric(t *testing.T, a *app.App, name string) float64 {
	t.Helper()
	mfs, err := a.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

func backupAudit(t *testing.T, a *app.App) []store.AuditRecord {
	t.Helper()
	recs, err := a.Store().ListAudit(context.Background(), store.AuditFilter{Action: "backup.create"})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func completeBackups(to string) []string {
	sigs, _ := filepath.Glob(filepath.Join(to, "vigil-*", backup.SignatureFile))
	return sigs
}

// TestScheduledBackups: with backup.every set, the server backs up on its
// clock (first 5 minutes after start, then every period), records the
// metrics and an audit entry each time, a failed run (the signing key
// made readable by others) counts as a failure and is audited, and the
// backups restore and verify.
func TestScheduledBackups(t *testing.T) {
	start := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	clk := clock.NewManual(start)
	cfg := vigiltest.Config(t)
	kf, err := backup.GenerateKeys(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	to := filepath.Join(t.TempDir(), "backups")
	cfg.Backup = config.BackupConfig{Every: time.Hour, To: to, RecipientFile: kf.Recipient, SigningKeyFile: kf.SigningKey}
	a, _ := vigiltest.StartAppWith(t, cfg, app.Deps{Clock: clk})
	ctx := context.Background()
	if err := a.Store().CreateOrg(ctx, store.Org{ID: "acme", Name: "Acme", CreatedAt: start}); err != nil {
		t.Fatal(err)
	}

	clk.Advance(4 * time.Minute)
	if n := len(completeBackups(to)); n != 0 || backupMetric(t, a, "vigil_backup_last_success_timestamp_seconds") != 0 {
		t.Fatalf("%d backups before the first run", n)
	}
	clk.Advance(time.Minute)
	eventually(t, "the first scheduled backup", func() bool {
		return backupMetric(t, a, "vigil_backup_last_success_timestamp_seconds") == float64(start.Add(5*time.Minute).Unix())
	})
	if got := completeBackups(to); len(got) != 1 || !strings.Contains(got[0], "vigil-20261129T090500Z-") {
		t.Fatalf("backups after the first run: %v", got)
	}
	if backupMetric(t, a, "vigil_backup_last_size_bytes") <= 0 || backupMetric(t, a, "vigil_backup_failures_total") != 0 {
		t.Error("size or failure metric wrong after a successful run")
	}
	recs := backupAudit(t, a)
	if len(recs) != 1 || recs[0].Outcome != "ok" || recs[0].Actor != "system" || !strings.HasPrefix(recs[0].ObjectID, "vigil-20261129T090500Z-") {
		t.Fatalf("audit after the first run: %+v", recs)
	}

	// The key is made readable by others: the next run refuses it.
	if err := os.Chmod(kf.SigningKey, 0o644); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	eventually(t, "the failed run", func() bool { return backupMetric(t, a, "vigil_backup_failures_total") == 1 })
	eventually(t, "the failed run's audit entry", func() bool { return len(backupAudit(t, a)) == 2 })
	if r := backupAudit(t, a)[1]; r.Outcome != "failed" || !strings.Contains(r.Details, "reason") {
		t.Errorf("audit of the failed run: %+v", r)
	}
	if err := os.Chmod(kf.SigningKey, 0o600); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	eventually(t, "the third run", func() bool { return len(completeBackups(to)) == 2 && len(backupAudit(t, a)) == 3 })
	if got := backupMetric(t, a, "vigil_backup_last_success_timestamp_seconds"); got != float64(start.Add(2*time.Hour+5*time.Minute).Unix()) {
		t.Errorf("last success %v", time.Unix(int64(got), 0).UTC())
	}

	// A scheduled backup restores and verifies like a manual one.
	pub, err := backup.LoadVerifyKey(kf.VerifyKey)
	if err != nil {
		t.Fatal(err)
	}
	id, err := backup.LoadIdentity(kf.Identity)
	if err != nil {
		t.Fatal(err)
	}
	m, sum, err := snapshot.Restore(ctx, filepath.Dir(completeBackups(to)[1]), snapshot.Target{DataDir: filepath.Join(t.TempDir(), "r")}, ed25519.PublicKey(pub), id, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Store != "sqlite" || sum.Counts["orgs"] < 1 || sum.AuditRecords < 2 {
		t.Errorf("restored %s store: %+v", m.Store, sum)
	}
}

// TestBackupConfigValidation: each bad backup.* value is refused with an
// error naming the option.
func TestBackupConfigValidation(t *testing.T) {
	kf, err := backup.GenerateKeys(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	notRecipient := filepath.Join(t.TempDir(), "r.txt")
	os.WriteFile(notRecipient, []byte("hello\n"), 0o600)
	loose := filepath.Join(t.TempDir(), "loose.key")
	b, _ := os.ReadFile(kf.SigningKey)
	os.WriteFile(loose, b, 0o644)
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(notPEM, []byte("nope"), 0o600)
	good := func(c *config.Config) {
		c.Backup = config.BackupConfig{Every: time.Hour, To: filepath.Join(t.TempDir(), "b"), RecipientFile: kf.Recipient, SigningKeyFile: kf.SigningKey}
	}
	cases := []struct {
		name string
		set  func(c *config.Config)
		want string
	}{
		{"too often", func(c *config.Config) { good(c); c.Backup.Every = time.Second }, "backup.every"},
		{"negative", func(c *config.Config) { good(c); c.Backup.Every = -time.Hour }, "backup.every"},
		{"no target", func(c *config.Config) { good(c); c.Backup.To = "" }, "backup.to"},
		{"target in the data dir", func(c *config.Config) { good(c); c.Backup.To = filepath.Join(c.DataDir, "b") }, "backup.to"},
		{"plain http", func(c *config.Config) { good(c); c.Backup.To = "http://backup.example/" }, "backup.to"},
		{"token in the URL", func(c *config.Config) {
			good(c)
			c.Backup.To, c.Backup.Token = "https://u:p@backup.example/", "t"
		}, "backup.to"},
		{"https without a token", func(c *config.Config) { good(c); c.Backup.To = "https://backup.example/" }, "backup.token"},
		{"CA without https", func(c *config.Config) { good(c); c.Backup.ToCA = notPEM }, "backup.to_ca"},
		{"CA not PEM", func(c *config.Config) {
			good(c)
			c.Backup.To, c.Backup.Token, c.Backup.ToCA = "https://backup.example/", "t", notPEM
		}, "backup.to_ca"},
		{"no recipient", func(c *config.Config) { good(c); c.Backup.RecipientFile = "" }, "backup.recipient_file"},
		{"recipient file missing", func(c *config.Config) { good(c); c.Backup.RecipientFile = notRecipient + ".gone" }, "backup.recipient_file"},
		{"not a recipient", func(c *config.Config) { good(c); c.Backup.RecipientFile = notRecipient }, "backup.recipient_file"},
		{"no signing key", func(c *config.Config) { good(c); c.Backup.SigningKeyFile = "" }, "backup.signing_key_file"},
		{"signing key readable by others", func(c *config.Config) { good(c); c.Backup.SigningKeyFile = loose }, "backup.signing_key_file"},
		{"signing key in the data dir", func(c *config.Config) { good(c); c.Backup.SigningKeyFile = filepath.Join(c.DataDir, "k") }, "backup.signing_key_file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := vigiltest.Config(t)
			c.set(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate: %v, want an error naming %s", err, c.want)
			}
			if strings.Contains(err.Error(), "u:p@") {
				t.Errorf("the error echoes credentials: %v", err)
			}
		})
	}
	cfg := vigiltest.Config(t)
	good(&cfg)
	if err := cfg.Validate(); err != nil {
		t.Errorf("a good backup config: %v", err)
	}
	cfg.Backup = config.BackupConfig{}
	if err := cfg.Validate(); err != nil {
		t.Errorf("backups off: %v", err)
	}
}

// TestScheduledBackupsRemote: scheduled backups go to an append-only
// HTTPS target (verified against a private CA, bearer token from
// backup.token) and nothing stays staged on the server.
func TestScheduledBackupsRemote(t *testing.T) {
	start := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	clk := clock.NewManual(start)
	host := filepath.Join(t.TempDir(), "host")
	const token = "scheduled-backup-token-01"
	rv, err := remote.NewReceiver(host, token, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(rv)
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
	kf, err := backup.GenerateKeys(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := vigiltest.Config(t)
	cfg.Backup = config.BackupConfig{Every: 30 * time.Minute, To: srv.URL + "/", ToCA: caFile, Token: config.Secret(token),
		RecipientFile: kf.Recipient, SigningKeyFile: kf.SigningKey}
	a, _ := vigiltest.StartAppWith(t, cfg, app.Deps{Clock: clk})
	clk.Advance(5 * time.Minute)
	eventually(t, "the scheduled upload", func() bool {
		return backupMetric(t, a, "vigil_backup_last_success_timestamp_seconds") > 0
	})
	if got := completeBackups(host); len(got) != 1 {
		t.Fatalf("on the backup host: %v", got)
	}
	pub, _ := backup.LoadVerifyKey(kf.VerifyKey)
	if _, err := backup.Verify(filepath.Dir(completeBackups(host)[0]), pub); err != nil {
		t.Errorf("the uploaded backup: %v", err)
	}
	if recs := backupAudit(t, a); len(recs) != 1 || recs[0].Outcome != "ok" {
		t.Errorf("audit: %+v", recs)
	}
}

// TestScheduledBackupsPostgres: on a PostgreSQL store the scheduled
// backup is the logical dump, and it restores into an empty schema with
// every check.
func TestScheduledBackupsPostgres(t *testing.T) {
	start := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	clk := clock.NewManual(start)
	kf, err := backup.GenerateKeys(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := vigiltest.Config(t)
	cfg.Store = config.Secret(vigiltest.PostgresURL(t))
	to := filepath.Join(t.TempDir(), "backups")
	cfg.Backup = config.BackupConfig{Every: time.Hour, To: to, RecipientFile: kf.Recipient, SigningKeyFile: kf.SigningKey}
	a, _ := vigiltest.StartAppWith(t, cfg, app.Deps{Clock: clk})
	ctx := context.Background()
	if err := a.Store().CreateOrg(ctx, store.Org{ID: "acme", Name: "Acme", CreatedAt: start}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(5 * time.Minute)
	eventually(t, "the scheduled dump", func() bool {
		return backupMetric(t, a, "vigil_backup_last_success_timestamp_seconds") > 0
	})
	pub, _ := backup.LoadVerifyKey(kf.VerifyKey)
	id, _ := backup.LoadIdentity(kf.Identity)
	m, sum, err := snapshot.Restore(ctx, filepath.Dir(completeBackups(to)[0]),
		snapshot.Target{DataDir: filepath.Join(t.TempDir(), "r"), PostgresURL: vigiltest.PostgresURL(t)}, pub, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Store != "postgres" || sum.Counts["orgs"] != 1 || sum.Counts["positions"] != 0 {
		t.Errorf("restored %s store: %+v", m.Store, sum)
	}
	if recs := backupAudit(t, a); len(recs) != 1 || recs[0].Outcome != "ok" || recs[0].ObjectID != m.Name {
		t.Errorf("audit: %+v", recs)
	}
}
