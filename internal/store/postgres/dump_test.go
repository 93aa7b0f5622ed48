package postgres_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"vigil/internal/audit"
	"vigil/internal/event"
	"vigil/internal/store"
	"vigil/internal/store/postgres"
	"vigil/internal/store/storetest"
)

// memDump is a dump held in memory, one buffer per table.
type memDump map[string]*bytes.Buffer

func (m memDump) create(t string) (io.WriteCloser, error) {
	b := &bytes.Buffer{}
	m[t] = b
	return nopWriteCloser{b}, nil
}

func (m memDump) open(t string) (io.ReadCloser, error) {
	b, ok := m[t]
	if !ok {
		return nil, fmt.Errorf("no table %s in the dump", t)
	}
	return io.NopCloser(bytes.NewReader(b.Bytes())), nil
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// fillForDump writes orgs, people, devices, positions, logged events (the
// identity column), an alert and a signed audit chain; it returns the
// audit key.
func fillForDump(t *testing.T, s *postgres.Store, positions int) ed25519.PrivateKey {
	t.Helper()
	ctx := context.Background()
	storetest.BenchSeed(t, s)
	if err := s.CreatePerson(ctx, store.Person{ID: "p1", OrgID: "bench", Kind: store.PersonWorker, Name: "Ada O'Brien \"\\ \t\n é", CreatedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	if err := s.AssignDevice(ctx, "bench-000", "p1"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < positions; i += 1000 {
		if _, err := s.ApplyEvents(ctx, storetest.BenchEvents(i, min(1000, positions-i))); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC()
	var logged []event.Event
	for i := range 5 {
		logged = append(logged, event.Event{V: event.SchemaVersion, OrgID: "bench", DeviceID: "bench-001", MsgID: fmt.Sprintf("hb%d", i),
			Type: event.TypeHeartbeat, DeviceTime: now.Add(time.Duration(i) * time.Second), ReceivedAt: now, Source: event.SourceMQTT})
	}
	if _, err := s.ApplyEvents(ctx, logged); err != nil {
		t.Fatal(err)
	}
	_, pk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	al := audit.New(s, pk, slog.New(slog.DiscardHandler), nil, audit.Config{CheckpointEvery: 4})
	for i := range 10 {
		if err := al.Record(ctx, audit.Entry{OrgID: "bench", Actor: "u1", Action: "person.read", ObjectType: "person", ObjectID: fmt.Sprint("p", i), Outcome: audit.OutcomeOK}); err != nil {
			t.Fatal(err)
		}
	}
	return pk
}

// tableRows is every row of every table of schema as text, sorted.
func tableRows(t *testing.T, url, schema string) map[string][]string {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["search_path"] = schema
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = $1 AND tablename <> 'schema_migrations'`, schema)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, n := range names {
		rows, err := conn.Query(ctx, `SELECT t::text FROM `+pgx.Identifier{n}.Sanitize()+` t ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		vals, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		out[n] = vals
	}
	return out
}

// TestDumpLoad is the PostgreSQL restore drill at the store level: fill a
// schema, dump it, load the dump into another fresh schema, and find every
// table's rows equal, the audit chain intact and the identity sequence
// moved past the restored rows.
func TestDumpLoad(t *testing.T) {
	url := testURL(t)
	ctx := context.Background()
	src := freshSchema(t, url)
	s, err := postgres.Open(ctx, url, postgres.Options{AutoMigrate: true, Schema: src})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	key := fillForDump(t, s, 2500)

	dump := memDump{}
	info, err := postgres.Dump(ctx, url, src, dump.create)
	if err != nil {
		t.Fatal(err)
	}
	ms, _ := postgres.Migrations()
	if info.SchemaVersion != len(ms) {
		t.Errorf("schema version %d, want %d", info.SchemaVersion, len(ms))
	}
	var tables []string
	rowsOf := map[string]int64{}
	for _, tb := range info.Tables {
		tables = append(tables, tb.Name)
		rowsOf[tb.Name] = tb.Rows
	}
	if rowsOf["positions"] != 2500 || rowsOf["events"] != 5 || rowsOf["devices"] != storetest.BenchDevices || rowsOf["people"] != 1 || rowsOf["audit_log"] < 10 {
		t.Errorf("dump row counts %v", rowsOf)
	}
	if slices.Contains(tables, "schema_migrations") {
		t.Error("schema_migrations is dumped: the load's migrations write it")
	}
	// Dependency order: orgs before people before devices before events.
	idx := func(n string) int { return slices.Index(tables, n) }
	if !(idx("orgs") < idx("people") && idx("people") < idx("devices") && idx("devices") < idx("events")) {
		t.Errorf("tables not in dependency order: %v", tables)
	}

	// Load through the URL's search_path, as `vigil restore --store` does.
	dst := freshSchema(t, url)
	createSchema(t, url, dst)
	if err := postgres.Load(ctx, url+"&search_path="+dst, "", info.SchemaVersion, tables, dump.open); err != nil {
		t.Fatal(err)
	}
	want, got := tableRows(t, url, src), tableRows(t, url, dst)
	if len(want) != len(got) || len(want) < 10 {
		t.Fatalf("%d tables restored, %d in the source", len(got), len(want))
	}
	for n, rows := range want {
		if !slices.Equal(rows, got[n]) {
			t.Errorf("table %s: %d rows restored, %d in the source, or they differ", n, len(got[n]), len(rows))
		}
	}
	counts, err := postgres.Counts(ctx, url, dst)
	if err != nil {
		t.Fatal(err)
	}
	for n, r := range rowsOf {
		if counts[n] != r {
			t.Errorf("Counts[%s] = %d after load, dump says %d", n, counts[n], r)
		}
	}
	if counts["schema_migrations"] != int64(len(ms)) {
		t.Errorf("schema_migrations has %d rows, want %d", counts["schema_migrations"], len(ms))
	}

	// The restored store opens as current, its audit chain verifies, and a
	// new logged event gets a new sequence number.
	r, err := postgres.Open(ctx, url, postgres.Options{Schema: dst})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rep, err := audit.Verify(ctx, r, key.Public().(ed25519.PublicKey))
	if err != nil || !rep.OK() || rep.Records < 10 || rep.Checkpoints < 2 {
		t.Errorf("audit on the restored store: %v %+v", err, rep)
	}
	n, err := r.ApplyEvents(ctx, []event.Event{{V: event.SchemaVersion, OrgID: "bench", DeviceID: "bench-002", MsgID: "after-restore",
		Type: event.TypeHeartbeat, DeviceTime: time.Now().UTC(), ReceivedAt: time.Now().UTC(), Source: event.SourceMQTT}})
	if err != nil || n != 1 {
		t.Fatalf("event after restore: %d %v (identity sequence not moved past the restored rows?)", n, err)
	}
}

// TestLoadRefuses: a non-empty schema, a missing schema, an unknown
// version and a dump whose tables are not the version's are refused.
func TestLoadRefuses(t *testing.T) {
	url := testURL(t)
	ctx := context.Background()
	src := freshSchema(t, url)
	s, err := postgres.Open(ctx, url, postgres.Options{AutoMigrate: true, Schema: src})
	if err != nil {
		t.Fatal(err)
	}
	storetest.BenchSeed(t, s)
	s.Close()
	dump := memDump{}
	info, err := postgres.Dump(ctx, url, src, dump.create)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for _, tb := range info.Tables {
		tables = append(tables, tb.Name)
	}

	err = postgres.Load(ctx, url, src, info.SchemaVersion, tables, dump.open)
	if !errors.Is(err, postgres.ErrNotEmpty) || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("load into the source schema: %v, want ErrNotEmpty", err)
	}
	missing := freshSchema(t, url)
	if err := postgres.Load(ctx, url+"&search_path="+missing, "", info.SchemaVersion, tables, dump.open); err == nil || !strings.Contains(err.Error(), "names no existing schema") {
		t.Errorf("load into a missing schema: %v", err)
	}
	if err := postgres.Load(ctx, url, freshSchema(t, url), info.SchemaVersion+1, tables, dump.open); err == nil || !strings.Contains(err.Error(), "schema version") {
		t.Errorf("load of a newer schema version: %v", err)
	}
	if err := postgres.Load(ctx, url, freshSchema(t, url), info.SchemaVersion, tables[1:], dump.open); err == nil || !strings.Contains(err.Error(), "are not schema version") {
		t.Errorf("load of a dump lacking %s: %v", tables[0], err)
	}
	// A damaged COPY stream fails the load's one transaction: no rows stay.
	bad := memDump{}
	for n, b := range dump {
		bad[n] = bytes.NewBuffer(slices.Clone(b.Bytes()))
	}
	bad["devices"].Truncate(bad["devices"].Len() / 2)
	dst := freshSchema(t, url)
	if err := postgres.Load(ctx, url, dst, info.SchemaVersion, tables, bad.open); err == nil || !strings.Contains(err.Error(), "table devices") {
		t.Errorf("load of a truncated COPY stream: %v", err)
	}
	if err := postgres.CheckEmpty(ctx, url, dst); err != nil {
		t.Errorf("a failed load left the schema non-empty: %v", err)
	}
	// … so the same restore can be run again into it.
	if err := postgres.Load(ctx, url, dst, info.SchemaVersion, tables, dump.open); err != nil {
		t.Errorf("load after a failed load: %v", err)
	}
}

// TestDumpRefusesOldSchema: a schema this binary does not match is not
// dumped.
func TestDumpRefusesOldSchema(t *testing.T) {
	url := testURL(t)
	ctx := context.Background()
	schema := freshSchema(t, url)
	if err := postgres.MigrateTo(ctx, url, schema, 3); err != nil {
		t.Fatal(err)
	}
	_, err := postgres.Dump(ctx, url, schema, memDump{}.create)
	if !errors.Is(err, store.ErrSchemaOlder) {
		t.Errorf("dump of schema 3: %v, want ErrSchemaOlder", err)
	}
}

func createSchema(t *testing.T, url, schema string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatal(err)
	}
}

// TestDumpUnderWrites: a dump taken while audit records and positions
// are written as fast as they go is one snapshot: it loads, its row
// counts hold, and its audit chain (hash links and signed checkpoints)
// verifies.
func TestDumpUnderWrites(t *testing.T) {
	url := testURL(t)
	ctx := context.Background()
	src := freshSchema(t, url)
	s, err := postgres.Open(ctx, url, postgres.Options{AutoMigrate: true, Schema: src})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	key := fillForDump(t, s, 1000)
	al := audit.New(s, key, slog.New(slog.DiscardHandler), nil, audit.Config{CheckpointEvery: 3})
	stop, done := make(chan struct{}), make(chan int)
	started := make(chan struct{})
	go func() {
		n := 0
		defer func() { done <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := al.Record(ctx, audit.Entry{OrgID: "bench", Actor: "u2", Action: "person.read", ObjectID: "p1", Outcome: audit.OutcomeOK}); err != nil {
				t.Error(err)
				return
			}
			if _, err := s.ApplyEvents(ctx, storetest.BenchEvents(100000+n*10, 10)); err != nil {
				t.Error(err)
				return
			}
			if n++; n == 5 {
				close(started)
			}
		}
	}()
	<-started
	dump := memDump{}
	info, err := postgres.Dump(ctx, url, src, dump.create)
	close(stop)
	written := <-done
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	rowsOf := map[string]int64{}
	for _, tb := range info.Tables {
		tables = append(tables, tb.Name)
		rowsOf[tb.Name] = tb.Rows
	}
	t.Logf("%d writer rounds around the dump; dumped %d audit records, %d positions", written, rowsOf["audit_log"], rowsOf["positions"])
	// Each round writes one audit record, then ten positions: one
	// snapshot sees k rounds, or k rounds and the next one's audit record.
	rounds := (rowsOf["positions"] - 1000) / 10
	if a := rowsOf["audit_log"] - 10; rounds < 5 || (a != rounds && a != rounds+1) {
		t.Errorf("dump holds %d audit records and %d positions of the writer: not one snapshot", a, rowsOf["positions"]-1000)
	}
	dst := freshSchema(t, url)
	if err := postgres.Load(ctx, url, dst, info.SchemaVersion, tables, dump.open); err != nil {
		t.Fatal(err)
	}
	counts, err := postgres.Counts(ctx, url, dst)
	if err != nil {
		t.Fatal(err)
	}
	for n, r := range rowsOf {
		if counts[n] != r {
			t.Errorf("table %s: %d rows loaded, dump says %d", n, counts[n], r)
		}
	}
	r, err := postgres.Open(ctx, url, postgres.Options{Schema: dst})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rep, err := audit.Verify(ctx, r, key.Public().(ed25519.PublicKey))
	if err != nil || !rep.OK() || rep.Records < 15 {
		t.Errorf("audit chain of the dump taken under writes: %v %+v", err, rep)
	}
}
