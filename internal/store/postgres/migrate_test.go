package postgres_test

import (
	"context"
	"testing"

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
		schema := freshSchema(t, url)
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
			Latest: ms[len(ms)-1].Version,
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
