// Package snapshot takes and restores whole Vigil backups: a consistent
// copy of the store (SQLite: VACUUM INTO; PostgreSQL: a logical dump in
// one REPEATABLE READ transaction), the data directory's key files (CA,
// TLS, seal, session and audit keys) and, when asked, JetStream, written
// in the backup format of package backup. Restoring verifies the backup
// before writing anything, then checks the restored store's schema
// version, every table's row count against the manifest and the audit
// chain. `vigil backup`, `vigil restore` and the server's scheduled
// backups all call it.
//
// It may import the store drivers and audit; it must not import
// net/http, the bus, the gateways, internal/app or cmd.
package snapshot

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"filippo.io/age"

	"vigil/internal/audit"
	"vigil/internal/backup"
	"vigil/internal/store/postgres"
	"vigil/internal/store/sqlite"
)

// Store kinds in a manifest.
const (
	KindSQLite   = "sqlite"
	KindPostgres = "postgres"
)

// StoreFile is the SQLite store's name inside a data directory and a
// backup.
const StoreFile = "vigil.db"

// pgDir is the directory of a PostgreSQL dump's parts: one
// pgDir/<table>.copy (binary COPY) per table, in load order.
const pgDir = "postgres"

// Source is what Take backs up.
type Source struct {
	DataDir string
	// Kind is KindSQLite or KindPostgres.
	Kind string
	// DSN is the SQLite file or the PostgreSQL URL (with its search_path).
	// It may hold a password: it never reaches an error or a log.
	DSN string
	// JetStream also copies <DataDir>/jetstream (consistent only while
	// the server is stopped).
	JetStream    bool
	VigilVersion string
}

// Take writes a new backup of src under to (a directory), encrypted to
// rcpt and signed with key, reads it back (Verify) and returns its
// directory and manifest. The plaintext store snapshot lives only in a
// temporary directory inside the data directory (the store's own
// protection) and is removed before Take returns.
func Take(ctx context.Context, src Source, to string, now time.Time, rcpt *age.X25519Recipient, key ed25519.PrivateKey) (string, backup.Manifest, error) {
	if rcpt == nil || len(key) != ed25519.PrivateKeySize {
		return "", backup.Manifest{}, errors.New("take backup: a recipient and a signing key are required")
	}
	tmp, err := os.MkdirTemp(src.DataDir, ".backup-")
	if err != nil {
		return "", backup.Manifest{}, fmt.Errorf("take backup: %w", err)
	}
	defer os.RemoveAll(tmp)
	m := backup.Manifest{VigilVersion: src.VigilVersion, Store: src.Kind}
	var parts []backup.Part
	switch src.Kind {
	case KindSQLite:
		parts, err = snapshotSQLite(ctx, src.DSN, tmp, &m)
	case KindPostgres:
		parts, err = dumpPostgres(ctx, src.DSN, tmp, &m)
	default:
		err = fmt.Errorf("store kind %q", src.Kind)
	}
	if err != nil {
		return "", backup.Manifest{}, fmt.Errorf("take backup: %w", err)
	}
	skip := ""
	if src.Kind == KindSQLite {
		skip = src.DSN
	}
	files, err := DataDirFiles(src.DataDir, skip, src.JetStream)
	if err != nil {
		return "", backup.Manifest{}, fmt.Errorf("take backup: %w", err)
	}
	parts = append(parts, files...)
	if k, err := audit.LoadKey(filepath.Join(src.DataDir, audit.KeyFileName)); err == nil {
		m.AuditPublicKey = hex.EncodeToString(k.Public().(ed25519.PublicKey))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", backup.Manifest{}, fmt.Errorf("take backup: %w", err)
	}
	if !src.JetStream {
		m.Notes = append(m.Notes, "jetstream not included: the store is the system of record; a restored server starts with an empty event stream")
	}
	dir, err := backup.Write(to, now, m, parts, rcpt, key)
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

// Uploader sends a finished backup directory to a remote target
// (remote.Client) and names where it went.
type Uploader interface {
	Upload(ctx context.Context, dir string) error
	Location(name string) string
}

// TakeTo is Take into the directory to or, when up is not nil, into a
// staging directory (os.TempDir: it holds only ciphertext) that is
// uploaded with up and removed; it returns where the backup is.
func TakeTo(ctx context.Context, src Source, to string, up Uploader, now time.Time, rcpt *age.X25519Recipient, key ed25519.PrivateKey) (string, backup.Manifest, error) {
	if up == nil {
		return Take(ctx, src, to, now, rcpt, key)
	}
	staging, err := os.MkdirTemp("", "vigil-backup-")
	if err != nil {
		return "", backup.Manifest{}, fmt.Errorf("take backup: %w", err)
	}
	defer os.RemoveAll(staging)
	dir, m, err := Take(ctx, src, staging, now, rcpt, key)
	if err != nil {
		return "", backup.Manifest{}, err
	}
	if err := up.Upload(ctx, dir); err != nil {
		return "", backup.Manifest{}, err
	}
	return up.Location(filepath.Base(dir)), m, nil
}

// snapshotSQLite snapshots the store with VACUUM INTO (a consistent read
// transaction: the server keeps running and writing) and counts its rows.
func snapshotSQLite(ctx context.Context, dsn, tmp string, m *backup.Manifest) ([]backup.Part, error) {
	if _, err := os.Stat(dsn); err != nil {
		return nil, fmt.Errorf("back up store %s: %w", dsn, err)
	}
	snap := filepath.Join(tmp, StoreFile)
	if err := sqlite.Snapshot(ctx, dsn, snap); err != nil {
		return nil, err
	}
	st, err := sqlite.Status(ctx, snap)
	if err != nil {
		return nil, fmt.Errorf("back up store: %w", err)
	}
	if err := st.Err(); err != nil {
		return nil, fmt.Errorf("back up store: this binary does not match the store's schema: %w", err)
	}
	counts, err := sqlite.Counts(ctx, snap)
	if err != nil {
		return nil, err
	}
	m.SchemaVersion, m.Counts = st.Current, counts
	return []backup.Part{{Name: StoreFile, Path: snap, Mode: 0o600}}, nil
}

// dumpPostgres dumps every table into tmp/postgres/<table>.copy.
func dumpPostgres(ctx context.Context, url, tmp string, m *backup.Manifest) ([]backup.Part, error) {
	dir := filepath.Join(tmp, pgDir)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("dump postgres: %w", err)
	}
	info, err := postgres.Dump(ctx, url, "", func(table string) (io.WriteCloser, error) {
		f, err := os.OpenFile(filepath.Join(dir, table+".copy"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, err
		}
		return &bufFile{f: f, w: bufio.NewWriterSize(f, 1<<20)}, nil
	})
	if err != nil {
		return nil, err
	}
	m.SchemaVersion = info.SchemaVersion
	m.Counts = map[string]int64{}
	var parts []backup.Part
	for _, t := range info.Tables {
		m.Counts[t.Name] = t.Rows
		parts = append(parts, backup.Part{Name: pgDir + "/" + t.Name + ".copy", Path: filepath.Join(dir, t.Name+".copy"), Mode: 0o600})
	}
	return parts, nil
}

type bufFile struct {
	f *os.File
	w *bufio.Writer
}

func (b *bufFile) Write(p []byte) (int, error) { return b.w.Write(p) }

func (b *bufFile) Close() error {
	err := b.w.Flush()
	if cerr := b.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// DataDirFiles lists the data directory's regular files to back up: the
// CA and TLS keys (tls/), the seal, session and audit signing keys and
// whatever else lives there, but not the live SQLite store at sqliteDSN
// ("" for none: snapshotted instead), snapshot temp dirs, or JetStream
// unless asked.
func DataDirFiles(dataDir, sqliteDSN string, withJS bool) ([]backup.Part, error) {
	skip := map[string]bool{}
	if sqliteDSN != "" {
		if rel, err := filepath.Rel(dataDir, sqliteDSN); err == nil && !strings.HasPrefix(rel, "..") {
			for _, suf := range []string{"", "-wal", "-shm", "-journal"} {
				skip[filepath.ToSlash(rel)+suf] = true
			}
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

// Target is where Restore writes.
type Target struct {
	// DataDir must not exist or be empty.
	DataDir string
	// PostgresURL is the empty schema (its search_path) a PostgreSQL
	// backup is loaded into; "" for a SQLite backup. A secret: never in
	// errors or logs.
	PostgresURL string
}

// Summary is what the restored store was checked to hold.
type Summary struct {
	SchemaVersion    int
	Counts           map[string]int64
	AuditRecords     int64
	AuditCheckpoints int
}

// Restore verifies the backup at from (signature, every part's size and
// checksum, the right decryption key), checks the targets are empty, and
// only then writes: the parts into tgt.DataDir and, for a PostgreSQL
// backup, the dump into tgt.PostgresURL (migrated to the backup's schema
// version first). It then checks the restored store (Check). verified,
// when not nil, is told the manifest once it is verified, before anything
// is written, and may refuse it.
func Restore(ctx context.Context, from string, tgt Target, pub ed25519.PublicKey, id age.Identity, verified func(backup.Manifest) error) (backup.Manifest, Summary, error) {
	m, err := backup.Restore(from, tgt.DataDir, pub, id, func(m backup.Manifest) error {
		switch {
		case m.Store == KindSQLite && tgt.PostgresURL != "":
			return errors.New("restore: this is a SQLite backup: restore it without --store, into a data directory")
		case m.Store == KindSQLite:
			if !slices.ContainsFunc(m.Parts, func(p backup.PartInfo) bool { return p.Name == StoreFile }) {
				return fmt.Errorf("restore: SQLite backup without %s", StoreFile)
			}
		case m.Store == KindPostgres && tgt.PostgresURL == "":
			return errors.New("restore: this is a PostgreSQL backup: give --store postgres://… naming an empty schema or database")
		case m.Store == KindPostgres:
			if err := postgres.CheckEmpty(ctx, tgt.PostgresURL, ""); err != nil {
				return fmt.Errorf("restore: %w", err)
			}
		default:
			return fmt.Errorf("restore: backup of a %q store: only sqlite and postgres restore", m.Store)
		}
		if verified != nil {
			return verified(m)
		}
		return nil
	})
	if err != nil {
		return backup.Manifest{}, Summary{}, err
	}
	if m.Store == KindPostgres {
		if err := loadPostgres(ctx, tgt, m); err != nil {
			return m, Summary{}, err
		}
	}
	sum, err := Check(ctx, tgt, m)
	if err != nil {
		return m, Summary{}, fmt.Errorf("restored data failed verification, do not start vigil on it: %w", err)
	}
	return m, sum, nil
}

// loadPostgres loads the dump restored into <DataDir>/postgres and
// removes those plaintext files.
func loadPostgres(ctx context.Context, tgt Target, m backup.Manifest) error {
	dir := filepath.Join(tgt.DataDir, pgDir)
	defer os.RemoveAll(dir)
	var tables []string
	for _, p := range m.Parts {
		if d, f := path.Split(p.Name); d == pgDir+"/" && strings.HasSuffix(f, ".copy") {
			tables = append(tables, strings.TrimSuffix(f, ".copy"))
		}
	}
	err := postgres.Load(ctx, tgt.PostgresURL, "", m.SchemaVersion, tables, func(table string) (io.ReadCloser, error) {
		f, err := os.Open(filepath.Join(dir, table+".copy"))
		if err != nil {
			return nil, err
		}
		return struct {
			io.Reader
			io.Closer
		}{bufio.NewReaderSize(f, 1<<20), f}, nil
	})
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// auditStore is what Check reads the audit chain from.
type auditStore interface {
	audit.Reader
	Close() error
}

// Check opens the restored store (refusing a schema that is not this
// binary's), compares the schema version and every table's row count
// with the manifest, and verifies the audit chain with the audit key the
// manifest names (which must be the restored data dir's).
func Check(ctx context.Context, tgt Target, m backup.Manifest) (Summary, error) {
	var (
		version int
		counts  map[string]int64
		st      auditStore
	)
	switch m.Store {
	case KindSQLite:
		dbPath := filepath.Join(tgt.DataDir, StoreFile)
		status, err := sqlite.Status(ctx, dbPath)
		if err != nil {
			return Summary{}, err
		}
		version = status.Current
		s, err := sqlite.Open(ctx, dbPath, sqlite.Options{})
		if err != nil {
			return Summary{}, err
		}
		st = s
		if counts, err = sqlite.Counts(ctx, dbPath); err != nil {
			st.Close()
			return Summary{}, err
		}
	case KindPostgres:
		status, err := postgres.Status(ctx, tgt.PostgresURL, "")
		if err != nil {
			return Summary{}, err
		}
		version = status.Current
		s, err := postgres.Open(ctx, tgt.PostgresURL, postgres.Options{MaxConns: 2})
		if err != nil {
			return Summary{}, err
		}
		st = s
		if counts, err = postgres.Counts(ctx, tgt.PostgresURL, ""); err != nil {
			st.Close()
			return Summary{}, err
		}
		// The load's migrations wrote schema_migrations; the dump has
		// the version instead.
		delete(counts, "schema_migrations")
	default:
		return Summary{}, fmt.Errorf("store kind %q", m.Store)
	}
	defer st.Close()
	if version != m.SchemaVersion {
		return Summary{}, fmt.Errorf("schema version %d, manifest says %d", version, m.SchemaVersion)
	}
	for name, want := range m.Counts {
		if got, ok := counts[name]; !ok || got != want {
			return Summary{}, fmt.Errorf("table %s has %d rows, manifest says %d", name, got, want)
		}
	}
	for name := range counts {
		if _, ok := m.Counts[name]; !ok {
			return Summary{}, fmt.Errorf("table %s is not in the manifest", name)
		}
	}
	var pub ed25519.PublicKey
	if m.AuditPublicKey != "" {
		b, err := hex.DecodeString(m.AuditPublicKey)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return Summary{}, errors.New("manifest audit_public_key: want 64 hex digits")
		}
		pub = b
		k, err := audit.LoadKey(filepath.Join(tgt.DataDir, audit.KeyFileName))
		if err != nil {
			return Summary{}, err
		}
		if !k.Public().(ed25519.PublicKey).Equal(pub) {
			return Summary{}, fmt.Errorf("%s is not the audit key the manifest names", audit.KeyFileName)
		}
	}
	rep, err := audit.Verify(ctx, st, pub)
	if err != nil {
		return Summary{}, err
	}
	if !rep.OK() {
		return Summary{}, fmt.Errorf("audit log is broken at seq %d: %s", rep.FirstBad, rep.Reason)
	}
	return Summary{SchemaVersion: version, Counts: counts, AuditRecords: rep.Records, AuditCheckpoints: rep.Checkpoints}, nil
}
