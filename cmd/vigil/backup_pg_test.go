package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"vigil/internal/app"
	"vigil/internal/audit"
	"vigil/internal/backup"
	"vigil/internal/config"
	"vigil/internal/store/postgres"
	"vigil/internal/store/storetest"
	"vigil/internal/vigiltest"
)

// pgRows is every row of every table of the schema in url's search_path
// (schema_migrations aside: its applied_at is the load's time), as text,
// sorted.
func pgRows(t *testing.T, dsn string) map[string][]string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'schema_migrations'`)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, n := range names {
		rows, err := conn.Query(ctx, `SELECT t::text FROM `+pgx.Identifier{n}.Sanitize()+` t ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		if out[n], err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func searchPath(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("search_path")
}

// TestBackupRestoreDrillPostgres is the restore drill on PostgreSQL: back
// up a running server on PostgreSQL (a logical dump in one snapshot),
// restore into an empty schema and data directory (signature, checksums,
// schema version, row counts and the audit chain verified), find every
// table's rows equal, and start a server on it; a damaged backup, a
// missing signature, another key and a non-empty schema are refused
// before anything is written.
func TestBackupRestoreDrillPostgres(t *testing.T) {
	cfg := vigiltest.Config(t)
	srcURL := vigiltest.PostgresURL(t)
	cfg.Store = config.Secret(srcURL)
	a, stopA := vigiltest.StartAppWith(t, cfg, app.Deps{})
	alert := seedRunning(t, a, cfg.DataDir)
	storetest.BenchSeed(t, a.Store())
	ctx := context.Background()
	for i := 0; i < 3000; i += 1000 {
		if _, err := a.Store().ApplyEvents(ctx, storetest.BenchEvents(i, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	keys := backupKeys(t)
	takeBackup := func() string {
		t.Helper()
		to := t.TempDir()
		code, out, errs := cli(t, nil, "backup", "--data-dir", cfg.DataDir, "--store", srcURL, "--to", to,
			"--recipient", filepath.Join(keys, backup.RecipientFile), "--signing-key", filepath.Join(keys, backup.SigningKeyFile))
		if code != 0 || !strings.Contains(out, "postgres store") || !strings.Contains(out, "positions 3001") {
			t.Fatalf("backup: %d\n%s%s", code, out, errs)
		}
		if strings.Contains(out+errs, "search_path=") {
			t.Errorf("the store URL is in the output: %s%s", out, errs)
		}
		bdirs, _ := filepath.Glob(filepath.Join(to, "vigil-*"))
		if len(bdirs) != 1 {
			t.Fatalf("backup dirs %v", bdirs)
		}
		return bdirs[0]
	}
	// Online, then (for an exact comparison of every row) stopped.
	online := takeBackup()
	stopA()
	bdir := takeBackup()
	if b := dirBytes(t, bdir); strings.Contains(string(b), backupCanary) || strings.Contains(string(b), "CANARY-7f3a") {
		t.Error("the canary name is in the backup in plaintext")
	}
	if left, _ := filepath.Glob(filepath.Join(cfg.DataDir, ".backup-*")); len(left) != 0 {
		t.Errorf("dump temp dirs left: %v", left)
	}

	restore := func(from, target, store string, extra ...string) (int, string, string) {
		args := []string{"restore", "--from", from, "--to", target, "--identity", filepath.Join(keys, backup.IdentityFile), "--verify-key", filepath.Join(keys, backup.VerifyKeyFile)}
		if store != "" {
			args = append(args, "--store", store)
		}
		return cli(t, nil, append(args, extra...)...)
	}

	// Refusals first, into one empty schema that must stay empty.
	emptyURL := vigiltest.PostgresURL(t)
	other := backupKeys(t)
	tampered := copyDir(t, bdir)
	damagePart(t, tampered, "postgres/positions.copy", func(b []byte) []byte { b[len(b)/3] ^= 0x08; return b })
	truncated := copyDir(t, bdir)
	damagePart(t, truncated, "postgres/audit_log.copy", func(b []byte) []byte { return b[:len(b)-100] })
	noSig := copyDir(t, bdir)
	if err := os.Remove(filepath.Join(noSig, backup.SignatureFile)); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		from   string
		store  string
		extra  []string
		stderr []string
	}{
		{"tampered part", tampered, emptyURL, nil, []string{"part postgres/positions.copy", "checksum mismatch"}},
		{"truncated part", truncated, emptyURL, nil, []string{"part postgres/audit_log.copy", "truncated"}},
		{"no manifest.sig", noSig, emptyURL, nil, []string{backup.SignatureFile, "incomplete"}},
		{"another signing key", bdir, emptyURL, []string{"--verify-key", filepath.Join(other, backup.VerifyKeyFile)}, []string{"signature does not verify"}},
		{"non-empty schema", bdir, srcURL, nil, []string{"not empty"}},
		{"no --store", bdir, "", nil, []string{"PostgreSQL backup", "--store"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			target := filepath.Join(t.TempDir(), "x")
			code, out, errs := restore(c.from, target, c.store, c.extra...)
			if code != 1 {
				t.Fatalf("exit %d, want 1\n%s%s", code, out, errs)
			}
			for _, w := range c.stderr {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr %q lacks %q", errs, w)
				}
			}
			if strings.Contains(errs, "search_path=") || strings.Contains(errs, "sslmode") {
				t.Errorf("the store URL is in the error: %s", errs)
			}
			if _, err := os.Stat(target); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a refused restore created its target: %v", err)
			}
			if err := postgres.CheckEmpty(ctx, emptyURL, ""); err != nil {
				t.Errorf("a refused restore wrote into the schema: %v", err)
			}
		})
	}

	code, out, errs := restore(online, filepath.Join(t.TempDir(), "restored-online"), vigiltest.PostgresURL(t))
	if code != 0 || !strings.Contains(out, "rows match the manifest") || !strings.Contains(out, "audit log intact: 7 records, 2 checkpoints") {
		t.Fatalf("restore of the backup taken online: %d\n%s%s", code, out, errs)
	}
	target := filepath.Join(t.TempDir(), "restored")
	dstURL := vigiltest.PostgresURL(t)
	code, out, errs = restore(bdir, target, dstURL)
	if code != 0 || !strings.Contains(out, "rows match the manifest") || !strings.Contains(out, "audit log intact: 7 records, 2 checkpoints") || !strings.Contains(out, "positions 3001") {
		t.Fatalf("restore: %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(target, "postgres")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the plaintext dump is left in the data dir: %v", err)
	}
	want, got := pgRows(t, srcURL), pgRows(t, dstURL)
	if len(want) < 10 || len(got) != len(want) {
		t.Fatalf("%d tables restored, %d in the source", len(got), len(want))
	}
	for n, rows := range want {
		if !slices.Equal(rows, got[n]) {
			t.Errorf("table %s (schema %s): %d rows restored, %d in the source, or they differ", n, searchPath(t, dstURL), len(got[n]), len(rows))
		}
	}

	// A new server on the restored data dir and schema has the same data.
	cfg2 := vigiltest.Config(t)
	cfg2.DataDir = target
	cfg2.Store = config.Secret(dstURL)
	cfg2.Keys.KEKFile = cfg.KEKPath() // the install's key-encryption key, kept outside data dir and backups
	b := vigiltest.StartApp(t, cfg2)
	p, err := b.Store().GetPerson(ctx, "p1")
	if err != nil || p.Name != backupCanary {
		t.Errorf("restored person: %v %q", err, p.Name)
	}
	al, err := b.Store().GetAlert(ctx, alert.ID)
	if err != nil || al.Kind != alert.Kind || al.PersonID != "p1" {
		t.Errorf("restored alert: %v %+v", err, al)
	}
	// The restored server takes new events (sequences moved on).
	if n, err := b.Store().ApplyEvents(ctx, storetest.BenchEvents(5000, 10)); err != nil || n != 10 {
		t.Errorf("events after restore: %d %v", n, err)
	}
}

// BenchmarkBackupRestorePostgres times `vigil backup` (the logical dump
// in one snapshot) and `vigil restore` (migrate, COPY, sequences, row
// counts and the audit chain) of a PostgreSQL store holding
// VIGIL_BENCH_POSITIONS positions (default 1,000,000) and 1,000 audit
// records:
//
//	VIGIL_TEST_POSTGRES_URL=… go test ./cmd/vigil -run '^$' -bench BackupRestorePostgres -benchtime 1x -count 3 -v
func BenchmarkBackupRestorePostgres(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("VIGIL_BENCH_POSITIONS"); v != "" {
		if _, err := fmt.Sscan(v, &n); err != nil {
			b.Fatalf("VIGIL_BENCH_POSITIONS: %v", err)
		}
	}
	ctx := context.Background()
	srcURL := vigiltest.PostgresURL(b)
	st, err := postgres.Open(ctx, srcURL, postgres.Options{AutoMigrate: true})
	if err != nil {
		b.Fatal(err)
	}
	storetest.BenchSeed(b, st)
	const batch = 5000
	for i := 0; i < n; i += batch {
		if _, err := st.ApplyEvents(ctx, storetest.BenchEvents(i, min(batch, n-i))); err != nil {
			b.Fatal(err)
		}
	}
	dataDir := b.TempDir()
	key, err := audit.LoadOrCreateKey(filepath.Join(dataDir, audit.KeyFileName))
	if err != nil {
		b.Fatal(err)
	}
	al := audit.New(st, key, slog.New(slog.DiscardHandler), nil, audit.Config{CheckpointEvery: 100})
	for i := range 1000 {
		if err := al.Record(ctx, audit.Entry{OrgID: "bench", Actor: "u1", Action: "person.read", ObjectID: fmt.Sprint(i), Outcome: audit.OutcomeOK}); err != nil {
			b.Fatal(err)
		}
	}
	st.Close()
	keys := filepath.Join(b.TempDir(), "keys")
	if _, err := backup.GenerateKeys(keys); err != nil {
		b.Fatal(err)
	}
	to := filepath.Join(b.TempDir(), "backups")
	runOK := func(args ...string) string {
		var out, errs bytes.Buffer
		if code := run(ctx, args, func(string) string { return "" }, &out, &errs); code != 0 {
			b.Fatalf("vigil %s: %d %s", args[0], code, errs.String())
		}
		return out.String()
	}
	var last string
	b.Run("backup", func(b *testing.B) {
		for range b.N {
			last = runOK("backup", "--data-dir", dataDir, "--store", srcURL, "--to", to, "--recipient", filepath.Join(keys, backup.RecipientFile), "--signing-key", filepath.Join(keys, backup.SigningKeyFile))
		}
		b.ReportMetric(float64(n), "positions")
	})
	b.Log(strings.TrimSpace(last))
	bdirs, _ := filepath.Glob(filepath.Join(to, "vigil-*"))
	if len(bdirs) == 0 {
		b.Fatal("no backup")
	}
	b.Run("restore", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			target := filepath.Join(b.TempDir(), "restored")
			dst := vigiltest.PostgresURL(b)
			b.StartTimer()
			last = runOK("restore", "--from", bdirs[0], "--to", target, "--store", dst, "--identity", filepath.Join(keys, backup.IdentityFile), "--verify-key", filepath.Join(keys, backup.VerifyKeyFile))
		}
		b.ReportMetric(float64(n), "positions")
	})
	b.Log(strings.TrimSpace(last))
}
