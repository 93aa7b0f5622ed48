// Package sqlite implements store.Store on a SQLite file (modernc.org/sqlite,
// pure Go) for single-node deployments.
//
// Durability: WAL with synchronous=FULL, so every commit is fsynced. All
// writes go through one connection (SQLite has one writer anyway; holding
// it in-process serialises writers without SQLITE_BUSY retries), reads use
// a separate pool of query-only connections. Times are stored as INTEGER
// Unix nanoseconds in UTC, NULL for the zero time.
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

	// ApplyEvents' statements, prepared once on the writer.
	getOrg, insEvent, insPos, updSeen, updPos, updBat *sql.Stmt
}

const (
	qGetOrg   = `SELECT org_id FROM devices WHERE id = ?`
	qInsEvent = `INSERT INTO events
		(org_id, device_id, msg_id, type, device_time, received_at, source, late, body)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, msg_id) DO NOTHING`
	qInsPos = `INSERT INTO positions
		(device_id, msg_id, device_time, late, lat, lon, accuracy_m, speed, heading, altitude, fix_time)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`
	qUpdSeen = `UPDATE devices SET event_count = event_count + ?,
		last_seen = max(coalesce(last_seen, ?), ?) WHERE id = ?`
	qUpdPos = `UPDATE devices SET last_lat = ?, last_lon = ?, last_accuracy_m = ?,
		last_speed = ?, last_heading = ?, last_altitude = ?, last_fix_time = ?, position_time = ?
		WHERE id = ? AND (position_time IS NULL OR position_time < ?)`
	qUpdBat = `UPDATE devices SET battery = ?, charging = ?, battery_time = ?
		WHERE id = ? AND (battery_time IS NULL OR battery_time < ?)`
)

func (s *Store) prepare(ctx context.Context) error {
	for _, p := range []struct {
		dst **sql.Stmt
		q   string
	}{
		{&s.getOrg, qGetOrg}, {&s.insEvent, qInsEvent}, {&s.insPos, qInsPos},
		{&s.updSeen, qUpdSeen}, {&s.updPos, qUpdPos}, {&s.updBat, qUpdBat},
	} {
		st, err := s.w.PrepareContext(ctx, p.q)
		if err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
		*p.dst = st
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
	for _, st := range []*sql.Stmt{s.getOrg, s.insEvent, s.insPos, s.updSeen, s.updPos, s.updBat} {
		if st != nil {
			errs = append(errs, st.Close())
		}
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

func nullFloat(p *float64) sql.NullFloat64 {
	if p == nil {
		return sql.NullFloat64{}
	}
	return sql.NullFloat64{Float64: *p, Valid: true}
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
	_, err := s.w.ExecContext(ctx, `INSERT INTO orgs (id, name, created_at) VALUES (?, ?, ?)`,
		o.ID, o.Name, nanos(orNow(o.CreatedAt)))
	if err != nil {
		return fmt.Errorf("create org %s: %w", o.ID, classify(err))
	}
	return nil
}

// GetOrg returns an organisation or ErrNotFound.
func (s *Store) GetOrg(ctx context.Context, id string) (store.Org, error) {
	var o store.Org
	var at sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT id, name, created_at FROM orgs WHERE id = ?`, id).Scan(&o.ID, &o.Name, &at)
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
	rows, err := s.r.QueryContext(ctx, `SELECT id, name, created_at FROM orgs ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list orgs: %w", err)
	}
	defer rows.Close()
	var out []store.Org
	for rows.Next() {
		var o store.Org
		var at sql.NullInt64
		if err := rows.Scan(&o.ID, &o.Name, &at); err != nil {
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
	_, err := s.w.ExecContext(ctx, `INSERT INTO people (id, org_id, kind, name, created_at) VALUES (?, ?, ?, ?, ?)`,
		p.ID, p.OrgID, string(p.Kind), p.Name, nanos(orNow(p.CreatedAt)))
	if err != nil {
		return fmt.Errorf("create person %s: %w", p.ID, classify(err))
	}
	return nil
}

// GetPerson returns a person or ErrNotFound.
func (s *Store) GetPerson(ctx context.Context, id string) (store.Person, error) {
	var p store.Person
	var at sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT id, org_id, kind, name, created_at FROM people WHERE id = ?`, id).
		Scan(&p.ID, &p.OrgID, &p.Kind, &p.Name, &at)
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
	rows, err := s.r.QueryContext(ctx, `SELECT id, org_id, kind, name, created_at FROM people WHERE org_id = ? ORDER BY id`, orgID)
	if err != nil {
		return nil, fmt.Errorf("list people of %s: %w", orgID, err)
	}
	defer rows.Close()
	var out []store.Person
	for rows.Next() {
		var p store.Person
		var at sql.NullInt64
		if err := rows.Scan(&p.ID, &p.OrgID, &p.Kind, &p.Name, &at); err != nil {
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
	position_time, battery, charging, battery_time, event_count`

type scanner interface{ Scan(dest ...any) error }

func scanDevice(sc scanner) (store.Device, error) {
	var d store.Device
	var person sql.NullString
	var created, disabled, seen, fix, posTime, batTime sql.NullInt64
	var lat, lon, acc, speed, heading, alt sql.NullFloat64
	var battery sql.NullInt64
	err := sc.Scan(&d.ID, &d.OrgID, &d.Name, &person, &d.SecretHash, &d.CertFingerprint, &d.Firmware, &created, &disabled,
		&seen, &lat, &lon, &acc, &speed, &heading, &alt, &fix,
		&posTime, &battery, &d.State.Charging, &batTime, &d.State.Events)
	if err != nil {
		return store.Device{}, err
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

// --- events ---------------------------------------------------------------

// ApplyEvents projects a batch in one transaction; see store.Store.
func (s *Store) ApplyEvents(ctx context.Context, evs []event.Event) (int, error) {
	if len(evs) == 0 {
		return 0, nil
	}
	uniq, devices := batch.Unique(evs)
	bodies := make([]string, len(uniq))
	for i, e := range uniq {
		b, err := event.Marshal(e)
		if err != nil {
			return 0, fmt.Errorf("apply events: %w", err)
		}
		bodies[i] = string(b)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("apply events: %w", err)
	}
	defer tx.Rollback()

	orgOf := make(map[string]string, len(devices))
	get := tx.StmtContext(ctx, s.getOrg)
	for _, id := range devices {
		var org string
		err := get.QueryRowContext(ctx, id).Scan(&org)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, fmt.Errorf("apply events: device %s: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return 0, fmt.Errorf("apply events: %w", err)
		}
		orgOf[id] = org
	}
	for _, e := range uniq {
		if orgOf[e.DeviceID] != e.OrgID {
			return 0, fmt.Errorf("apply events: device %s in org %s: %w", e.DeviceID, e.OrgID, store.ErrNotFound)
		}
	}

	insEv, insPos := tx.StmtContext(ctx, s.insEvent), tx.StmtContext(ctx, s.insPos)
	inserted := make([]*event.Event, 0, len(uniq))
	for i, e := range uniq {
		res, err := insEv.ExecContext(ctx, e.OrgID, e.DeviceID, e.MsgID, string(e.Type), e.DeviceTime.UnixNano(),
			e.ReceivedAt.UnixNano(), string(e.Source), e.Late, bodies[i])
		if err != nil {
			return 0, fmt.Errorf("apply events: insert %s: %w", e.Key(), err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			continue // already stored
		}
		inserted = append(inserted, e)
		p := e.Position
		if p == nil {
			continue
		}
		if _, err := insPos.ExecContext(ctx, e.DeviceID, e.MsgID, e.DeviceTime.UnixNano(), e.Late, p.Lat, p.Lon, p.AccuracyM,
			nullFloat(p.SpeedMPS), nullFloat(p.HeadingDeg), nullFloat(p.AltitudeM), nanos(p.FixTime)); err != nil {
			return 0, fmt.Errorf("apply events: insert position %s: %w", e.Key(), err)
		}
	}

	updSeen, updPos, updBat := tx.StmtContext(ctx, s.updSeen), tx.StmtContext(ctx, s.updPos), tx.StmtContext(ctx, s.updBat)
	for _, d := range batch.Deltas(inserted) {
		if _, err := updSeen.ExecContext(ctx, d.Count, d.LastSeen.UnixNano(), d.LastSeen.UnixNano(), d.DeviceID); err != nil {
			return 0, fmt.Errorf("apply events: device %s: %w", d.DeviceID, err)
		}
		if p := d.Position; p != nil {
			pt := d.PositionTime.UnixNano()
			if _, err := updPos.ExecContext(ctx, p.Lat, p.Lon, p.AccuracyM, nullFloat(p.SpeedMPS), nullFloat(p.HeadingDeg), nullFloat(p.AltitudeM),
				nanos(p.FixTime), pt, d.DeviceID, pt); err != nil {
				return 0, fmt.Errorf("apply events: device %s position: %w", d.DeviceID, err)
			}
		}
		if b := d.Battery; b != nil {
			bt := d.BatteryTime.UnixNano()
			if _, err := updBat.ExecContext(ctx, b.Percent, b.Charging, bt, d.DeviceID, bt); err != nil {
				return 0, fmt.Errorf("apply events: device %s battery: %w", d.DeviceID, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("apply events: commit: %w", err)
	}
	return len(inserted), nil
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

// ListEvents lists stored events newest (highest seq) first.
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
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE device_id = ? AND msg_id = ?`, deviceID, msgID).Scan(&n)
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
	rows, err := s.r.QueryContext(ctx, `SELECT device_id, msg_id, device_time, late, lat, lon, accuracy_m, speed, heading, altitude, fix_time
		FROM positions WHERE device_id = ? AND device_time >= ? AND device_time < ? ORDER BY device_time, msg_id`,
		deviceID, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("positions of %s: %w", deviceID, err)
	}
	defer rows.Close()
	var out []store.PositionRecord
	for rows.Next() {
		var p store.PositionRecord
		var dt int64
		var fix sql.NullInt64
		var speed, heading, alt sql.NullFloat64
		if err := rows.Scan(&p.DeviceID, &p.MsgID, &dt, &p.Late, &p.Lat, &p.Lon, &p.AccuracyM, &speed, &heading, &alt, &fix); err != nil {
			return nil, fmt.Errorf("positions of %s: %w", deviceID, err)
		}
		p.DeviceTime = time.Unix(0, dt).UTC()
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
