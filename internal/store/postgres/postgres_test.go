package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"vigil/internal/store"
	"vigil/internal/store/postgres"
	"vigil/internal/store/storetest"
)

// testURL returns VIGIL_TEST_POSTGRES_URL or skips the test.
func testURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("VIGIL_TEST_POSTGRES_URL")
	if u == "" {
		tb.Skip("VIGIL_TEST_POSTGRES_URL not set (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable); skipping PostgreSQL tests")
	}
	return u
}

// freshSchema returns the name of a new random schema, dropped (with
// everything in it) when the test ends.
func freshSchema(tb testing.TB, url string) string {
	tb.Helper()
	b := make([]byte, 8)
	rand.Read(b)
	schema := "vigil_test_" + hex.EncodeToString(b)
	tb.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			tb.Errorf("drop schema: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			tb.Errorf("drop schema: %v", err)
		}
	})
	return schema
}

func openFresh(tb testing.TB) *postgres.Store {
	tb.Helper()
	url := testURL(tb)
	s, err := postgres.Open(context.Background(), url, postgres.Options{AutoMigrate: true, Schema: freshSchema(tb, url)})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	testURL(t)
	storetest.Run(t, func(t *testing.T) store.Store { return openFresh(t) })
}

func TestConformanceCopy(t *testing.T) {
	url := testURL(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := postgres.Open(context.Background(), url, postgres.Options{AutoMigrate: true, Schema: freshSchema(t, url), CopyThreshold: 1})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestConformanceCopyNew runs the fast path's COPY variant on every batch.
func TestConformanceCopyNew(t *testing.T) {
	testURL(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		s := openFresh(t)
		s.SetCopyNew(1)
		return s
	})
}
