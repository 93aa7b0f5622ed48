package main

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"vigil/internal/audit"
	"vigil/internal/backup"
	"vigil/internal/config"
	"vigil/internal/store/sqlite"
)

const (
	backupUsage  = "vigil backup --to DIR --recipient AGE1…|FILE --signing-key FILE [--jetstream] | vigil backup keygen --out DIR"
	restoreUsage = "vigil restore --from BACKUP_DIR --to EMPTY_DATA_DIR --identity AGE_KEY_FILE --verify-key PUB_FILE"
	// Environment fallbacks for the two backup flags.
	envBackupRecipient  = "VIGIL_BACKUP_RECIPIENT"
	envBackupSigningKey = "VIGIL_BACKUP_SIGNING_KEY_FILE"
)

// storeFile is the SQLite store's name inside a data directory and a backup.
const storeFile = "vigil.db"

// runBackup makes an encrypted, signed backup of the data directory
// (keygen: makes the keys it needs).
func runBackup(ctx context.Context, e env, args []string) error {
	if len(args) > 0 && args[0] == "keygen" {
		return runBackupKeygen(e, args[1:])
	}
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	to := fs.String("to", "", "the backup target `dir`: each backup is a new directory in it (nothing there is ever overwritten or deleted)")
	recipient := fs.String("recipient", "", "the age recipient (age1…, or a file holding it) the backup is encrypted to (env "+envBackupRecipient+")")
	signingKey := fs.String("signing-key", "", "the Ed25519 backup signing key `file` from 'vigil backup keygen', outside the data directory (env "+envBackupSigningKey+")")
	withJS := fs.Bool("jetstream", false, "also copy the JetStream directory (consistent only while the server is stopped; see docs/backup.md)")
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("vigil backup: unexpected argument %q; usage: %s", fs.Arg(0), backupUsage)
	}
	if *recipient == "" {
		*recipient = e.getenv(envBackupRecipient)
	}
	if *signingKey == "" {
		*signingKey = e.getenv(envBackupSigningKey)
	}
	switch {
	case *to == "":
		return usagef("vigil backup: --to is required; usage: %s", backupUsage)
	case *recipient == "":
		return usagef("vigil backup: --recipient (or %s) is required; usage: %s", envBackupRecipient, backupUsage)
	case *signingKey == "":
		return usagef("vigil backup: --signing-key (or %s) is required; usage: %s", envBackupSigningKey, backupUsage)
	}
	if inside(cfg.DataDir, *to) {
		return usagef("vigil backup: --to must be outside the data directory %s (a backup next to the data does not survive its loss)", cfg.DataDir)
	}
	if inside(cfg.DataDir, *signingKey) {
		return usagef("vigil backup: --signing-key must be outside the data directory %s (whoever takes the data dir could sign forged backups)", cfg.DataDir)
	}
	rcpt, err := backup.ParseRecipient(*recipient)
	if err != nil {
		return usagef("vigil backup: --recipient: %v", err)
	}
	key, err := backup.LoadSigningKey(*signingKey)
	if err != nil {
		return fmt.Errorf("--signing-key: %w", err)
	}
	kind, dsn := cfg.StoreKind()
	if kind == "postgres" {
		return errors.New("backup of a PostgreSQL store is not supported yet: use pg_dump for the database, then back up the data directory's keys with this command's SQLite path (see docs/backup.md)")
	}
	start := time.Now()
	dir, m, err := backupSQLite(ctx, cfg, dsn, *to, *withJS, rcpt.String(), key)
	if err != nil {
		return err
	}
	var size int64
	for _, p := range m.Parts {
		size += p.Size
	}
	fmt.Fprintf(e.stdout, "backup %s: %d parts, %d bytes encrypted, schema %d, %s in %v\n", dir, len(m.Parts), size, m.SchemaVersion, countSummary(m.Counts), time.Since(start).Round(time.Millisecond))
	return nil
}

// backupSQLite snapshots the store with VACUUM INTO (a consistent read
// transaction: the server keeps running and writing), counts its rows,
// and writes the backup with the data dir's key files.
func backupSQLite(ctx context.Context, cfg config.Config, dsn, to string, withJS bool, recipient string, key ed25519.PrivateKey) (string, backup.Manifest, error) {
	if _, err := os.Stat(dsn); err != nil {
		return "", backup.Manifest{}, fmt.Errorf("back up store %s: %w", dsn, err)
	}
	// The plaintext snapshot lives only in the data dir (same protection
	// as the store itself) and is removed when the backup is written.
	tmp, err := os.MkdirTemp(cfg.DataDir, ".backup-")
	if err != nil {
		return "", backup.Manifest{}, fmt.Errorf("back up store: %w", err)
	}
	defer os.RemoveAll(tmp)
	snap := filepath.Join(tmp, storeFile)
	if err := vacuumInto(ctx, dsn, snap); err != nil {
		return "", backup.Manifest{}, err
	}
	st, err := sqlite.Status(ctx, snap)
	if err != nil {
		return "", backup.Manifest{}, fmt.Errorf("back up store: %w", err)
	}
	if err := st.Err(); err != nil {
		return "", backup.Manifest{}, fmt.Errorf("back up store: this binary does not match the store's schema: %w", err)
	}
	counts, err := tableCounts(ctx, snap)
	if err != nil {
		return "", backup.Manifest{}, err
	}
	m := backup.Manifest{VigilVersion: vigilVersion(), Store: "sqlite", SchemaVersion: st.Current, Counts: counts}
	parts := []backup.Part{{Name: storeFile, Path: snap, Mode: 0o600}}
	files, err := dataDirFiles(cfg.DataDir, dsn, withJS)
	if err != nil {
		return "", backup.Manifest{}, err
	}
	parts = append(parts, files...)
	if k, err := audit.LoadKey(filepath.Join(cfg.DataDir, audit.KeyFileName)); err == nil {
		m.AuditPublicKey = hex.EncodeToString(k.Public().(ed25519.PublicKey))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", backup.Manifest{}, err
	}
	if !withJS {
		m.Notes = append(m.Notes, "jetstream not included: the store is the system of record; a restored server starts with an empty event stream")
	}
	rcpt, err := backup.ParseRecipient(recipient)
	if err != nil {
		return "", backup.Manifest{}, err
	}
	dir, err := backup.Write(to, time.Now(), m, parts, rcpt, key)
	if err != nil {
		return dir, backup.Manifest{}, err
	}
	// Read back what was written: the manifest as signed.
	got, err := backup.Verify(dir, key.Public().(ed25519.PublicKey))
	if err != nil {
		return dir, backup.Manifest{}, fmt.Errorf("check the backup just written: %w", err)
	}
	return dir, got, nil
}

// vacuumInto writes a consistent, compacted copy of the database at src
// to dst. It runs as one read transaction beside the server's writer (WAL).
func vacuumInto(ctx context.Context, src, dst string) error {
	// 128 MiB of page cache at most (it grows only as used): VACUUM INTO
	// rebuilds every index, and a small cache makes that thrash on a
	// large store.
	db, err := sql.Open("sqlite", src+"?_pragma=busy_timeout(10000)&_pragma=cache_size(-131072)")
	if err != nil {
		return fmt.Errorf("snapshot store: %w", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		return fmt.Errorf("snapshot store: %w", err)
	}
	return os.Chmod(dst, 0o600)
}

// tableCounts counts the rows of every table of the database at path.
func tableCounts(ctx context.Context, path string) (map[string]int64, error) {
	db, err := sql.Open("sqlite", path+"?_pragma=query_only(1)&_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, fmt.Errorf("count rows: %w", err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("count rows: %w", err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("count rows: %w", err)
		}
		names = append(names, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count rows: %w", err)
	}
	counts := make(map[string]int64, len(names))
	for _, n := range names {
		var c int64
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM "`+strings.ReplaceAll(n, `"`, `""`)+`"`).Scan(&c); err != nil {
			return nil, fmt.Errorf("count rows of %s: %w", n, err)
		}
		counts[n] = c
	}
	return counts, nil
}

// dataDirFiles lists the data directory's regular files to back up: the
// CA and TLS keys (tls/), the seal, session and audit signing keys and
// whatever else lives there, but not the live store (snapshotted
// instead), earlier snapshot temp dirs, or JetStream unless asked.
func dataDirFiles(dataDir, dsn string, withJS bool) ([]backup.Part, error) {
	skip := map[string]bool{}
	if rel, err := filepath.Rel(dataDir, dsn); err == nil && !strings.HasPrefix(rel, "..") {
		for _, suf := range []string{"", "-wal", "-shm", "-journal"} {
			skip[filepath.ToSlash(rel)+suf] = true
		}
	}
	var parts []backup.Part
	err := filepath.WalkDir(dataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dataDir, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".backup-") || (name == "jetstream" && !withJS) {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || skip[name] {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		parts = append(parts, backup.Part{Name: name, Path: p, Mode: fi.Mode().Perm()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list data directory: %w", err)
	}
	return parts, nil
}

func runBackupKeygen(e env, args []string) error {
	fs := flag.NewFlagSet("backup keygen", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	out := fs.String("out", "", "the `dir` for the keys: NOT the data directory; move "+backup.IdentityFile+" offline afterwards")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		return usagef("vigil backup keygen: --out is required; usage: %s", backupUsage)
	}
	kf, err := backup.GenerateKeys(*out)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "signing key  %s (0600: for 'vigil backup --signing-key', keep it outside the data directory)\n", kf.SigningKey)
	fmt.Fprintf(e.stdout, "verify key   %s (for 'vigil restore --verify-key')\n", kf.VerifyKey)
	fmt.Fprintf(e.stdout, "identity     %s (0600: decrypts backups; store it offline, not on the server)\n", kf.Identity)
	fmt.Fprintf(e.stdout, "recipient    %s (%s)\n", kf.RecipientText, kf.Recipient)
	return nil
}

// runRestore verifies a backup, restores it into an empty data directory
// and checks the restored store.
func runRestore(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	from := fs.String("from", "", "the backup `dir` (one vigil-… directory)")
	to := fs.String("to", "", "the data `dir` to restore into: must not exist or be empty")
	idFile := fs.String("identity", "", "the age identity `file` that decrypts the backup")
	verifyKey := fs.String("verify-key", "", "the backup signing key's public half (`file`: PEM or hex)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, f := range []struct{ name, v string }{{"--from", *from}, {"--to", *to}, {"--identity", *idFile}, {"--verify-key", *verifyKey}} {
		if f.v == "" {
			return usagef("vigil restore: %s is required; usage: %s", f.name, restoreUsage)
		}
	}
	if fs.NArg() > 0 {
		return usagef("vigil restore: unexpected argument %q; usage: %s", fs.Arg(0), restoreUsage)
	}
	pub, err := backup.LoadVerifyKey(*verifyKey)
	if err != nil {
		return fmt.Errorf("--verify-key: %w", err)
	}
	id, err := backup.LoadIdentity(*idFile)
	if err != nil {
		return fmt.Errorf("--identity: %w", err)
	}
	start := time.Now()
	m, err := backup.Restore(*from, *to, pub, id, func(m backup.Manifest) error {
		if m.Store != "sqlite" || !slices.ContainsFunc(m.Parts, func(p backup.PartInfo) bool { return p.Name == storeFile }) {
			return fmt.Errorf("restore: backup of a %q store without %s: only SQLite backups restore", m.Store, storeFile)
		}
		fmt.Fprintf(e.stdout, "signature and %d part checksums verified (backup %s, taken %s, vigil %s)\n", len(m.Parts), m.Name, m.Created.Format(time.RFC3339), m.VigilVersion)
		return nil
	})
	if err != nil {
		return err
	}
	sum, err := verifyRestored(ctx, *to, m)
	if err != nil {
		return fmt.Errorf("restored data in %s failed verification, do not start vigil on it: %w", *to, err)
	}
	fmt.Fprintf(e.stdout, "restored into %s in %v\n%s", *to, time.Since(start).Round(time.Millisecond), sum)
	return nil
}

// verifyRestored opens the restored store (refusing a schema that is not
// this binary's), checks the schema version and every table's row count
// against the manifest, and verifies the audit chain with the audit key
// the manifest names.
func verifyRestored(ctx context.Context, dataDir string, m backup.Manifest) (string, error) {
	dbPath := filepath.Join(dataDir, storeFile)
	status, err := sqlite.Status(ctx, dbPath)
	if err != nil {
		return "", err
	}
	if status.Current != m.SchemaVersion {
		return "", fmt.Errorf("schema version %d, manifest says %d", status.Current, m.SchemaVersion)
	}
	st, err := sqlite.Open(ctx, dbPath, sqlite.Options{})
	if err != nil {
		return "", err
	}
	defer st.Close()
	counts, err := tableCounts(ctx, dbPath)
	if err != nil {
		return "", err
	}
	for name, want := range m.Counts {
		if got, ok := counts[name]; !ok || got != want {
			return "", fmt.Errorf("table %s has %d rows, manifest says %d", name, got, want)
		}
	}
	for name := range counts {
		if _, ok := m.Counts[name]; !ok {
			return "", fmt.Errorf("table %s is not in the manifest", name)
		}
	}
	var pub ed25519.PublicKey
	if m.AuditPublicKey != "" {
		b, err := hex.DecodeString(m.AuditPublicKey)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return "", errors.New("manifest audit_public_key: want 64 hex digits")
		}
		pub = b
		k, err := audit.LoadKey(filepath.Join(dataDir, audit.KeyFileName))
		if err != nil {
			return "", err
		}
		if !k.Public().(ed25519.PublicKey).Equal(pub) {
			return "", fmt.Errorf("%s is not the audit key the manifest names", audit.KeyFileName)
		}
	}
	rep, err := audit.Verify(ctx, st, pub)
	if err != nil {
		return "", err
	}
	if !rep.OK() {
		return "", fmt.Errorf("audit log is broken at seq %d: %s", rep.FirstBad, rep.Reason)
	}
	return fmt.Sprintf("schema version %d; rows match the manifest in all %d tables (%s)\naudit log intact: %d records, %d checkpoints\n",
		status.Current, len(counts), countSummary(counts), rep.Records, rep.Checkpoints), nil
}

// countSummary names the counts an operator checks first.
func countSummary(c map[string]int64) string {
	var s []string
	for _, t := range []string{"orgs", "people", "devices", "alerts", "audit_log", "positions"} {
		if n, ok := c[t]; ok {
			s = append(s, fmt.Sprintf("%s %d", t, n))
		}
	}
	return strings.Join(s, ", ")
}

// inside reports whether p is dir or below it.
func inside(dir, p string) bool {
	ad, err1 := filepath.Abs(dir)
	ap, err2 := filepath.Abs(p)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(ad, ap)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

func vigilVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "unknown"
}
