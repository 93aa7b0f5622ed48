package retention_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"vigil/internal/clock"
	"vigil/internal/retention"
	"vigil/internal/store"
	"vigil/internal/store/postgres"
	"vigil/internal/store/sqlite"
	"vigil/internal/store/storetest"
)

// benchRows is how many old positions BenchmarkPurgePositions purges;
// VIGIL_BENCH_ROWS overrides it (1000000 for the documented figure).
func benchRows(b *testing.B) int {
	if s := os.Getenv("VIGIL_BENCH_ROWS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("VIGIL_BENCH_ROWS=%q: want a positive number", s)
		}
		return n
	}
	return 100_000
}

// timedStore times each purge transaction: the longest is how long the
// purge can hold the write lock in one go.
type timedStore struct {
	retention.Store
	longest time.Duration
}

func (s *timedStore) PurgePositions(ctx context.Context, org string, before time.Time, limit int) (int, error) {
	start := time.Now()
	n, err := s.Store.PurgePositions(ctx, org, before, limit)
	s.longest = max(s.longest, time.Since(start))
	return n, err
}

// BenchmarkPurgePositions purges old positions of 100 devices (every one
// past the default 90 days) in batches of 5000, and reports rows/s and
// the longest batch. Seeding is not timed. Reproduce the documented
// figures with
//
//	VIGIL_BENCH_ROWS=1000000 go test ./internal/retention -run '^$' -bench PurgePositions -benchtime 1x
//
// (with VIGIL_TEST_POSTGRES_URL set for the PostgreSQL case).
func BenchmarkPurgePositions(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		benchPurge(b, func(b *testing.B) store.Store {
			s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "vigil.db"), sqlite.Options{AutoMigrate: true})
			if err != nil {
				b.Fatal(err)
			}
			return s
		})
	})
	b.Run("postgres", func(b *testing.B) {
		url := os.Getenv("VIGIL_TEST_POSTGRES_URL")
		if url == "" {
			b.Skip("VIGIL_TEST_POSTGRES_URL not set")
		}
		benchPurge(b, func(b *testing.B) store.Store {
			rb := make([]byte, 8)
			rand.Read(rb)
			schema := "vigil_bench_" + hex.EncodeToString(rb)
			b.Cleanup(func() {
				ctx := context.Background()
				conn, err := pgx.Connect(ctx, url)
				if err != nil {
					b.Errorf("drop schema: %v", err)
					return
				}
				defer conn.Close(ctx)
				if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
					b.Errorf("drop schema: %v", err)
				}
			})
			s, err := postgres.Open(context.Background(), url, postgres.Options{AutoMigrate: true, Schema: schema})
			if err != nil {
				b.Fatal(err)
			}
			return s
		})
	})
}

func benchPurge(b *testing.B, open func(b *testing.B) store.Store) {
	rows := benchRows(b)
	ctx := context.Background()
	var purged int
	var longest time.Duration
	for b.Loop() {
		b.StopTimer()
		s := open(b)
		storetest.BenchSeed(b, s)
		var last time.Time
		for start := 0; start < rows; start += 2000 {
			evs := storetest.BenchEvents(start, min(2000, rows-start))
			if _, err := s.ApplyEvents(ctx, evs); err != nil {
				b.Fatal(err)
			}
			last = evs[len(evs)-1].DeviceTime
		}
		ts := &timedStore{Store: s}
		p := retention.New(ts, clock.NewManual(last.Add(91*retention.Day)), nil, retention.Config{})
		b.StartTimer()
		r, err := p.RunOrg(ctx, "bench")
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if r.Rows[retention.Positions] != rows {
			b.Fatalf("purged %d positions, want %d", r.Rows[retention.Positions], rows)
		}
		purged += rows
		longest = max(longest, ts.longest)
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(purged)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(longest.Microseconds())/1000, "ms/longest-batch")
}
