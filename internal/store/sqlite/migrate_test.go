package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"vigil/internal/store"
	"vigil/internal/store/sqlite"
	"vigil/internal/store/storetest"
)

func TestMigrations(t *testing.T) {
	ms, err := sqlite.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	storetest.RunMigrations(t, func(t *testing.T) storetest.MigrationTarget {
		path := filepath.Join(t.TempDir(), "vigil.db")
		return storetest.MigrationTarget{
			Open: func(ctx context.Context, auto bool) (store.Store, error) {
				return sqlite.Open(ctx, path, sqlite.Options{AutoMigrate: auto})
			},
			Migrate: func(ctx context.Context) ([]int, error) { return sqlite.Migrate(ctx, path) },
			Exec: func(ctx context.Context, q string) error {
				db, err := sql.Open("sqlite", path)
				if err != nil {
					return err
				}
				defer db.Close()
				_, err = db.ExecContext(ctx, q)
				return err
			},
			Latest: ms[len(ms)-1].Version,
		}
	})
}

func TestFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vigil.db")
	s, err := sqlite.Open(context.Background(), path, sqlite.Options{AutoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, p := range []string{path, path + "-wal"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("%s mode = %o, want 600", filepath.Base(p), got)
		}
	}
}

func TestStatus(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "vigil.db")
	st, err := sqlite.Status(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != 0 || st.Target < 1 || len(st.Pending) != st.Target {
		t.Errorf("empty database status = %+v", st)
	}
	if _, err := sqlite.Migrate(ctx, path); err != nil {
		t.Fatal(err)
	}
	st, err = sqlite.Status(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != st.Target || st.Err() != nil {
		t.Errorf("migrated database status = %+v, err %v", st, st.Err())
	}
}
