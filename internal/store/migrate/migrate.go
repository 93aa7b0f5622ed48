// Package migrate applies and checks numbered, embedded SQL migrations. It
// holds the logic both dialects share (loading, ordering, checksums, the
// older/newer/drift verdict); each dialect supplies a small Driver that
// knows how to read the schema_migrations table and run one migration in
// one transaction.
//
// It imports only the standard library and internal/store (for the schema
// sentinels). It must not import a database driver.
//
// A migration file is named NNNN_description.sql; versions start at 1 and
// are contiguous. Its checksum is the hex SHA-256 of the file's bytes, so
// editing an applied migration is detected as drift: add a new migration
// instead.
package migrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"vigil/internal/store"
)

// Migration is one embedded migration.
type Migration struct {
	Version  int
	Name     string // file name, e.g. 0001_init.sql
	SQL      string
	Checksum string // hex SHA-256 of SQL
}

// Record is one row of schema_migrations.
type Record struct {
	Version   int
	Checksum  string
	AppliedAt time.Time
}

// Driver is what a dialect provides.
type Driver interface {
	// Applied returns the recorded migrations, or none when the
	// schema_migrations table does not exist. It must not create anything.
	Applied(ctx context.Context) ([]Record, error)
	// Apply creates schema_migrations if needed and, in one transaction
	// serialised against other migrators, runs m and records it. It
	// returns false when m was already recorded (another process applied
	// it first).
	Apply(ctx context.Context, m Migration) (bool, error)
}

// Checksum returns the checksum of a migration's text.
func Checksum(sql string) string {
	sum := sha256.Sum256([]byte(sql))
	return hex.EncodeToString(sum[:])
}

// Load reads every *.sql file in dir of fsys, ordered by version. It fails
// on a malformed name, a duplicate version or a gap.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	var ms []Migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("load migrations: %s: name must be NNNN_description.sql", e.Name())
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("load migrations: %w", err)
		}
		ms = append(ms, Migration{Version: v, Name: e.Name(), SQL: string(b), Checksum: Checksum(string(b))})
	}
	slices.SortFunc(ms, func(a, b Migration) int { return a.Version - b.Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("load migrations: %s: want version %d (versions start at 1, no gaps or duplicates)", m.Name, i+1)
		}
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("load migrations: no *.sql files in %s", dir)
	}
	return ms, nil
}

// Status compares the database with the embedded migrations.
type Status struct {
	Current int   // highest version applied; 0 for an empty database
	Target  int   // highest embedded version
	Pending []int // embedded, not applied
	Unknown []int // applied, not embedded (a newer binary migrated)
	Drifted []int // applied with a checksum that differs from the embedded one
}

// Err returns the verdict: nil when the schema is exactly current, else an
// error wrapping store.ErrSchemaNewer, ErrSchemaDrift or ErrSchemaOlder, in
// that order of precedence.
func (s Status) Err() error {
	switch {
	case len(s.Unknown) > 0:
		return fmt.Errorf("database has versions %v, binary knows up to %d: %w", s.Unknown, s.Target, store.ErrSchemaNewer)
	case len(s.Drifted) > 0:
		return fmt.Errorf("versions %v: %w", s.Drifted, store.ErrSchemaDrift)
	case len(s.Pending) > 0:
		return fmt.Errorf("database lacks versions %v: %w", s.Pending, store.ErrSchemaOlder)
	}
	return nil
}

// Compare computes the status of applied records against embedded migrations.
func Compare(ms []Migration, recs []Record) Status {
	st := Status{}
	if len(ms) > 0 {
		st.Target = ms[len(ms)-1].Version
	}
	applied := make(map[int]string, len(recs))
	for _, r := range recs {
		applied[r.Version] = r.Checksum
		st.Current = max(st.Current, r.Version)
	}
	known := make(map[int]bool, len(ms))
	for _, m := range ms {
		known[m.Version] = true
		sum, ok := applied[m.Version]
		switch {
		case !ok:
			st.Pending = append(st.Pending, m.Version)
		case sum != m.Checksum:
			st.Drifted = append(st.Drifted, m.Version)
		}
	}
	for _, r := range recs {
		if !known[r.Version] {
			st.Unknown = append(st.Unknown, r.Version)
		}
	}
	slices.Sort(st.Unknown)
	return st
}

// GetStatus reads the database's status.
func GetStatus(ctx context.Context, d Driver, ms []Migration) (Status, error) {
	recs, err := d.Applied(ctx)
	if err != nil {
		return Status{}, fmt.Errorf("schema status: %w", err)
	}
	return Compare(ms, recs), nil
}

// Check returns nil when the database is exactly at the embedded schema,
// else an error wrapping one of the schema sentinels.
func Check(ctx context.Context, d Driver, ms []Migration) error {
	st, err := GetStatus(ctx, d, ms)
	if err != nil {
		return err
	}
	if err := st.Err(); err != nil {
		return fmt.Errorf("check schema: %w", err)
	}
	return nil
}

// Up applies pending migrations in order and returns the versions it
// applied (none when the schema was current). It refuses a database that
// is newer than the binary or has drifted.
func Up(ctx context.Context, d Driver, ms []Migration) ([]int, error) {
	st, err := GetStatus(ctx, d, ms)
	if err != nil {
		return nil, err
	}
	if err := st.Err(); err != nil && !errors.Is(err, store.ErrSchemaOlder) {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	var done []int
	for _, m := range ms {
		if !slices.Contains(st.Pending, m.Version) {
			continue
		}
		ok, err := d.Apply(ctx, m)
		if err != nil {
			return done, fmt.Errorf("migrate: apply %s: %w", m.Name, err)
		}
		if ok {
			done = append(done, m.Version)
		}
	}
	// Another migrator may have raced us; verify the end state.
	if err := Check(ctx, d, ms); err != nil {
		return done, fmt.Errorf("migrate: %w", err)
	}
	return done, nil
}
