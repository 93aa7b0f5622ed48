package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"

	"vigil/internal/store"
)

// MigrationTarget is one fresh, empty database of a dialect, as the
// migration suite drives it.
type MigrationTarget struct {
	// Open opens the store as the binary does.
	Open func(ctx context.Context, autoMigrate bool) (store.Store, error)
	// Migrate runs the `vigil migrate` entry point and returns the
	// versions applied.
	Migrate func(ctx context.Context) ([]int, error)
	// Exec runs one SQL statement directly, to tamper with
	// schema_migrations.
	Exec func(ctx context.Context, sql string) error
	// Latest is the highest embedded migration version.
	Latest int
}

// RunMigrations checks migrate-on-open, `migrate` idempotency and the
// refusal of an older, newer or drifted schema. fresh must return a new,
// empty database for each call.
func RunMigrations(t *testing.T, fresh func(t *testing.T) MigrationTarget) {
	ctx := context.Background()
	open := func(t *testing.T, m MigrationTarget, auto bool) error {
		t.Helper()
		s, err := m.Open(ctx, auto)
		if err == nil {
			if cerr := s.Close(); cerr != nil {
				t.Errorf("Close: %v", cerr)
			}
		}
		return err
	}
	all := func(n int) []int {
		var v []int
		for i := 1; i <= n; i++ {
			v = append(v, i)
		}
		return v
	}
	t.Run("FreshMigratesTwiceNoop", func(t *testing.T) {
		m := fresh(t)
		got, err := m.Migrate(ctx)
		must(t, err, "migrate")
		if !slices.Equal(got, all(m.Latest)) {
			t.Errorf("first migrate applied %v, want %v", got, all(m.Latest))
		}
		got, err = m.Migrate(ctx)
		must(t, err, "migrate again")
		if len(got) != 0 {
			t.Errorf("second migrate applied %v, want none", got)
		}
		must(t, open(t, m, false), "open migrated database")
	})
	t.Run("AutoMigrate", func(t *testing.T) {
		m := fresh(t)
		must(t, open(t, m, true), "open with AutoMigrate")
		must(t, open(t, m, true), "reopen with AutoMigrate")
		must(t, open(t, m, false), "reopen without AutoMigrate")
	})
	tamper := []struct {
		name string
		sql  string
		want error
	}{
		{"Newer", `INSERT INTO schema_migrations (version, checksum, applied_at)
			SELECT 9999, checksum, applied_at FROM schema_migrations WHERE version = 1`, store.ErrSchemaNewer},
		{"Older", `DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)`, store.ErrSchemaOlder},
		{"Drift", `UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1`, store.ErrSchemaDrift},
	}
	for _, tc := range tamper {
		t.Run(tc.name, func(t *testing.T) {
			m := fresh(t)
			_, err := m.Migrate(ctx)
			must(t, err, "migrate")
			must(t, m.Exec(ctx, tc.sql), "tamper")
			if err := open(t, m, false); !errors.Is(err, tc.want) {
				t.Errorf("Open: got %v, want %v", err, tc.want)
			}
			if tc.want == store.ErrSchemaOlder {
				return // migrate cannot re-run a half-present schema's DDL; the empty case is below
			}
			if err := open(t, m, true); !errors.Is(err, tc.want) {
				t.Errorf("Open with AutoMigrate: got %v, want %v", err, tc.want)
			}
			if _, err := m.Migrate(ctx); !errors.Is(err, tc.want) {
				t.Errorf("Migrate: got %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("EmptyIsOlder", func(t *testing.T) {
		m := fresh(t)
		if err := open(t, m, false); !errors.Is(err, store.ErrSchemaOlder) {
			t.Errorf("Open empty database: got %v, want %v", err, store.ErrSchemaOlder)
		}
		// Refusing must not have created anything: migrate still applies all.
		got, err := m.Migrate(ctx)
		must(t, err, "migrate")
		if !slices.Equal(got, all(m.Latest)) {
			t.Errorf("migrate applied %v, want %v", got, all(m.Latest))
		}
	})
}
