// Package sqlite implements store.Store on a SQLite file (modernc.org/sqlite,
// pure Go) for single-node deployments.
//
// Durability: WAL with synchronous=FULL, so every commit is fsynced. All
// writes go through one connection (SQLite has one writer anyway; holding
// it in-process serialises writers without SQLITE_BUSY retries), reads use
// a separate pool of query-only connections. Times are stored as INTEGER
// Unix nanoseconds in UTC, NULL for the zero time. Position reports
// (events of type position, nearly all the traffic) are kept only in
// positions, keyed by (device_id, device_time, msg_id): one B-tree
// insertion each instead of four.
//
// It imports internal/store, its migrate and batch helpers, internal/event
// and the driver; only internal/app and cmd import this package.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"runtime"
	"strings"
	"time"

	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"vigil/internal/event"
	"vigil/internal/store"
	"vigil/internal/store/internal/batch"
	"vigil/internal/store/migrate"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Migrations returns the embedded migrations of this dialect.
func Migrations() ([]migrate.Migration, error) { return migrate.Load(migrationFS, "migrations") }

// Options tune Open. The zero value opens an existing, current database.
type Options struct {
	// AutoMigrate applies pending migrations before checking the schema.
	AutoMigrate bool
	// ReadConns is the size of the reader pool; default max(4, GOMAXPROCS).
	ReadConns int
	// BusyTimeout is how long a connection waits on a lock held by another
	// process; default 5s.
	BusyTimeout time.Duration
}

// Store is the SQLite store. It is safe for concurrent use.
type Store struct {
	w *sql.DB // the single writer connection
	r *sql.DB // query-only readers

	// ApplyEvents' statements, prepared once on the writer (they cannot be
	// prepared during a batch: the batch's transaction holds the only
	// writer connection). Each multi-row statement exists for 1, 2, 4, …
	// maxRows rows, so that any batch is a few statements, not one per row.
	lastSeq                         *sql.Stmt
	getOrgs, insEvents, insPos, upd multiStmt
}

// maxRows is the most rows one multi-row statement carries: 128 events of
// 9 parameters stay far below SQLite's 32766 host parameters.
const maxRows = 128

// multiStmt holds a statement prepared for 1, 2, 4, … maxRows rows.
type multiStmt struct {
	sizes []int // descending
	stmts []*sql.Stmt
}

// prepareMulti prepares head + row + (", " + row)* + tail for every power of
// two up to maxRows.
func prepareMulti(ctx context.Context, db *sql.DB, head, row, tail string) (multiStmt, error) {
	var m multiStmt
	for n := maxRows; n >= 1; n /= 2 {
		var b strings.Builder
		b.WriteString(head)
		for i := range n {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(row)
		}
		b.WriteString(tail)
		st, err := db.PrepareContext(ctx, b.String())
		if err != nil {
			m.close()
			return multiStmt{}, err
		}
		m.sizes, m.stmts = append(m.sizes, n), append(m.stmts, st)
	}
	return m, nil
}

func (m *multiStmt) close() []error {
	var errs []error
	for _, st := range m.stmts {
		errs = append(errs, st.Close())
	}
	m.stmts = nil
	return errs
}

// chunk returns the statement for the largest size that fits in n rows.
func (m *multiStmt) chunk(n int) (*sql.Stmt, int) {
	for i, size := range m.sizes {
		if size <= n {
			return m.stmts[i], size
		}
	}
	panic("sqlite: chunk of no rows")
}

const (
	qLastSeq = `SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)`
	// qGetOrgs: IN (?, ?, …)
	qGetOrgsHead = `SELECT id, org_id FROM devices WHERE id IN (`
	qGetOrgsTail = `)`
	qInsEvents   = `INSERT INTO events
		(org_id, device_id, msg_id, type, device_time, received_at, source, late, body) VALUES `
	qInsEventsRow  = `(?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qInsEventsTail = ` ON CONFLICT (device_id, msg_id) DO NOTHING`
	qInsPos        = `INSERT INTO positions
		(device_id, device_time, msg_id, received_at, source, late, lat, lon, accuracy_m, speed, heading, altitude, fix_time) VALUES `
	qInsPosRow  = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qInsPosTail = ` ON CONFLICT DO NOTHING`
	// qUpd applies one batch.Delta per row of d: the event count and
	// last_seen always; the position (d.pt not NULL) and battery (d.bt
	// not NULL) only when strictly newer than the stored ones. SET
	// expressions all see the row as it was before the update.
	qUpdHead = `WITH d (id, n, seen, pt, lat, lon, acc, speed, heading, alt, fix, bt, bat, chg) AS (VALUES `
	qUpdRow  = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	newerPos = `d.pt IS NOT NULL AND (position_time IS NULL OR position_time < d.pt)`
	newerBat = `d.bt IS NOT NULL AND (battery_time IS NULL OR battery_time < d.bt)`
	qUpdTail = `)
		UPDATE devices SET
			event_count = event_count + d.n,
			last_seen = max(coalesce(last_seen, d.seen), d.seen),
			last_lat = iif(` + newerPos + `, d.lat, last_lat),
			last_lon = iif(` + newerPos + `, d.lon, last_lon),
			last_accuracy_m = iif(` + newerPos + `, d.acc, last_accuracy_m),
			last_speed = iif(` + newerPos + `, d.speed, last_speed),
			last_heading = iif(` + newerPos + `, d.heading, last_heading),
			last_altitude = iif(` + newerPos + `, d.alt, last_altitude),
			last_fix_time = iif(` + newerPos + `, d.fix, last_fix_time),
			position_time = iif(` + newerPos + `, d.pt, position_time),
			battery = iif(` + newerBat + `, d.bat, battery),
			charging = iif(` + newerBat + `, d.chg, charging),
			battery_time = iif(` + newerBat + `, d.bt, battery_time)
		FROM d WHERE devices.id = d.id`
)

func (s *Store) prepare(ctx context.Context) error {
	var err error
	if s.lastSeq, err = s.w.PrepareContext(ctx, qLastSeq); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	for _, p := range []struct {
		dst             *multiStmt
		head, row, tail string
	}{
		{&s.getOrgs, qGetOrgsHead, "?", qGetOrgsTail},
		{&s.insEvents, qInsEvents, qInsEventsRow, qInsEventsTail},
		{&s.insPos, qInsPos, qInsPosRow, qInsPosTail},
		{&s.upd, qUpdHead, qUpdRow, qUpdTail},
	} {
		if *p.dst, err = prepareMulti(ctx, s.w, p.head, p.row, p.tail); err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
	}
	return nil
}

var _ store.Store = (*Store)(nil)

// Open opens (creating with mode 0600 if needed) the database at path. With
// AutoMigrate false it refuses a schema that is not exactly current, with
// an error wrapping store.ErrSchemaOlder, ErrSchemaNewer or ErrSchemaDrift.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	w, r, err := openDBs(path, opts)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	s := &Store{w: w, r: r}
	ms, err := Migrations()
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	d := driver{db: w}
	if opts.AutoMigrate {
		if _, err := migrate.Up(ctx, d, ms); err != nil {
			s.Close()
			return nil, fmt.Errorf("open sqlite store: %w", err)
		}
	}
	if err := migrate.Check(ctx, d, ms); err != nil {
		s.Close()
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	if err := s.prepare(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	return s, nil
}

// Migrate applies pending migrations to the database at path and returns
// the versions it applied (none when already current).
func Migrate(ctx context.Context, path string) ([]int, error) {
	w, r, err := openDBs(path, Options{ReadConns: 1})
	if err != nil {
		return nil, fmt.Errorf("migrate sqlite: %w", err)
	}
	defer r.Close()
	defer w.Close()
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	return migrate.Up(ctx, driver{db: w}, ms)
}

// Status reports the schema version of the database at path against the
// binary's.
func Status(ctx context.Context, path string) (migrate.Status, error) {
	w, r, err := openDBs(path, Options{ReadConns: 1})
	if err != nil {
		return migrate.Status{}, fmt.Errorf("sqlite schema status: %w", err)
	}
	defer r.Close()
	defer w.Close()
	ms, err := Migrations()
	if err != nil {
		return migrate.Status{}, err
	}
	return migrate.GetStatus(ctx, driver{db: w}, ms)
}

func openDBs(path string, opts Options) (w, r *sql.DB, err error) {
	if path == "" || strings.ContainsAny(path, "?#") || strings.HasPrefix(path, "file:") {
		return nil, nil, errors.New("database path must be a plain file name without ? or #")
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, err
	}
	f.Close()
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, nil, err
	}
	busy := opts.BusyTimeout
	if busy <= 0 {
		busy = 5 * time.Second
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	// 64 MiB of page cache: a large batch's dirty pages stay in memory
	// until commit instead of spilling to the WAL mid-transaction.
	q.Add("_pragma", "cache_size(-65536)")
	// Checkpoint every 10000 WAL pages (40 MiB) instead of every 1000: a
	// batch dirties hundreds of index pages, mostly the same ones as the
	// previous batch, so rarer checkpoints copy each page once for many
	// commits. It does not weaken durability: each commit is fsynced to
	// the WAL either way.
	q.Add("_pragma", "wal_autocheckpoint(10000)")
	// Statement journals (which the multi-row inserts of ApplyEvents need
	// to undo one statement) in memory, not in a temp file.
	q.Add("_pragma", "temp_store(MEMORY)")
	wq := url.Values{"_txlock": {"immediate"}}
	for k, v := range q {
		wq[k] = v
	}
	w, err = sql.Open("sqlite", path+"?"+wq.Encode())
	if err != nil {
		return nil, nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	// Connect the writer first: it switches the file to WAL.
	if err := w.Ping(); err != nil {
		w.Close()
		return nil, nil, err
	}
	n := opts.ReadConns
	if n <= 0 {
		n = max(4, runtime.GOMAXPROCS(0))
	}
	rq := url.Values{}
	rq.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	rq.Add("_pragma", "foreign_keys(1)")
	rq.Add("_pragma", "query_only(1)")
	r, err = sql.Open("sqlite", path+"?"+rq.Encode())
	if err != nil {
		w.Close()
		return nil, nil, err
	}
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	r.SetConnMaxLifetime(0)
	r.SetConnMaxIdleTime(0)
	return w, r, nil
}

// Close closes both pools.
func (s *Store) Close() error {
	var errs []error
	if s.lastSeq != nil {
		errs = append(errs, s.lastSeq.Close())
	}
	for _, m := range []*multiStmt{&s.getOrgs, &s.insEvents, &s.insPos, &s.upd} {
		errs = append(errs, m.close()...)
	}
	return errors.Join(append(errs, s.r.Close(), s.w.Close())...)
}

// Ping checks both pools answer.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("ping sqlite: %w", err)
	}
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("ping sqlite: %w", err)
	}
	return nil
}

// --- migrate.Driver -------------------------------------------------------

type driver struct{ db *sql.DB }

func (d driver) Applied(ctx context.Context) ([]migrate.Record, error) {
	var n int
	if err := d.db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&n); err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	if n == 0 {
		return nil, nil
	}
	rows, err := d.db.QueryContext(ctx, `SELECT version, checksum, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	var out []migrate.Record
	for rows.Next() {
		var rec migrate.Record
		var at int64
		if err := rows.Scan(&rec.Version, &rec.Checksum, &at); err != nil {
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		rec.AppliedAt = fromNanos(sql.NullInt64{Int64: at, Valid: true})
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	return out, nil
}

func (d driver) Apply(ctx context.Context, m migrate.Migration) (bool, error) {
	// The writer's transactions BEGIN IMMEDIATE: this holds the file's
	// write lock against other processes too.
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		checksum   TEXT NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return false, err
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&n); err != nil {
		return false, err
	}
	if n > 0 {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, checksum, applied_at) VALUES (?, ?, ?)`,
		m.Version, m.Checksum, time.Now().UnixNano()); err != nil {
		return false, err
	}
	return true, tx.Commit()
}

// --- encoding -------------------------------------------------------------

func nanos(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixNano(), Valid: true}
}

func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

func floatPtr(n sql.NullFloat64) *float64 {
	if !n.Valid {
		return nil
	}
	v := n.Float64
	return &v
}

func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now().UTC()
	}
	return t
}

// classify maps constraint violations to the store sentinels.
func classify(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return store.ErrConflict
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return store.ErrNotFound
		}
	}
	return err
}

// --- orgs, people, devices -----------------------------------------------

// CreateOrg inserts an organisation; an existing id is ErrConflict.
func (s *Store) CreateOrg(ctx context.Context, o store.Org) error {
	policy := o.LocationPolicy
	if policy == "" {
		policy = store.LocationOnDuty
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO orgs (id, name, created_at, location_policy, require_webauthn) VALUES (?, ?, ?, ?, ?)`,
		o.ID, o.Name, nanos(orNow(o.CreatedAt)), string(policy), o.RequireWebAuthn)
	if err != nil {
		return fmt.Errorf("create org %s: %w", o.ID, classify(err))
	}
	return nil
}

// GetOrg returns an organisation or ErrNotFound.
func (s *Store) GetOrg(ctx context.Context, id string) (store.Org, error) {
	var o store.Org
	var at sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT id, name, created_at, location_policy, require_webauthn FROM orgs WHERE id = ?`, id).
		Scan(&o.ID, &o.Name, &at, &o.LocationPolicy, &o.RequireWebAuthn)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Org{}, fmt.Errorf("get org %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Org{}, fmt.Errorf("get org %s: %w", id, err)
	}
	o.CreatedAt = fromNanos(at)
	return o, nil
}

// ListOrgs lists organisations by id.
func (s *Store) ListOrgs(ctx context.Context) ([]store.Org, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, name, created_at, location_policy, require_webauthn FROM orgs ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list orgs: %w", err)
	}
	defer rows.Close()
	var out []store.Org
	for rows.Next() {
		var o store.Org
		var at sql.NullInt64
		if err := rows.Scan(&o.ID, &o.Name, &at, &o.LocationPolicy, &o.RequireWebAuthn); err != nil {
			return nil, fmt.Errorf("list orgs: %w", err)
		}
		o.CreatedAt = fromNanos(at)
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list orgs: %w", err)
	}
	return out, nil
}

// CreatePerson inserts a person; an unknown org is ErrNotFound, an
// existing id ErrConflict.
func (s *Store) CreatePerson(ctx context.Context, p store.Person) error {
	if p.Kind != store.PersonWorker && p.Kind != store.PersonResident {
		return fmt.Errorf("create person %s: kind must be worker or resident", p.ID)
	}
	if math.IsNaN(p.FallSensitivity) || math.IsInf(p.FallSensitivity, 0) {
		return fmt.Errorf("create person %s: fall sensitivity must be a finite number", p.ID)
	}
	if p.FallCancelWindow < 0 {
		return fmt.Errorf("create person %s: fall cancel window must not be negative", p.ID)
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO people (id, org_id, kind, name, created_at, fall_sensitivity, fall_cancel_window_ns)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
		p.ID, p.OrgID, string(p.Kind), p.Name, nanos(orNow(p.CreatedAt)), p.FallSensitivity, int64(p.FallCancelWindow))
	if err != nil {
		return fmt.Errorf("create person %s: %w", p.ID, classify(err))
	}
	return nil
}

// GetPerson returns a person or ErrNotFound.
func (s *Store) GetPerson(ctx context.Context, id string) (store.Person, error) {
	var p store.Person
	var at sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT id, org_id, kind, name, created_at, fall_sensitivity, duress_code_hash, fall_cancel_window_ns FROM people WHERE id = ?`, id).
		Scan(&p.ID, &p.OrgID, &p.Kind, &p.Name, &at, &p.FallSensitivity, &p.DuressCodeHash, &p.FallCancelWindow)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Person{}, fmt.Errorf("get person %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Person{}, fmt.Errorf("get person %s: %w", id, err)
	}
	p.CreatedAt = fromNanos(at)
	return p, nil
}

// ListPeople lists an organisation's people by id.
func (s *Store) ListPeople(ctx context.Context, orgID string) ([]store.Person, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, org_id, kind, name, created_at, fall_sensitivity, duress_code_hash, fall_cancel_window_ns FROM people WHERE org_id = ? ORDER BY id`, orgID)
	if err != nil {
		return nil, fmt.Errorf("list people of %s: %w", orgID, err)
	}
	defer rows.Close()
	var out []store.Person
	for rows.Next() {
		var p store.Person
		var at sql.NullInt64
		if err := rows.Scan(&p.ID, &p.OrgID, &p.Kind, &p.Name, &at, &p.FallSensitivity, &p.DuressCodeHash, &p.FallCancelWindow); err != nil {
			return nil, fmt.Errorf("list people of %s: %w", orgID, err)
		}
		p.CreatedAt = fromNanos(at)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list people of %s: %w", orgID, err)
	}
	return out, nil
}

// SetFallSensitivity sets a person's fall-detector sensitivity.
func (s *Store) SetFallSensitivity(ctx context.Context, personID string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("set fall sensitivity of %s: must be a finite number", personID)
	}
	res, err := s.w.ExecContext(ctx, `UPDATE people SET fall_sensitivity = ? WHERE id = ?`, v, personID)
	if err != nil {
		return fmt.Errorf("set fall sensitivity of %s: %w", personID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("set fall sensitivity of %s: %w", personID, store.ErrNotFound)
	}
	return nil
}

// SetFallCancelWindow sets a person's fall cancel window (0: the default).
func (s *Store) SetFallCancelWindow(ctx context.Context, personID string, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("set fall cancel window of %s: must not be negative", personID)
	}
	res, err := s.w.ExecContext(ctx, `UPDATE people SET fall_cancel_window_ns = ? WHERE id = ?`, int64(d), personID)
	if err != nil {
		return fmt.Errorf("set fall cancel window of %s: %w", personID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("set fall cancel window of %s: %w", personID, store.ErrNotFound)
	}
	return nil
}

// CreateDevice inserts a device. An unknown org, or a person that is not in
// the device's org, is ErrNotFound; an existing id ErrConflict. State is
// ignored: it comes from events.
func (s *Store) CreateDevice(ctx context.Context, d store.Device) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO devices
		(id, org_id, name, person_id, secret_hash, cert_fingerprint, firmware, created_at, disabled_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.ID, d.OrgID, d.Name, sql.NullString{String: d.PersonID, Valid: d.PersonID != ""},
		nullBytes(d.SecretHash), d.CertFingerprint, d.Firmware, nanos(orNow(d.CreatedAt)), nanos(d.DisabledAt))
	if err != nil {
		return fmt.Errorf("create device %s: %w", d.ID, classify(err))
	}
	return nil
}

const deviceCols = `id, org_id, name, person_id, secret_hash, cert_fingerprint, firmware, created_at, disabled_at,
	last_seen, last_lat, last_lon, last_accuracy_m, last_speed, last_heading, last_altitude, last_fix_time,
	position_time, battery, charging, battery_time, event_count, quarantined_at, quarantine_reason`

type scanner interface{ Scan(dest ...any) error }

func scanDevice(sc scanner) (store.Device, error) {
	var d store.Device
	var person sql.NullString
	var created, disabled, seen, fix, posTime, batTime sql.NullInt64
	var lat, lon, acc, speed, heading, alt sql.NullFloat64
	var battery, quarantined sql.NullInt64
	err := sc.Scan(&d.ID, &d.OrgID, &d.Name, &person, &d.SecretHash, &d.CertFingerprint, &d.Firmware, &created, &disabled,
		&seen, &lat, &lon, &acc, &speed, &heading, &alt, &fix,
		&posTime, &battery, &d.State.Charging, &batTime, &d.State.Events, &quarantined, &d.Quarantine.Reason)
	if err != nil {
		return store.Device{}, err
	}
	if quarantined.Int64 != 0 {
		d.Quarantine.At = fromNanos(quarantined)
	}
	d.PersonID = person.String
	d.CreatedAt = fromNanos(created)
	d.DisabledAt = fromNanos(disabled)
	d.State.LastSeen = fromNanos(seen)
	if lat.Valid && lon.Valid {
		d.State.LastPosition = &event.Position{
			Lat: lat.Float64, Lon: lon.Float64, AccuracyM: acc.Float64,
			SpeedMPS: floatPtr(speed), HeadingDeg: floatPtr(heading), AltitudeM: floatPtr(alt),
			FixTime: fromNanos(fix),
		}
		d.State.PositionTime = fromNanos(posTime)
	}
	if battery.Valid {
		b := int(battery.Int64)
		d.State.Battery = &b
		d.State.BatteryTime = fromNanos(batTime)
	}
	return d, nil
}

// GetDevice returns a device with its state, or ErrNotFound.
func (s *Store) GetDevice(ctx context.Context, id string) (store.Device, error) {
	d, err := scanDevice(s.r.QueryRowContext(ctx, `SELECT `+deviceCols+` FROM devices WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Device{}, fmt.Errorf("get device %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Device{}, fmt.Errorf("get device %s: %w", id, err)
	}
	return d, nil
}

// ListDevices lists devices by id, of one organisation or ("") all.
func (s *Store) ListDevices(ctx context.Context, orgID string) ([]store.Device, error) {
	q := `SELECT ` + deviceCols + ` FROM devices WHERE org_id = ? OR ? = '' ORDER BY id`
	rows, err := s.r.QueryContext(ctx, q, orgID, orgID)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	defer rows.Close()
	var out []store.Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("list devices: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	return out, nil
}

func (s *Store) updateDevice(ctx context.Context, op, id, q string, args ...any) error {
	res, err := s.w.ExecContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, id, classify(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, id, err)
	}
	if n == 0 {
		return fmt.Errorf("%s %s: %w", op, id, store.ErrNotFound)
	}
	return nil
}

// AssignDevice assigns a device to a person of its organisation, or
// unassigns it (personID ""). An unknown device, or a person not in the
// device's organisation, is ErrNotFound.
func (s *Store) AssignDevice(ctx context.Context, deviceID, personID string) error {
	return s.updateDevice(ctx, "assign device", deviceID, `UPDATE devices SET person_id = ? WHERE id = ?`,
		sql.NullString{String: personID, Valid: personID != ""}, deviceID)
}

// SetDeviceSecret replaces a device's secret hash.
func (s *Store) SetDeviceSecret(ctx context.Context, deviceID string, secretHash []byte) error {
	return s.updateDevice(ctx, "set device secret", deviceID, `UPDATE devices SET secret_hash = ? WHERE id = ?`,
		nullBytes(secretHash), deviceID)
}

// DisableDevice marks a device disabled at the given time; disabling a
// disabled device keeps the first time.
func (s *Store) DisableDevice(ctx context.Context, deviceID string, at time.Time) error {
	return s.updateDevice(ctx, "disable device", deviceID, `UPDATE devices SET disabled_at = coalesce(disabled_at, ?) WHERE id = ?`,
		nanos(orNow(at)), deviceID)
}

// QuarantineDevice flags a device; see store.Store.
func (s *Store) QuarantineDevice(ctx context.Context, deviceID, reason string, at time.Time) (bool, error) {
	res, err := s.w.ExecContext(ctx, `UPDATE devices SET quarantined_at = ?, quarantine_reason = ? WHERE id = ? AND quarantined_at = 0`,
		orNow(at).UnixNano(), reason, deviceID)
	if err != nil {
		return false, fmt.Errorf("quarantine device %s: %w", deviceID, classify(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("quarantine device %s: %w", deviceID, err)
	}
	if n == 1 {
		return true, nil
	}
	if _, err := s.GetDevice(ctx, deviceID); err != nil {
		return false, fmt.Errorf("quarantine device: %w", err)
	}
	return false, nil
}

// ReleaseDevice clears a device's quarantine flag; see store.Store.
func (s *Store) ReleaseDevice(ctx context.Context, deviceID string) error {
	return s.updateDevice(ctx, "release device", deviceID, `UPDATE devices SET quarantined_at = 0, quarantine_reason = '' WHERE id = ?`, deviceID)
}

// ListRevokedDevices lists devices disabled at or after since; see
// store.Store.
func (s *Store) ListRevokedDevices(ctx context.Context, since time.Time) ([]store.RevokedDevice, error) {
	from := int64(1)
	if !since.IsZero() {
		from = max(1, since.UnixNano())
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id, org_id, coalesce(cert_fingerprint, ''), disabled_at FROM devices
		WHERE disabled_at >= ? ORDER BY disabled_at, id`, from)
	if err != nil {
		return nil, fmt.Errorf("list revoked devices: %w", err)
	}
	defer rows.Close()
	var out []store.RevokedDevice
	for rows.Next() {
		var d store.RevokedDevice
		var at int64
		if err := rows.Scan(&d.ID, &d.OrgID, &d.CertFingerprint, &at); err != nil {
			return nil, fmt.Errorf("list revoked devices: %w", err)
		}
		d.DisabledAt = time.Unix(0, at).UTC()
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list revoked devices: %w", err)
	}
	return out, nil
}

// --- events ---------------------------------------------------------------

// ApplyEvents projects a batch in one transaction; see store.Store.
//
// It runs a handful of multi-row statements per batch rather than several
// per event: one lookup of the devices' orgs, the event rows, the position
// rows and one update of every touched device.
func (s *Store) ApplyEvents(ctx context.Context, evs []event.Event) (int, error) {
	if len(evs) == 0 {
		return 0, nil
	}
	n, err := s.applyEvents(ctx, evs, false)
	if errors.Is(err, errOneByOne) {
		n, err = s.applyEvents(ctx, evs, true)
	}
	return n, err
}

// errOneByOne makes ApplyEvents roll back and insert position reports one
// by one: some of the batch's were already stored.
var errOneByOne = errors.New("position reports already stored: insert one by one")

func (s *Store) applyEvents(ctx context.Context, evs []event.Event, oneByOne bool) (int, error) {
	uniq, devices := batch.Unique(evs)
	logEvs, posEvs := batch.Split(uniq)
	// All bodies in one buffer and one string: one allocation per batch.
	var buf []byte
	ends := make([]int, len(logEvs))
	for i, e := range logEvs {
		var err error
		if buf, err = event.AppendJSON(buf, e); err != nil {
			return 0, fmt.Errorf("apply events: %w", err)
		}
		ends[i] = len(buf)
	}
	all := string(buf)
	body := func(i int) string {
		if i == 0 {
			return all[:ends[0]]
		}
		return all[ends[i-1]:ends[i]]
	}

	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("apply events: %w", err)
	}
	defer tx.Rollback()

	var args []any
	orgOf := make(map[string]string, len(devices))
	for rest := devices; len(rest) > 0; {
		st, n := s.getOrgs.chunk(len(rest))
		args = args[:0]
		for _, id := range rest[:n] {
			args = append(args, id)
		}
		if err := s.readOrgs(ctx, tx.StmtContext(ctx, st), args, orgOf); err != nil {
			return 0, fmt.Errorf("apply events: %w", err)
		}
		rest = rest[n:]
	}
	for _, id := range devices {
		if _, ok := orgOf[id]; !ok {
			return 0, fmt.Errorf("apply events: device %s: %w", id, store.ErrNotFound)
		}
	}
	for _, e := range uniq {
		if orgOf[e.DeviceID] != e.OrgID {
			return 0, fmt.Errorf("apply events: device %s in org %s: %w", e.DeviceID, e.OrgID, store.ErrNotFound)
		}
	}

	isNew := make(map[*event.Event]bool, len(uniq))
	if len(logEvs) > 0 {
		// The event log. A row already stored is skipped by ON CONFLICT;
		// when any was, the new ones are those numbered after the batch
		// began.
		var seq0 int64
		if err := tx.StmtContext(ctx, s.lastSeq).QueryRowContext(ctx).Scan(&seq0); err != nil {
			return 0, fmt.Errorf("apply events: %w", err)
		}
		var total int64
		for i := 0; i < len(logEvs); {
			st, n := s.insEvents.chunk(len(logEvs) - i)
			args = args[:0]
			for j, e := range logEvs[i : i+n] {
				args = append(args, e.OrgID, e.DeviceID, e.MsgID, string(e.Type), e.DeviceTime.UnixNano(),
					e.ReceivedAt.UnixNano(), string(e.Source), e.Late, body(i+j))
			}
			k, err := s.exec(ctx, tx, st, args)
			if err != nil {
				return 0, fmt.Errorf("apply events: insert %s…: %w", logEvs[i].Key(), err)
			}
			total += k
			i += n
		}
		inserted := logEvs
		if total != int64(len(logEvs)) {
			if inserted, err = s.newSince(ctx, tx, seq0, logEvs); err != nil {
				return 0, fmt.Errorf("apply events: %w", err)
			}
		}
		// Their positions: (device_id, msg_id) stays unique in positions
		// because events' UNIQUE admitted each of these keys once and
		// position reports never reach events.
		var withPos []*event.Event
		for _, e := range inserted {
			isNew[e] = true
			if e.Position != nil {
				withPos = append(withPos, e)
			}
		}
		if _, err := s.insertPositions(ctx, tx, withPos, &args); err != nil {
			return 0, fmt.Errorf("apply events: %w", err)
		}
	}

	if len(posEvs) > 0 {
		// Position reports, keyed by (device_id, device_time, msg_id).
		// The common batch is all new. When a row was already stored, the
		// whole transaction is undone and done again inserting each
		// report on its own, to learn which are new. (A savepoint instead
		// costs every batch a statement journal: half its CPU time.)
		if oneByOne {
			for _, e := range posEvs {
				k, err := s.insertPositions(ctx, tx, []*event.Event{e}, &args)
				if err != nil {
					return 0, fmt.Errorf("apply events: %w", err)
				}
				isNew[e] = k == 1
			}
		} else {
			n, err := s.insertPositions(ctx, tx, posEvs, &args)
			if err != nil {
				return 0, fmt.Errorf("apply events: %w", err)
			}
			if n != int64(len(posEvs)) {
				return 0, errOneByOne
			}
			for _, e := range posEvs {
				isNew[e] = true
			}
		}
	}

	inserted := batch.Inserted(uniq, isNew)
	deltas := batch.Deltas(inserted)
	for i := 0; i < len(deltas); {
		st, n := s.upd.chunk(len(deltas) - i)
		args = args[:0]
		for _, d := range deltas[i : i+n] {
			args = append(args, d.DeviceID, d.Count, d.LastSeen.UnixNano())
			if p := d.Position; p != nil {
				args = append(args, d.PositionTime.UnixNano(), p.Lat, p.Lon, p.AccuracyM,
					floatArg(p.SpeedMPS), floatArg(p.HeadingDeg), floatArg(p.AltitudeM), nanosArg(p.FixTime))
			} else {
				args = append(args, nil, nil, nil, nil, nil, nil, nil, nil)
			}
			if b := d.Battery; b != nil {
				args = append(args, d.BatteryTime.UnixNano(), int64(b.Percent), b.Charging)
			} else {
				args = append(args, nil, nil, nil)
			}
		}
		if _, err := tx.StmtContext(ctx, st).ExecContext(ctx, args...); err != nil {
			return 0, fmt.Errorf("apply events: device %s…: %w", deltas[i].DeviceID, err)
		}
		i += n
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("apply events: commit: %w", err)
	}
	return len(inserted), nil
}

// exec runs a prepared statement in tx and returns the rows it changed.
func (s *Store) exec(ctx context.Context, tx *sql.Tx, st *sql.Stmt, args []any) (int64, error) {
	res, err := tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// insertPositions inserts the positions of evs (all with a position),
// skipping keys already stored, and returns how many rows it inserted.
// args is scratch space reused across calls.
func (s *Store) insertPositions(ctx context.Context, tx *sql.Tx, evs []*event.Event, args *[]any) (int64, error) {
	var total int64
	for i := 0; i < len(evs); {
		st, n := s.insPos.chunk(len(evs) - i)
		a := (*args)[:0]
		for _, e := range evs[i : i+n] {
			p := e.Position
			a = append(a, e.DeviceID, e.DeviceTime.UnixNano(), e.MsgID, e.ReceivedAt.UnixNano(), string(e.Source), e.Late,
				p.Lat, p.Lon, p.AccuracyM, floatArg(p.SpeedMPS), floatArg(p.HeadingDeg), floatArg(p.AltitudeM), nanosArg(p.FixTime))
		}
		*args = a
		k, err := s.exec(ctx, tx, st, a)
		if err != nil {
			return 0, fmt.Errorf("insert position %s…: %w", evs[i].Key(), err)
		}
		total += k
		i += n
	}
	return total, nil
}

// readOrgs adds the org of each device the statement finds to orgOf.
func (s *Store) readOrgs(ctx context.Context, st *sql.Stmt, args []any, orgOf map[string]string) error {
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id, org string
		if err := rows.Scan(&id, &org); err != nil {
			return err
		}
		orgOf[id] = org
	}
	return rows.Err()
}

// newSince returns the events of uniq stored with a sequence number above
// seq, in uniq's order: those this transaction inserted.
func (s *Store) newSince(ctx context.Context, tx *sql.Tx, seq int64, uniq []*event.Event) ([]*event.Event, error) {
	rows, err := tx.QueryContext(ctx, `SELECT device_id, msg_id FROM events WHERE seq > ?`, seq)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	type key struct{ dev, msg string }
	isNew := make(map[key]bool)
	for rows.Next() {
		var k key
		if err := rows.Scan(&k.dev, &k.msg); err != nil {
			return nil, err
		}
		isNew[k] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]*event.Event, 0, len(isNew))
	for _, e := range uniq {
		if isNew[key{e.DeviceID, e.MsgID}] {
			out = append(out, e)
		}
	}
	return out, nil
}

// floatArg and nanosArg are a nullable float and nanos as plain driver
// values, skipping database/sql's Valuer conversion.
func floatArg(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func nanosArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func clampLimit(n int) int {
	switch {
	case n <= 0:
		return 100
	case n > 1000:
		return 1000
	}
	return n
}

// ListEvents lists the event log (position reports are in positions)
// newest (highest seq) first.
func (s *Store) ListEvents(ctx context.Context, f store.EventFilter) ([]store.StoredEvent, error) {
	q := `SELECT seq, body FROM events`
	var where []string
	var args []any
	if f.OrgID != "" {
		where = append(where, "org_id = ?")
		args = append(args, f.OrgID)
	}
	if f.DeviceID != "" {
		where = append(where, "device_id = ?")
		args = append(args, f.DeviceID)
	}
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY seq DESC LIMIT ?"
	args = append(args, clampLimit(f.Limit))
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	var out []store.StoredEvent
	for rows.Next() {
		var se store.StoredEvent
		var body []byte
		if err := rows.Scan(&se.Seq, &body); err != nil {
			return nil, fmt.Errorf("list events: %w", err)
		}
		if se.Event, err = event.Unmarshal(body); err != nil {
			return nil, fmt.Errorf("list events: seq %d: %w", se.Seq, err)
		}
		out = append(out, se)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	return out, nil
}

// CountEvents counts a device's events (ErrNotFound for an unknown device),
// or all events when deviceID is "".
func (s *Store) CountEvents(ctx context.Context, deviceID string) (int64, error) {
	var n int64
	if deviceID == "" {
		if err := s.r.QueryRowContext(ctx, `SELECT coalesce(sum(event_count), 0) FROM devices`).Scan(&n); err != nil {
			return 0, fmt.Errorf("count events: %w", err)
		}
		return n, nil
	}
	err := s.r.QueryRowContext(ctx, `SELECT event_count FROM devices WHERE id = ?`, deviceID).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("count events of %s: %w", deviceID, store.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("count events of %s: %w", deviceID, err)
	}
	return n, nil
}

// HasEvent reports whether an event is stored.
func (s *Store) HasEvent(ctx context.Context, deviceID, msgID string) (bool, error) {
	var n int
	// A position report is looked up among its device's positions (the
	// key leads with device_id): a scan of one device's history.
	err := s.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM events WHERE device_id = ?1 AND msg_id = ?2)
		OR EXISTS (SELECT 1 FROM positions WHERE device_id = ?1 AND msg_id = ?2)`, deviceID, msgID).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("has event %s/%s: %w", deviceID, msgID, err)
	}
	return n > 0, nil
}

// Positions returns a device's positions with from <= device time < to,
// oldest first; a zero bound is open.
func (s *Store) Positions(ctx context.Context, deviceID string, from, to time.Time) ([]store.PositionRecord, error) {
	lo, hi := int64(-1<<63), int64(1<<63-1)
	if !from.IsZero() {
		lo = from.UnixNano()
	}
	if !to.IsZero() {
		hi = to.UnixNano()
	}
	rows, err := s.r.QueryContext(ctx, `SELECT device_id, msg_id, device_time, received_at, source, late,
		lat, lon, accuracy_m, speed, heading, altitude, fix_time
		FROM positions WHERE device_id = ? AND device_time >= ? AND device_time < ? ORDER BY device_time, msg_id`,
		deviceID, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("positions of %s: %w", deviceID, err)
	}
	defer rows.Close()
	var out []store.PositionRecord
	for rows.Next() {
		var p store.PositionRecord
		var dt, rt int64
		var src string
		var fix sql.NullInt64
		var speed, heading, alt sql.NullFloat64
		if err := rows.Scan(&p.DeviceID, &p.MsgID, &dt, &rt, &src, &p.Late, &p.Lat, &p.Lon, &p.AccuracyM, &speed, &heading, &alt, &fix); err != nil {
			return nil, fmt.Errorf("positions of %s: %w", deviceID, err)
		}
		p.DeviceTime, p.ReceivedAt, p.Source = time.Unix(0, dt).UTC(), time.Unix(0, rt).UTC(), event.Source(src)
		p.SpeedMPS, p.HeadingDeg, p.AltitudeM = floatPtr(speed), floatPtr(heading), floatPtr(alt)
		p.FixTime = fromNanos(fix)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("positions of %s: %w", deviceID, err)
	}
	return out, nil
}

// --- meta -----------------------------------------------------------------

// GetMeta returns a named value or ErrNotFound.
func (s *Store) GetMeta(ctx context.Context, key string) (string, error) {
	var v string
	err := s.r.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("get meta %s: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("get meta %s: %w", key, err)
	}
	return v, nil
}

// PutMeta sets a named value.
func (s *Store) PutMeta(ctx context.Context, key, value string) error {
	if _, err := s.w.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value); err != nil {
		return fmt.Errorf("put meta %s: %w", key, err)
	}
	return nil
}

// PutMetas writes kvs in one transaction (one fsync).
func (s *Store) PutMetas(ctx context.Context, kvs map[string]string) error {
	if len(kvs) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("put meta: %w", err)
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`)
	if err != nil {
		return fmt.Errorf("put meta: %w", err)
	}
	defer st.Close()
	for k, v := range kvs {
		if _, err := st.ExecContext(ctx, k, v); err != nil {
			return fmt.Errorf("put meta %s: %w", k, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("put meta: commit: %w", err)
	}
	return nil
}

// DeleteMeta deletes a named value; an unknown key is ErrNotFound, so that
// exactly one of several concurrent deleters succeeds (one-time tokens).
func (s *Store) DeleteMeta(ctx context.Context, key string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM meta WHERE key = ?`, key)
	if err != nil {
		return fmt.Errorf("delete meta %s: %w", key, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete meta %s: %w", key, err)
	} else if n == 0 {
		return fmt.Errorf("delete meta %s: %w", key, store.ErrNotFound)
	}
	return nil
}
