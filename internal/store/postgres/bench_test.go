package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"vigil/internal/event"
	"vigil/internal/store"
	"vigil/internal/store/postgres"
	"vigil/internal/store/storetest"
)

func benchOpen(copyThreshold int) func(b *testing.B) store.Store {
	return func(b *testing.B) store.Store {
		url := testURL(b)
		s, err := postgres.Open(context.Background(), url, postgres.Options{
			AutoMigrate: true, Schema: freshSchema(b, url), CopyThreshold: copyThreshold,
		})
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
}

// BenchmarkApplyEvents uses the store's default strategy (one INSERT of
// arrays); the Copy variant stages every batch with COPY instead.
func BenchmarkApplyEvents(b *testing.B) { storetest.BenchmarkApplyEvents(b, benchOpen(0)) }

func BenchmarkApplyEventsCopy(b *testing.B) { storetest.BenchmarkApplyEvents(b, benchOpen(1)) }

// BenchmarkRawDriver is the baseline: the same rows ApplyEvents writes for
// the workload (schema 3: a position report is one positions row) written
// with COPY FROM straight into the table, one transaction per batch,
// without dedupe, device checks or state.
// RawDriverInsert is one multi-statement pipeline of plain INSERTs, the
// cheapest way for a single row.
func BenchmarkRawDriver(b *testing.B) {
	for _, size := range storetest.BenchSizes {
		b.Run(fmt.Sprintf("copy/batch=%d", size), func(b *testing.B) { benchRaw(b, size, rawCopy) })
	}
	b.Run("insert/batch=1", func(b *testing.B) { benchRaw(b, 1, rawInsert) })
}

func benchRaw(b *testing.B, size int, insert func(context.Context, pgx.Tx, []event.Event) error) {
	ctx := context.Background()
	url := testURL(b)
	schema := freshSchema(b, url)
	s, err := postgres.Open(ctx, url, postgres.Options{AutoMigrate: true, Schema: schema})
	if err != nil {
		b.Fatal(err)
	}
	storetest.BenchSeed(b, s)
	s.Close()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		b.Fatal(err)
	}
	cfg.RuntimeParams["search_path"] = schema
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	evs := storetest.BenchEvents(0, b.N*size)
	b.ResetTimer()
	for i := range b.N {
		tx, err := conn.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := insert(ctx, tx, evs[i*size:(i+1)*size]); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	storetest.ReportRows(b, b.N*size)
}

var rawCols = []string{"device_id", "device_time", "msg_id", "received_at", "source", "late", "lat", "lon", "accuracy_m", "speed", "fix_time"}

func rawRow(e *event.Event) []any {
	p := e.Position
	return []any{e.DeviceID, e.DeviceTime, e.MsgID, e.ReceivedAt, string(e.Source), e.Late, p.Lat, p.Lon, p.AccuracyM, *p.SpeedMPS, p.FixTime}
}

func rawCopy(ctx context.Context, tx pgx.Tx, evs []event.Event) error {
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"positions"}, rawCols,
		pgx.CopyFromSlice(len(evs), func(i int) ([]any, error) { return rawRow(&evs[i]), nil }))
	return err
}

func rawInsert(ctx context.Context, tx pgx.Tx, evs []event.Event) error {
	bt := &pgx.Batch{}
	for i := range evs {
		bt.Queue(`INSERT INTO positions (`+strings.Join(rawCols, ", ")+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`, rawRow(&evs[i])...)
	}
	return tx.SendBatch(ctx, bt).Close()
}
