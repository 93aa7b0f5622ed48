package safety_test

// The rebuild benchmarks measure what a restart with many active sessions
// costs the safety engine: the time of (*Engine).Load reading the
// residents' ids, the columns it keeps of every device and of every active
// session (EachDeviceWatch and EachSessionTimer, at the same time) from
// the store and scheduling their deadlines, and the heap the engine keeps
// per session afterwards. internal/deadline measures the scheduler alone;
// these add the store and the engine's own records.
//
//	go test -run XXX -bench Load100k -benchtime 1x -count 3 ./internal/safety/
//	go test -run XXX -bench Load1M -benchtime 1x -count 3 -timeout 60m ./internal/safety/
//	VIGIL_TEST_POSTGRES_URL='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' \
//	  go test -run XXX -bench 'Load1M/postgres' -benchtime 1x -count 3 -timeout 60m ./internal/safety/
//
// They populate a store once per process (SQLite in a temporary
// directory; PostgreSQL, when VIGIL_TEST_POSTGRES_URL is set, in a fresh
// schema), outside the timer, with bulk SQL that matches the migrations:
// 4 organisations, n workers, one assigned device each (seen in the last
// five minutes, with a position and a battery reading), and one active
// session each (an 8 h shift started up to 6 h ago, check-ins every
// 30 min with 5 min grace, the last within the past 30 min, a note). Every
// iteration opens the store again, as a restart does, and times New and
// Load. The data is read-only to Load, so iterations share it; TestMain
// deletes it when the binary exits. The operating system's page cache is
// warm (the files were just written): a restart after a reboot reads
// them from disk first.
//
// Metrics: ms/load; B/session, the live heap after Load minus before New
// (after a GC each), divided by sessions; B/timer, the same divided by
// the engine's pending timers (its whole state, not the scheduler's share
// alone); timers and timers/session; alloc-MB/load, what Load allocated;
// peak-heap-MB, the largest heap (live and not yet swept) sampled every
// 10 ms during Load; GCs/load; cpu-ms/load and sys-ms/load, this
// process's CPU time (not PostgreSQL's); page-faults/load, minor faults,
// i.e. pages of memory touched for the first time. On the project's
// virtual machine a first touch costs about 17 µs (4.4 s per GiB), so
// fresh heap is a large part of the time there.
//
// They run only when named (-bench with a pattern containing "Load"), never
// in -short mode, and never under plain go test. For a CPU or heap profile
// of Load alone (not of the population), set VIGIL_BENCH_CPUPROFILE or
// VIGIL_BENCH_HEAPPROFILE to a file name prefix; the heap profile is taken
// after Load while the engine is alive.

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite"

	"vigil/internal/clock"
	"vigil/internal/safety"
	"vigil/internal/store"
	"vigil/internal/store/postgres"
	"vigil/internal/store/sqlite"
)

func TestMain(m *testing.M) {
	code := m.Run()
	benchFixtures.cleanup()
	os.Exit(code)
}

func BenchmarkLoad100k(b *testing.B) { benchLoad(b, 100_000) }

func BenchmarkLoad1M(b *testing.B) { benchLoad(b, 1_000_000) }

func benchLoad(b *testing.B, n int) {
	if testing.Short() {
		b.Skip("populates a large store: not in -short mode")
	}
	if f := flag.Lookup("test.bench"); f == nil || !strings.Contains(f.Value.String(), "Load") {
		b.Skip(`populates a large store: run it by name, e.g. -bench Load100k`)
	}
	b.Run("sqlite", func(b *testing.B) { runLoad(b, benchFixtures.get(b, "sqlite", n)) })
	b.Run("postgres", func(b *testing.B) {
		if os.Getenv("VIGIL_TEST_POSTGRES_URL") == "" {
			b.Skip("VIGIL_TEST_POSTGRES_URL not set (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)")
		}
		runLoad(b, benchFixtures.get(b, "postgres", n))
	})
}

// loadStore is a store that Load reads and the benchmark closes.
type loadStore interface {
	safety.Store
	Close() error
}

// fixture is a populated store, shared by the iterations and runs of one
// process.
type fixture struct {
	n      int
	timers int // the timers Load must schedule
	open   func(ctx context.Context) (loadStore, error)
	drop   func() error
}

type fixtureSet struct {
	mu sync.Mutex
	m  map[string]*fixture
}

var benchFixtures = &fixtureSet{m: make(map[string]*fixture)}

func (fs *fixtureSet) get(b *testing.B, backend string, n int) *fixture {
	b.Helper()
	fs.mu.Lock()
	defer fs.mu.Unlock()
	key := fmt.Sprintf("%s/%d", backend, n)
	if f, ok := fs.m[key]; ok {
		return f
	}
	ctx := context.Background()
	t0 := time.Now()
	var f *fixture
	var err error
	switch backend {
	case "sqlite":
		f, err = populateSQLite(ctx, n)
	case "postgres":
		f, err = populatePostgres(ctx, os.Getenv("VIGIL_TEST_POSTGRES_URL"), n)
	}
	if err != nil {
		b.Fatalf("populate %s: %v", key, err)
	}
	b.Logf("populated %s in %v", key, time.Since(t0).Round(time.Millisecond))
	fs.m[key] = f
	return f
}

func (fs *fixtureSet) cleanup() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for key, f := range fs.m {
		if err := f.drop(); err != nil {
			fmt.Fprintf(os.Stderr, "bench fixture %s not removed: %v\n", key, err)
		}
		delete(fs.m, key)
	}
}

func runLoad(b *testing.B, f *fixture) {
	ctx := context.Background()
	clk := clock.Func(func() time.Time { return benchNow })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var perSession, perTimer, allocMB, peakMB, gcs, cpuMS, sysMS, faults float64
	var timers int
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		st, err := f.open(ctx)
		if err != nil {
			b.Fatal(err)
		}
		before := heapLive()
		m0 := readMetrics()
		u0, s0, f0 := rusage(b)
		stop := samplePeak()
		stopProfile := startCPUProfile(b)
		b.StartTimer()

		e := safety.New(st, nil, clk, log, safety.Config{})
		if err := e.Load(ctx); err != nil {
			b.Fatal(err)
		}

		b.StopTimer()
		stopProfile()
		peak := stop()
		u1, s1, f1 := rusage(b)
		cpuMS += float64((u1 - u0 + s1 - s0).Milliseconds())
		sysMS += float64((s1 - s0).Milliseconds())
		faults += float64(f1 - f0)
		m1 := readMetrics()
		after := heapLive()
		writeHeapProfile(b)
		timers = e.Timers()
		if timers != f.timers {
			b.Fatalf("Timers() = %d after Load, want %d", timers, f.timers)
		}
		runtime.KeepAlive(e)
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}
		live := float64(int64(after) - int64(before))
		perSession += live / float64(f.n)
		perTimer += live / float64(timers)
		allocMB += float64(m1.alloc-m0.alloc) / (1 << 20)
		peakMB += float64(peak) / (1 << 20)
		gcs += float64(m1.gcs - m0.gcs)
	}
	n := float64(b.N)
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/n, "ms/load")
	b.ReportMetric(perSession/n, "B/session")
	b.ReportMetric(perTimer/n, "B/timer")
	b.ReportMetric(float64(timers), "timers")
	b.ReportMetric(float64(timers)/float64(f.n), "timers/session")
	b.ReportMetric(allocMB/n, "alloc-MB/load")
	b.ReportMetric(peakMB/n, "peak-heap-MB")
	b.ReportMetric(gcs/n, "GCs/load")
	b.ReportMetric(cpuMS/n, "cpu-ms/load")
	b.ReportMetric(sysMS/n, "sys-ms/load")
	b.ReportMetric(faults/n, "page-faults/load")
}

// rusage returns the process's CPU time so far and its minor page faults
// (first touches of memory).
func rusage(b *testing.B) (user, sys time.Duration, faults int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano()), ru.Minflt
}

// heapLive returns the live heap after a full collection.
func heapLive() uint64 {
	runtime.GC()
	runtime.GC() // the first may leave finalizers' objects for the second
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

type memMetrics struct{ alloc, gcs uint64 }

func readMetrics() memMetrics {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	return memMetrics{alloc: s[0].Value.Uint64(), gcs: s[1].Value.Uint64()}
}

// samplePeak samples the heap's objects (live and not yet swept) every
// 10 ms until the returned function is called, which returns the largest.
func samplePeak() func() uint64 {
	done := make(chan struct{})
	res := make(chan uint64)
	go func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var peak uint64
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-done:
				res <- peak
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 { close(done); return <-res }
}

func profileName(b *testing.B, prefix string) string {
	return prefix + "." + strings.NewReplacer("/", "_", " ", "_").Replace(b.Name()) + ".pprof"
}

func startCPUProfile(b *testing.B) func() {
	prefix := os.Getenv("VIGIL_BENCH_CPUPROFILE")
	if prefix == "" {
		return func() {}
	}
	f, err := os.Create(profileName(b, prefix))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func writeHeapProfile(b *testing.B) {
	prefix := os.Getenv("VIGIL_BENCH_HEAPPROFILE")
	if prefix == "" {
		return
	}
	f, err := os.Create(profileName(b, prefix))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}

// --- the data ---------------------------------------------------------------

// benchNow is the engine's clock: the data is laid out around it.
var benchNow = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

const (
	benchOrgs     = 4
	benchInterval = 30 * time.Minute
	benchGrace    = 5 * time.Minute
	benchShift    = 8 * time.Hour
)

// benchRow is worker i with their device and active session.
type benchRow struct {
	org, person, device, session string
	personName, deviceName, note string
	secret                       []byte
	lastSeen, posTime, fixTime   time.Time
	lat, lon, acc                float64
	battery                      int
	events                       int64
	started, end, lastCheckin    time.Time
}

var benchIDs = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func benchID(r *mrand.Rand, prefix string) string {
	var b [10]byte
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return prefix + benchIDs.EncodeToString(b[:])
}

func since(r *mrand.Rand, d time.Duration) time.Time {
	return benchNow.Add(-time.Duration(r.Int64N(int64(d)))).Truncate(time.Microsecond)
}

// benchRecord returns row i of n, the same in every process. Ids are
// random like real ones (so rows are not stored in id order); sessions
// start over the past 6 h in the order they are stored, as they would be
// created; times have microsecond precision (PostgreSQL's).
func benchRecord(i, n int) benchRow {
	r := mrand.New(mrand.NewPCG(0x5afe7, uint64(i)))
	x := benchRow{
		org:    fmt.Sprintf("org%d", i%benchOrgs),
		person: benchID(r, "p"), device: benchID(r, "d"), session: benchID(r, "s"),
		personName: fmt.Sprintf("Worker %07d", i),
		deviceName: fmt.Sprintf("Pendant %07d", i),
		note:       fmt.Sprintf("Home visit, flat %d, %d Station Road; client's dog in the garden; buddy on call", r.IntN(40)+1, r.IntN(300)+1),
		secret:     make([]byte, 32),
	}
	for j := range x.secret {
		x.secret[j] = byte(r.Uint32())
	}
	x.lastSeen = since(r, 5*time.Minute)
	x.posTime = x.lastSeen.Add(-time.Duration(r.Int64N(int64(time.Minute)))).Truncate(time.Microsecond)
	x.fixTime = x.posTime
	x.lat, x.lon, x.acc = 51+r.Float64()*3, -3+r.Float64()*3, 5+r.Float64()*25
	x.battery = 20 + r.IntN(81)
	x.events = int64(r.IntN(5000))
	x.started = benchNow.Add(-6*time.Hour + time.Duration(int64(6*time.Hour)/int64(n)*int64(i))).Truncate(time.Microsecond)
	x.end = x.started.Add(benchShift)
	x.lastCheckin = since(r, benchInterval)
	if x.lastCheckin.Before(x.started) {
		x.lastCheckin = x.started
	}
	return x
}

// timersOf counts the deadlines the engine keeps for row x: its
// session's next due moment (reminder, missed check-in or overrun: one
// deadline per session) and the device's offline watch.
func timersOf(x benchRow) int {
	s := store.Session{State: store.SessionActive, StartedAt: x.started, ExpectedEnd: x.end,
		CheckinInterval: benchInterval, Grace: benchGrace, LastCheckin: x.lastCheckin}
	if d := safety.SessionDeadlines(s, 5*time.Minute); d.Overrun.IsZero() {
		return 1 // not a case of the data: every session has an overrun moment
	}
	return 2
}

// --- SQLite -----------------------------------------------------------------

func ns(t time.Time) int64 { return t.UnixNano() }

func populateSQLite(ctx context.Context, n int) (f *fixture, err error) {
	dir, err := os.MkdirTemp("", "vigil-bench-load-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	path := filepath.Join(dir, "vigil.db")
	st, err := sqlite.Open(ctx, path, sqlite.Options{AutoMigrate: true})
	if err != nil {
		return nil, err
	}
	if err := st.Close(); err != nil {
		return nil, err
	}
	// A bulk load: no fsync, a page cache that holds the indexes.
	db, err := sql.Open("sqlite", path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(OFF)&_pragma=cache_size(-2097152)&_pragma=temp_store(MEMORY)")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	created := ns(benchNow.Add(-30 * 24 * time.Hour))
	for o := range benchOrgs {
		if _, err := tx.ExecContext(ctx, `INSERT INTO orgs (id, name, created_at) VALUES (?, ?, ?)`,
			fmt.Sprintf("org%d", o), fmt.Sprintf("Organisation %d", o), created); err != nil {
			return nil, err
		}
	}
	tables := []struct {
		head string
		cols int
		row  func(x benchRow) []any
	}{
		{`INSERT INTO people (id, org_id, kind, name, created_at) VALUES `, 5, func(x benchRow) []any {
			return []any{x.person, x.org, "worker", x.personName, created}
		}},
		{`INSERT INTO devices (id, org_id, name, person_id, secret_hash, created_at, last_seen, last_lat, last_lon,
			last_accuracy_m, last_fix_time, position_time, battery, charging, battery_time, event_count) VALUES `, 16, func(x benchRow) []any {
			return []any{x.device, x.org, x.deviceName, x.person, x.secret, created, ns(x.lastSeen), x.lat, x.lon,
				x.acc, ns(x.fixTime), ns(x.posTime), x.battery, 0, ns(x.lastSeen), x.events}
		}},
		{`INSERT INTO sessions (id, org_id, person_id, device_id, preset, note, started_at, expected_end,
			checkin_interval, grace, last_checkin, state, version) VALUES `, 13, func(x benchRow) []any {
			return []any{x.session, x.org, x.person, x.device, "", x.note, ns(x.started), ns(x.end),
				int64(benchInterval), int64(benchGrace), ns(x.lastCheckin), "active", 1}
		}},
	}
	// One row per statement: a multi-row INSERT needs a statement journal
	// (it may fail half-way), which made the load several times slower.
	timers := 0
	for ti, t := range tables {
		st, err := tx.PrepareContext(ctx, t.head+"("+strings.TrimSuffix(strings.Repeat("?, ", t.cols), ", ")+")")
		if err != nil {
			return nil, err
		}
		for i := range n {
			x := benchRecord(i, n)
			if ti == 0 {
				timers += timersOf(x)
			}
			if _, err := st.ExecContext(ctx, t.row(x)...); err != nil {
				return nil, err
			}
		}
		st.Close()
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	if _, err := db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return nil, err
	}
	return &fixture{
		n: n, timers: timers,
		open: func(ctx context.Context) (loadStore, error) { return sqlite.Open(ctx, path, sqlite.Options{}) },
		drop: func() error { return os.RemoveAll(dir) },
	}, nil
}

// --- PostgreSQL -------------------------------------------------------------

func populatePostgres(ctx context.Context, url string, n int) (f *fixture, err error) {
	var rb [8]byte
	rand.Read(rb[:])
	schema := "vigil_bench_" + hex.EncodeToString(rb[:])
	drop := func() error {
		conn, err := pgx.Connect(context.Background(), url)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		_, err = conn.Exec(context.Background(), `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`)
		return err
	}
	defer func() {
		if err != nil {
			drop()
		}
	}()
	st, err := postgres.Open(ctx, url, postgres.Options{AutoMigrate: true, Schema: schema})
	if err != nil {
		return nil, err
	}
	st.Close()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["search_path"] = schema
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	created := benchNow.Add(-30 * 24 * time.Hour)
	for o := range benchOrgs {
		if _, err := conn.Exec(ctx, `INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3)`,
			fmt.Sprintf("org%d", o), fmt.Sprintf("Organisation %d", o), created); err != nil {
			return nil, err
		}
	}
	timers := 0
	tables := []struct {
		name string
		cols []string
		row  func(x benchRow) []any
	}{
		{"people", []string{"id", "org_id", "kind", "name", "created_at"}, func(x benchRow) []any {
			timers += timersOf(x)
			return []any{x.person, x.org, "worker", x.personName, created}
		}},
		{"devices", []string{"id", "org_id", "name", "person_id", "secret_hash", "created_at", "last_seen", "last_lat", "last_lon",
			"last_accuracy_m", "last_fix_time", "position_time", "battery", "charging", "battery_time", "event_count"}, func(x benchRow) []any {
			return []any{x.device, x.org, x.deviceName, x.person, x.secret, created, x.lastSeen, x.lat, x.lon,
				x.acc, x.fixTime, x.posTime, int32(x.battery), false, x.lastSeen, x.events}
		}},
		{"sessions", []string{"id", "org_id", "person_id", "device_id", "preset", "note", "started_at", "expected_end",
			"checkin_interval", "grace", "last_checkin", "state", "version"}, func(x benchRow) []any {
			return []any{x.session, x.org, x.person, x.device, "", x.note, x.started, x.end,
				int64(benchInterval), int64(benchGrace), x.lastCheckin, "active", int64(1)}
		}},
	}
	for _, t := range tables {
		i := 0
		src := pgx.CopyFromFunc(func() ([]any, error) {
			if i == n {
				return nil, nil
			}
			x := benchRecord(i, n)
			i++
			return t.row(x), nil
		})
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{t.name}, t.cols, src); err != nil {
			return nil, fmt.Errorf("copy %s: %w", t.name, err)
		}
	}
	// What autovacuum would have done by the time of a restart: statistics,
	// hint bits and the visibility map.
	for _, t := range []string{"orgs", "people", "devices", "sessions"} {
		if _, err := conn.Exec(ctx, `VACUUM ANALYZE `+t); err != nil {
			return nil, err
		}
	}
	return &fixture{
		n: n, timers: timers,
		open: func(ctx context.Context) (loadStore, error) {
			return postgres.Open(ctx, url, postgres.Options{Schema: schema})
		},
		drop: drop,
	}, nil
}
