package postgres_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"vigil/internal/store"
	"vigil/internal/store/postgres"
	"vigil/internal/store/storetest"
)

func TestMigrations(t *testing.T) {
	url := testURL(t)
	ms, err := postgres.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	storetest.RunMigrations(t, func(t *testing.T) storetest.MigrationTarget {
		return pgTarget(url, freshSchema(t, url), ms[len(ms)-1].Version)
	})
}

func pgTarget(url, schema string, latest int) storetest.MigrationTarget {
	return storetest.MigrationTarget{
		Open: func(ctx context.Context, auto bool) (store.Store, error) {
			return postgres.Open(ctx, url, postgres.Options{AutoMigrate: auto, Schema: schema})
		},
		Migrate: func(ctx context.Context) ([]int, error) { return postgres.Migrate(ctx, url, schema) },
		Exec: func(ctx context.Context, q string) error {
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				return err
			}
			defer conn.Close(ctx)
			_, err = conn.Exec(ctx, `SET search_path TO `+pgx.Identifier{schema}.Sanitize()+`; `+q)
			return err
		},
		Latest: latest,
	}
}

func TestUpgrade(t *testing.T) {
	url := testURL(t)
	ms, err := postgres.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	storetest.RunUpgrade(t, func(t *testing.T) storetest.UpgradeTarget {
		schema := freshSchema(t, url)
		return storetest.UpgradeTarget{
			MigrationTarget: pgTarget(url, schema, ms[len(ms)-1].Version),
			MigrateTo:       func(ctx context.Context, v int) error { return postgres.MigrateTo(ctx, url, schema, v) },
			// timestamptz keeps microseconds; the store's encoding truncates.
			Time: func(t time.Time) string {
				return "'" + t.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano) + "'::timestamptz"
			},
			Bool: strconv.FormatBool,
		}
	})
}

func TestStatus(t *testing.T) {
	url := testURL(t)
	ctx := context.Background()
	schema := freshSchema(t, url)
	st, err := postgres.Status(ctx, url, schema)
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != 0 || st.Target < 1 || len(st.Pending) != st.Target {
		t.Errorf("empty database status = %+v", st)
	}
	if _, err := postgres.Migrate(ctx, url, schema); err != nil {
		t.Fatal(err)
	}
	st, err = postgres.Status(ctx, url, schema)
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != st.Target || st.Err() != nil {
		t.Errorf("migrated database status = %+v, err %v", st, st.Err())
	}
}

func TestBadSchemaName(t *testing.T) {
	url := testURL(t)
	_, err := postgres.Open(context.Background(), url, postgres.Options{Schema: `x"; DROP TABLE y`})
	if err == nil {
		t.Fatal("Open accepted a schema name that needs quoting")
	}
}
