package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"vigil/internal/event"
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
		return sqliteTarget(filepath.Join(t.TempDir(), "vigil.db"), ms[len(ms)-1].Version)
	})
}

func sqliteTarget(path string, latest int) storetest.MigrationTarget {
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
		Latest: latest,
	}
}

func TestUpgrade(t *testing.T) {
	ms, err := sqlite.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	storetest.RunUpgrade(t, func(t *testing.T) storetest.UpgradeTarget {
		path := filepath.Join(t.TempDir(), "vigil.db")
		return storetest.UpgradeTarget{
			MigrationTarget: sqliteTarget(path, ms[len(ms)-1].Version),
			MigrateTo:       func(ctx context.Context, v int) error { return sqlite.MigrateTo(ctx, path, v) },
			Time:            func(t time.Time) string { return strconv.FormatInt(t.UnixNano(), 10) },
			Bool: func(b bool) string {
				if b {
					return "1"
				}
				return "0"
			},
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

// TestUpgradeKeepsSequence: the AUTOINCREMENT counter of events must
// survive every migration (a rebuild of events must carry it over) even
// when above max(seq), so that a seq is never handed out twice.
func TestUpgradeKeepsSequence(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "vigil.db")
	if err := sqlite.MigrateTo(ctx, path, 1); err != nil {
		t.Fatal(err)
	}
	tgt := sqliteTarget(path, 0)
	for _, q := range []string{
		`INSERT INTO orgs (id, name, created_at) VALUES ('o', 'O', 0)`,
		`INSERT INTO devices (id, org_id, name, created_at) VALUES ('d', 'o', 'd', 0)`,
		`INSERT INTO events (seq, org_id, device_id, msg_id, type, device_time, received_at, source, late, body)
			VALUES (41, 'o', 'd', 'gone', 'heartbeat', 0, 0, 'mqtt', 0, '{}')`,
		`DELETE FROM events`,
	} {
		if err := tgt.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sqlite.Migrate(ctx, path); err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e := event.Event{V: event.SchemaVersion, OrgID: "o", DeviceID: "d", MsgID: "m1", Type: event.TypeHeartbeat,
		DeviceTime: time.Unix(1, 0), ReceivedAt: time.Unix(2, 0), Source: event.SourceMQTT}
	if n, err := s.ApplyEvents(ctx, []event.Event{e}); err != nil || n != 1 {
		t.Fatalf("ApplyEvents = %d, %v", n, err)
	}
	ses, err := s.ListEvents(ctx, store.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ses) != 1 || ses[0].Seq != 42 {
		t.Errorf("events after upgrade = %+v, want one with seq 42", ses)
	}
}
