package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"vigil/internal/event"
	"vigil/internal/store"
	"vigil/internal/store/sqlite"
	"vigil/internal/store/storetest"
)

func BenchmarkApplyEvents(b *testing.B) {
	storetest.BenchmarkApplyEvents(b, func(b *testing.B) store.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{AutoMigrate: true})
		if err != nil {
			b.Fatal(err)
		}
		return s
	})
}

// BenchmarkApplyEventsCPU is BenchmarkApplyEvents reporting the process
// CPU time (user and system, from getrusage) per event besides wall time: the
// wall time includes waiting for fsync, the CPU time is what competes with
// the rest of the server for cores.
func BenchmarkApplyEventsCPU(b *testing.B) {
	for _, size := range []int{100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{AutoMigrate: true})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			storetest.BenchSeed(b, s)
			evs := storetest.BenchEvents(0, b.N*size)
			ctx := context.Background()
			u0, s0 := cpuTime(b)
			b.ResetTimer()
			for i := range b.N {
				if n, err := s.ApplyEvents(ctx, evs[i*size:(i+1)*size]); err != nil || n != size {
					b.Fatalf("got %d, %v; want %d inserted", n, err, size)
				}
			}
			b.StopTimer()
			u1, s1 := cpuTime(b)
			b.ReportMetric(float64((u1-u0).Nanoseconds())/1e3/float64(b.N*size), "user-µs/event")
			b.ReportMetric(float64((s1-s0).Nanoseconds())/1e3/float64(b.N*size), "sys-µs/event")
			storetest.ReportRows(b, b.N*size)
		})
	}
}

func cpuTime(b *testing.B) (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// BenchmarkRawDriver is the baseline: the same rows ApplyEvents writes for
// the workload (schema 3: a position report is one positions row) inserted
// with a prepared statement in one transaction per batch on a connection
// with the store's pragmas, without dedupe, device checks or state.
func BenchmarkRawDriver(b *testing.B) {
	for _, size := range storetest.BenchSizes {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			ctx := context.Background()
			path := filepath.Join(b.TempDir(), "bench.db")
			s, err := sqlite.Open(ctx, path, sqlite.Options{AutoMigrate: true})
			if err != nil {
				b.Fatal(err)
			}
			storetest.BenchSeed(b, s)
			s.Close()
			db, err := sql.Open("sqlite", path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)&_pragma=cache_size(-65536)&_txlock=immediate")
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			db.SetMaxOpenConns(1)
			evs := storetest.BenchEvents(0, b.N*size)
			b.ResetTimer()
			for i := range b.N {
				if err := rawInsert(ctx, db, evs[i*size:(i+1)*size]); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			storetest.ReportRows(b, b.N*size)
		})
	}
}

func rawInsert(ctx context.Context, db *sql.DB, evs []event.Event) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	pos, err := tx.PrepareContext(ctx, `INSERT INTO positions (device_id, device_time, msg_id, received_at, source, late,
		lat, lon, accuracy_m, speed, heading, altitude, fix_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer pos.Close()
	for i := range evs {
		e := &evs[i]
		p := e.Position
		if _, err := pos.ExecContext(ctx, e.DeviceID, e.DeviceTime.UnixNano(), e.MsgID, e.ReceivedAt.UnixNano(), string(e.Source), e.Late,
			p.Lat, p.Lon, p.AccuracyM, *p.SpeedMPS, nil, nil, p.FixTime.UnixNano()); err != nil {
			return err
		}
	}
	return tx.Commit()
}
