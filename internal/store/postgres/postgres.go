// Package postgres implements store.Store on PostgreSQL with pgx/v5 and a
// pgxpool, for deployments with more than one node or more than one
// writer.
//
// ApplyEvents first takes advisory locks on the batch's devices, in key
// order, so that concurrent batches touching the same devices serialise
// instead of deadlocking. Its fast path assumes the batch is all new and
// its devices valid: it inserts events (unnest of arrays, or COPY for a
// large batch) and positions without ON CONFLICT and checks the devices in
// SQL, all before one COMMIT; a stored key or a bad device aborts that
// transaction, and the general path runs instead: events in one statement
// (unnest of arrays; COPY into a per-connection temporary table is an
// option) with ON CONFLICT DO NOTHING RETURNING, and only the returned,
// new events reach positions and device state. Position reports (events of
// type position, nearly all the traffic) are kept only in positions, keyed
// by (device_id, device_time, msg_id); their general-path insert returns
// the new keys the same way.
//
// Options.Schema puts every table in one schema (created if missing) by
// setting search_path on each pooled connection; tests use a fresh schema
// each.
//
// It imports internal/store, its migrate and batch helpers, internal/event
// and pgx; only internal/app and cmd import this package.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"vigil/internal/event"
	"vigil/internal/store"
	"vigil/internal/store/internal/batch"
	"vigil/internal/store/migrate"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Migrations returns the embedded migrations of this dialect.
func Migrations() ([]migrate.Migration, error) { return migrate.Load(migrationFS, "migrations") }

// Options tune Open. The zero value opens an existing, current database in
// the connection's default search_path.
type Options struct {
	// AutoMigrate applies pending migrations before checking the schema.
	AutoMigrate bool
	// Schema is the PostgreSQL schema holding Vigil's tables, created if
	// missing; "" uses the server's default search_path. Lower-case
	// letters, digits and underscores only.
	Schema string
	// MaxConns is the pool size; 0 takes pgxpool's default.
	MaxConns int32
	// CopyThreshold is the batch size from which ApplyEvents's general
	// path (taken when the fast path finds a stored event or a bad
	// device) stages events with COPY into a temporary table instead of
	// one INSERT of arrays;
	// 0 or a negative value never uses COPY (the default: it measured
	// slower).
	CopyThreshold int
}

// defaultCopyThreshold: the INSERT of arrays beat COPY staging at every
// batch size measured (1 to 1000, see internal/store/BENCHMARKS.txt), so
// COPY is off unless asked for.
const defaultCopyThreshold = 1 << 30

// Store is the PostgreSQL store. It is safe for concurrent use.
type Store struct {
	pool          *pgxpool.Pool
	copyThreshold int
	copyNew       int // batch size from which applyNew uses COPY
}

var _ store.Store = (*Store)(nil)

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func connect(ctx context.Context, url string, opts Options) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message may echo the URL and its password.
		return nil, errors.New("parse database url: malformed")
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if opts.Schema != "" {
		if !schemaName.MatchString(opts.Schema) {
			return nil, errors.New("schema name: want lower-case letters, digits and _")
		}
		cfg.ConnConfig.RuntimeParams["search_path"] = opts.Schema
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if opts.Schema != "" {
		if _, err := pool.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{opts.Schema}.Sanitize()); err != nil {
			var pe *pgconn.PgError
			// Concurrent creators race on the catalog; the loser's schema exists.
			if !errors.As(err, &pe) || pe.Code != "23505" {
				pool.Close()
				return nil, fmt.Errorf("create schema: %w", err)
			}
		}
	}
	return pool, nil
}

// Open connects to the database at url. With AutoMigrate false it refuses a
// schema that is not exactly current, with an error wrapping
// store.ErrSchemaOlder, ErrSchemaNewer or ErrSchemaDrift.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	pool, err := connect(ctx, url, opts)
	if err != nil {
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	ms, err := Migrations()
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	d := driver{pool: pool}
	if opts.AutoMigrate {
		if _, err := migrate.Up(ctx, d, ms); err != nil {
			pool.Close()
			return nil, fmt.Errorf("open postgres store: %w", err)
		}
	}
	if err := migrate.Check(ctx, d, ms); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	s := &Store{pool: pool, copyThreshold: opts.CopyThreshold, copyNew: copyNewThreshold}
	if s.copyThreshold <= 0 {
		s.copyThreshold = defaultCopyThreshold
	}
	return s, nil
}

// Migrate applies pending migrations (in schema, "" for the default
// search_path) and returns the versions it applied.
func Migrate(ctx context.Context, url, schema string) ([]int, error) {
	pool, err := connect(ctx, url, Options{Schema: schema, MaxConns: 2})
	if err != nil {
		return nil, fmt.Errorf("migrate postgres: %w", err)
	}
	defer pool.Close()
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	return migrate.Up(ctx, driver{pool: pool}, ms)
}

// Status reports the schema version of the database against the binary's.
func Status(ctx context.Context, url, schema string) (migrate.Status, error) {
	pool, err := connect(ctx, url, Options{Schema: schema, MaxConns: 2})
	if err != nil {
		return migrate.Status{}, fmt.Errorf("postgres schema status: %w", err)
	}
	defer pool.Close()
	ms, err := Migrations()
	if err != nil {
		return migrate.Status{}, err
	}
	return migrate.GetStatus(ctx, driver{pool: pool}, ms)
}

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", err)
	}
	return nil
}

// --- migrate.Driver -------------------------------------------------------

type driver struct{ pool *pgxpool.Pool }

func (d driver) Applied(ctx context.Context) ([]migrate.Record, error) { return appliedIn(ctx, d.pool) }

func (d driver) Apply(ctx context.Context, m migrate.Migration) (bool, error) {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer tx.Rollback(ctx)
	done, err := applyIn(ctx, tx, m)
	if err != nil || !done {
		return false, err
	}
	return true, tx.Commit(ctx)
}

// appliedIn reads the applied migrations (none before the first).
func appliedIn(ctx context.Context, q querier) ([]migrate.Record, error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	if !exists {
		return nil, nil
	}
	rows, err := q.Query(ctx, `SELECT version, checksum, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	recs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (migrate.Record, error) {
		var rec migrate.Record
		err := r.Scan(&rec.Version, &rec.Checksum, &rec.AppliedAt)
		rec.AppliedAt = rec.AppliedAt.UTC()
		return rec, err
	})
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	return recs, nil
}

// applyIn applies m inside tx, unless another migrator already did: false
// then. The caller commits.
func applyIn(ctx context.Context, tx pgx.Tx, m migrate.Migration) (bool, error) {
	// One migrator per schema at a time, across processes.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('vigil.migrate.' || current_schema()))`); err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		checksum   text NOT NULL,
		applied_at timestamptz NOT NULL
	)`); err != nil {
		return false, err
	}
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM schema_migrations WHERE version = $1`, m.Version).Scan(&n); err != nil {
		return false, err
	}
	if n > 0 {
		return false, nil
	}
	// No arguments: the simple protocol, which runs several statements.
	if _, err := tx.Exec(ctx, m.SQL); err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, checksum, applied_at) VALUES ($1, $2, now())`,
		m.Version, m.Checksum); err != nil {
		return false, err
	}
	return true, nil
}

// --- encoding -------------------------------------------------------------

func ts(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}

func fromTS(t pgtype.Timestamptz) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

func f8(p *float64) pgtype.Float8 {
	if p == nil {
		return pgtype.Float8{}
	}
	return pgtype.Float8{Float64: *p, Valid: true}
}

func fromF8(f pgtype.Float8) *float64 {
	if !f.Valid {
		return nil
	}
	v := f.Float64
	return &v
}

func text(s string) pgtype.Text { return pgtype.Text{String: s, Valid: s != ""} }

func nullBytes(b []byte) []byte {
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
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			return store.ErrConflict
		case "23503": // foreign_key_violation
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
	_, err := s.pool.Exec(ctx, `INSERT INTO orgs (id, name, created_at, location_policy, require_webauthn) VALUES ($1, $2, $3, $4, $5)`,
		o.ID, o.Name, orNow(o.CreatedAt), string(policy), o.RequireWebAuthn)
	if err != nil {
		return fmt.Errorf("create org %s: %w", o.ID, classify(err))
	}
	return nil
}

// GetOrg returns an organisation or ErrNotFound.
func (s *Store) GetOrg(ctx context.Context, id string) (store.Org, error) {
	var o store.Org
	err := s.pool.QueryRow(ctx, `SELECT id, name, created_at, location_policy, require_webauthn FROM orgs WHERE id = $1`, id).
		Scan(&o.ID, &o.Name, &o.CreatedAt, &o.LocationPolicy, &o.RequireWebAuthn)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Org{}, fmt.Errorf("get org %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Org{}, fmt.Errorf("get org %s: %w", id, err)
	}
	o.CreatedAt = o.CreatedAt.UTC()
	return o, nil
}

// ListOrgs lists organisations by id.
func (s *Store) ListOrgs(ctx context.Context) ([]store.Org, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, name, created_at, location_policy, require_webauthn FROM orgs ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list orgs: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Org, error) {
		var o store.Org
		err := r.Scan(&o.ID, &o.Name, &o.CreatedAt, &o.LocationPolicy, &o.RequireWebAuthn)
		o.CreatedAt = o.CreatedAt.UTC()
		return o, err
	})
	if err != nil {
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
	_, err := s.pool.Exec(ctx, `INSERT INTO people (id, org_id, kind, name, created_at, fall_sensitivity, fall_cancel_window_ns)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		p.ID, p.OrgID, string(p.Kind), p.Name, orNow(p.CreatedAt), p.FallSensitivity, int64(p.FallCancelWindow))
	if err != nil {
		return fmt.Errorf("create person %s: %w", p.ID, classify(err))
	}
	return nil
}

func scanPerson(r pgx.CollectableRow) (store.Person, error) {
	var p store.Person
	var kind string
	var window int64
	err := r.Scan(&p.ID, &p.OrgID, &kind, &p.Name, &p.CreatedAt, &p.FallSensitivity, &p.DuressCodeHash, &window)
	p.FallCancelWindow = time.Duration(window)
	p.Kind = store.PersonKind(kind)
	p.CreatedAt = p.CreatedAt.UTC()
	return p, err
}

// GetPerson returns a person or ErrNotFound.
func (s *Store) GetPerson(ctx context.Context, id string) (store.Person, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, org_id, kind, name, created_at, fall_sensitivity, duress_code_hash, fall_cancel_window_ns FROM people WHERE id = $1`, id)
	if err != nil {
		return store.Person{}, fmt.Errorf("get person %s: %w", id, err)
	}
	p, err := pgx.CollectExactlyOneRow(rows, scanPerson)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Person{}, fmt.Errorf("get person %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Person{}, fmt.Errorf("get person %s: %w", id, err)
	}
	return p, nil
}

// SetFallSensitivity sets a person's fall-detector sensitivity.
func (s *Store) SetFallSensitivity(ctx context.Context, personID string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("set fall sensitivity of %s: must be a finite number", personID)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE people SET fall_sensitivity = $1 WHERE id = $2`, v, personID)
	if err != nil {
		return fmt.Errorf("set fall sensitivity of %s: %w", personID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("set fall sensitivity of %s: %w", personID, store.ErrNotFound)
	}
	return nil
}

// SetFallCancelWindow sets a person's fall cancel window (0: the default).
func (s *Store) SetFallCancelWindow(ctx context.Context, personID string, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("set fall cancel window of %s: must not be negative", personID)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE people SET fall_cancel_window_ns = $1 WHERE id = $2`, int64(d), personID)
	if err != nil {
		return fmt.Errorf("set fall cancel window of %s: %w", personID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("set fall cancel window of %s: %w", personID, store.ErrNotFound)
	}
	return nil
}

// ListPeople lists an organisation's people by id.
func (s *Store) ListPeople(ctx context.Context, orgID string) ([]store.Person, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, org_id, kind, name, created_at, fall_sensitivity, duress_code_hash, fall_cancel_window_ns FROM people WHERE org_id = $1 ORDER BY id`, orgID)
	if err != nil {
		return nil, fmt.Errorf("list people of %s: %w", orgID, err)
	}
	out, err := pgx.CollectRows(rows, scanPerson)
	if err != nil {
		return nil, fmt.Errorf("list people of %s: %w", orgID, err)
	}
	return out, nil
}

// CreateDevice inserts a device. An unknown org, or a person that is not in
// the device's org, is ErrNotFound; an existing id ErrConflict. State is
// ignored: it comes from events.
func (s *Store) CreateDevice(ctx context.Context, d store.Device) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO devices
		(id, org_id, name, person_id, secret_hash, cert_fingerprint, firmware, created_at, disabled_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		d.ID, d.OrgID, d.Name, text(d.PersonID), nullBytes(d.SecretHash), d.CertFingerprint, d.Firmware,
		orNow(d.CreatedAt), ts(d.DisabledAt))
	if err != nil {
		return fmt.Errorf("create device %s: %w", d.ID, classify(err))
	}
	return nil
}

const deviceCols = `id, org_id, name, person_id, secret_hash, cert_fingerprint, firmware, created_at, disabled_at,
	last_seen, last_lat, last_lon, last_accuracy_m, last_speed, last_heading, last_altitude, last_fix_time,
	position_time, battery, charging, battery_time, event_count, quarantined_at, quarantine_reason`

func scanDevice(r pgx.CollectableRow) (store.Device, error) {
	var d store.Device
	var person pgtype.Text
	var created time.Time
	var disabled, seen, fix, posTime, batTime, quarantined pgtype.Timestamptz
	var lat, lon, acc, speed, heading, alt pgtype.Float8
	var battery pgtype.Int4
	err := r.Scan(&d.ID, &d.OrgID, &d.Name, &person, &d.SecretHash, &d.CertFingerprint, &d.Firmware, &created, &disabled,
		&seen, &lat, &lon, &acc, &speed, &heading, &alt, &fix,
		&posTime, &battery, &d.State.Charging, &batTime, &d.State.Events, &quarantined, &d.Quarantine.Reason)
	if err != nil {
		return store.Device{}, err
	}
	d.Quarantine.At = fromTS(quarantined)
	d.PersonID = person.String
	d.CreatedAt = created.UTC()
	d.DisabledAt = fromTS(disabled)
	d.State.LastSeen = fromTS(seen)
	if lat.Valid && lon.Valid {
		d.State.LastPosition = &event.Position{
			Lat: lat.Float64, Lon: lon.Float64, AccuracyM: acc.Float64,
			SpeedMPS: fromF8(speed), HeadingDeg: fromF8(heading), AltitudeM: fromF8(alt),
			FixTime: fromTS(fix),
		}
		d.State.PositionTime = fromTS(posTime)
	}
	if battery.Valid {
		b := int(battery.Int32)
		d.State.Battery = &b
		d.State.BatteryTime = fromTS(batTime)
	}
	return d, nil
}

// GetDevice returns a device with its state, or ErrNotFound.
func (s *Store) GetDevice(ctx context.Context, id string) (store.Device, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+deviceCols+` FROM devices WHERE id = $1`, id)
	if err != nil {
		return store.Device{}, fmt.Errorf("get device %s: %w", id, err)
	}
	d, err := pgx.CollectExactlyOneRow(rows, scanDevice)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Device{}, fmt.Errorf("get device %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Device{}, fmt.Errorf("get device %s: %w", id, err)
	}
	return d, nil
}

// ListDevices lists devices by id, of one organisation or ("") all.
func (s *Store) ListDevices(ctx context.Context, orgID string) ([]store.Device, error) {
	q, args := `SELECT `+deviceCols+` FROM devices ORDER BY id`, []any(nil)
	if orgID != "" {
		q, args = `SELECT `+deviceCols+` FROM devices WHERE org_id = $1 ORDER BY id`, []any{orgID}
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanDevice)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	return out, nil
}

func (s *Store) updateDevice(ctx context.Context, op, id, q string, args ...any) error {
	tag, err := s.pool.Exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, id, classify(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s %s: %w", op, id, store.ErrNotFound)
	}
	return nil
}

// AssignDevice assigns a device to a person of its organisation, or
// unassigns it (personID ""). An unknown device, or a person not in the
// device's organisation, is ErrNotFound.
func (s *Store) AssignDevice(ctx context.Context, deviceID, personID string) error {
	return s.updateDevice(ctx, "assign device", deviceID, `UPDATE devices SET person_id = $1 WHERE id = $2`,
		text(personID), deviceID)
}

// SetDeviceSecret replaces a device's secret hash.
func (s *Store) SetDeviceSecret(ctx context.Context, deviceID string, secretHash []byte) error {
	return s.updateDevice(ctx, "set device secret", deviceID, `UPDATE devices SET secret_hash = $1 WHERE id = $2`,
		nullBytes(secretHash), deviceID)
}

// DisableDevice marks a device disabled at the given time; disabling a
// disabled device keeps the first time.
func (s *Store) DisableDevice(ctx context.Context, deviceID string, at time.Time) error {
	return s.updateDevice(ctx, "disable device", deviceID,
		`UPDATE devices SET disabled_at = coalesce(disabled_at, $1) WHERE id = $2`, orNow(at), deviceID)
}

// QuarantineDevice flags a device; see store.Store.
func (s *Store) QuarantineDevice(ctx context.Context, deviceID, reason string, at time.Time) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE devices SET quarantined_at = $1, quarantine_reason = $2 WHERE id = $3 AND quarantined_at IS NULL`,
		orNow(at), reason, deviceID)
	if err != nil {
		return false, fmt.Errorf("quarantine device %s: %w", deviceID, err)
	}
	if tag.RowsAffected() == 1 {
		return true, nil
	}
	if _, err := s.GetDevice(ctx, deviceID); err != nil {
		return false, fmt.Errorf("quarantine device: %w", err)
	}
	return false, nil
}

// ReleaseDevice clears a device's quarantine flag; see store.Store.
func (s *Store) ReleaseDevice(ctx context.Context, deviceID string) error {
	return s.updateDevice(ctx, "release device", deviceID, `UPDATE devices SET quarantined_at = NULL, quarantine_reason = '' WHERE id = $1`, deviceID)
}

// ListRevokedDevices lists devices disabled at or after since; see
// store.Store.
func (s *Store) ListRevokedDevices(ctx context.Context, since time.Time) ([]store.RevokedDevice, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, org_id, coalesce(cert_fingerprint, ''), disabled_at FROM devices
		WHERE disabled_at IS NOT NULL AND disabled_at >= $1 ORDER BY disabled_at, id`, since)
	if err != nil {
		return nil, fmt.Errorf("list revoked devices: %w", err)
	}
	defer rows.Close()
	var out []store.RevokedDevice
	for rows.Next() {
		var d store.RevokedDevice
		if err := rows.Scan(&d.ID, &d.OrgID, &d.CertFingerprint, &d.DisabledAt); err != nil {
			return nil, fmt.Errorf("list revoked devices: %w", err)
		}
		d.DisabledAt = d.DisabledAt.UTC()
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list revoked devices: %w", err)
	}
	return out, nil
}

// --- events ---------------------------------------------------------------

const insertEventsUnnest = `INSERT INTO events
	(org_id, device_id, msg_id, type, device_time, received_at, source, late, body)
	SELECT org_id, device_id, msg_id, type, device_time, received_at, source, late, body::json
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[],
		$7::text[], $8::bool[], $9::text[])
		AS u(org_id, device_id, msg_id, type, device_time, received_at, source, late, body)
	ON CONFLICT (device_id, msg_id) DO NOTHING
	RETURNING device_id, msg_id`

const stageTable = `CREATE TEMP TABLE IF NOT EXISTS vigil_events_stage (
	ord         integer NOT NULL,
	org_id      text NOT NULL,
	device_id   text NOT NULL,
	msg_id      text NOT NULL,
	type        text NOT NULL,
	device_time timestamptz NOT NULL,
	received_at timestamptz NOT NULL,
	source      text NOT NULL,
	late        boolean NOT NULL,
	body        text NOT NULL
) ON COMMIT DELETE ROWS`

var stageCols = []string{"ord", "org_id", "device_id", "msg_id", "type", "device_time", "received_at", "source", "late", "body"}

const insertEventsStaged = `INSERT INTO events
	(org_id, device_id, msg_id, type, device_time, received_at, source, late, body)
	SELECT org_id, device_id, msg_id, type, device_time, received_at, source, late, body::json
	FROM vigil_events_stage ORDER BY ord
	ON CONFLICT (device_id, msg_id) DO NOTHING
	RETURNING device_id, msg_id`

const insertPositions = `INSERT INTO positions
	(device_id, device_time, msg_id, received_at, source, late, lat, lon, accuracy_m, speed, heading, altitude, fix_time)
	SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::timestamptz[], $5::text[], $6::bool[],
		$7::float8[], $8::float8[], $9::float8[], $10::float8[], $11::float8[], $12::float8[], $13::timestamptz[])
	ON CONFLICT DO NOTHING`

// insertReports is insertPositions for position reports, which are kept
// only in positions: it returns the keys it inserted.
const insertReports = insertPositions + `
	RETURNING device_id, msg_id`

// insertPositionsNew is insertPositions for applyNew, whose events are all
// new: their keys cannot be in positions, so no ON CONFLICT.
const insertPositionsNew = `INSERT INTO positions
	(device_id, device_time, msg_id, received_at, source, late, lat, lon, accuracy_m, speed, heading, altitude, fix_time)
	SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::timestamptz[], $5::text[], $6::bool[],
		$7::float8[], $8::float8[], $9::float8[], $10::float8[], $11::float8[], $12::float8[], $13::timestamptz[])`

// updateDevices advances device state in one statement, so each device
// gets one new row version per batch: counters always, position and
// battery only when the batch's are strictly newer by device time.
const updateDevices = `UPDATE devices d SET
	event_count = d.event_count + u.n,
	last_seen = greatest(d.last_seen, u.seen),
	last_lat        = CASE WHEN ` + newPos + ` THEN u.lat ELSE d.last_lat END,
	last_lon        = CASE WHEN ` + newPos + ` THEN u.lon ELSE d.last_lon END,
	last_accuracy_m = CASE WHEN ` + newPos + ` THEN u.acc ELSE d.last_accuracy_m END,
	last_speed      = CASE WHEN ` + newPos + ` THEN u.speed ELSE d.last_speed END,
	last_heading    = CASE WHEN ` + newPos + ` THEN u.heading ELSE d.last_heading END,
	last_altitude   = CASE WHEN ` + newPos + ` THEN u.alt ELSE d.last_altitude END,
	last_fix_time   = CASE WHEN ` + newPos + ` THEN u.fix ELSE d.last_fix_time END,
	position_time   = CASE WHEN ` + newPos + ` THEN u.pt ELSE d.position_time END,
	battery         = CASE WHEN ` + newBat + ` THEN u.pct ELSE d.battery END,
	charging        = CASE WHEN ` + newBat + ` THEN u.charging ELSE d.charging END,
	battery_time    = CASE WHEN ` + newBat + ` THEN u.bt ELSE d.battery_time END
	FROM unnest($1::text[], $2::bigint[], $3::timestamptz[],
		$4::float8[], $5::float8[], $6::float8[], $7::float8[], $8::float8[], $9::float8[], $10::timestamptz[], $11::timestamptz[],
		$12::int[], $13::bool[], $14::timestamptz[])
		AS u(id, n, seen, lat, lon, acc, speed, heading, alt, fix, pt, pct, charging, bt)
	WHERE d.id = u.id`

// newPos and newBat say whether the batch's position or battery is
// strictly newer than the stored one (a NULL comparison counts as not
// newer). SET expressions all read the row's old values, so the stored
// times need no self-join.
const (
	newPos = `(u.pt > d.position_time OR (u.pt IS NOT NULL AND d.position_time IS NULL))`
	newBat = `(u.bt > d.battery_time OR (u.bt IS NOT NULL AND d.battery_time IS NULL))`
)

// lockDevices takes transaction-scoped advisory locks on the batch's
// devices, in key order. Devices hash into 256 buckets so that a batch
// holds at most 256 entries of the server's shared lock table
// (max_locks_per_transaction); two devices in one bucket only serialise
// their batches. 1986489444 is "vgld", the class of device locks.
const lockDevices = `SELECT count(pg_advisory_xact_lock(1986489444, k))
	FROM (SELECT DISTINCT hashtext(id) & 255 AS k FROM unnest($1::text[]) AS id ORDER BY k) AS keys`

// ApplyEvents projects a batch in one transaction; see store.Store.
//
// The fast path (applyNew) takes one round trip plus the commit's fsync
// for a batch below copyNewThreshold, and a COPY between two pipelines
// from it. When it falls back, the general path (applyEvents) takes two
// round trips: BEGIN, the device lock, the device query and the insert
// are pipelined, then positions, device state and COMMIT. A batch that
// repeats stored events so pays for the fast path's aborted attempt too.
func (s *Store) ApplyEvents(ctx context.Context, evs []event.Event) (int, error) {
	if len(evs) == 0 {
		return 0, nil
	}
	uniq, devices := batch.Unique(evs)
	logEvs, reports := batch.Split(uniq)
	bodies := make([]string, len(logEvs))
	for i, e := range logEvs {
		b, err := event.Marshal(e)
		if err != nil {
			return 0, fmt.Errorf("apply events: %w", err)
		}
		bodies[i] = string(b)
	}
	p := parts{uniq: uniq, log: logEvs, reports: reports, devices: devices, bodies: bodies}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("apply events: %w", err)
	}
	// pgxpool destroys a connection released inside a transaction, so an
	// error path that cannot roll back leaks nothing.
	defer conn.Release()
	n, err := s.applyNew(ctx, conn.Conn(), p)
	if errors.Is(err, errFallback) {
		// A key already stored or a device check that failed: the
		// transaction is rolled back; the general path below finds out
		// which events are new, or which device is wrong.
		n, err = s.applyEvents(ctx, conn.Conn(), p)
	}
	if err != nil {
		if conn.Conn().PgConn().TxStatus() != 'I' {
			_, _ = conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		}
		return 0, fmt.Errorf("apply events: %w", err)
	}
	return n, nil
}

// parts is a batch as ApplyEvents splits it: the distinct events (uniq),
// those for the event log with their bodies, the position reports, and
// the distinct devices, sorted.
type parts struct {
	uniq, log, reports []*event.Event
	devices, bodies    []string
}

// errFallback reports that applyNew rolled its transaction back and the
// batch must take the general path.
var errFallback = errors.New("fall back to the general path")

// checkNew fails (division by zero, SQLSTATE 22012) unless every
// (device, org) pair of the batch is an existing device of that org; pairs
// are distinct and devices.id is the key, so the join finds one row each.
const checkNew = `SELECT 1 / (count(*) = cardinality($1::text[]))::int
	FROM unnest($1::text[], $2::text[]) AS u(id, org_id)
	JOIN devices d ON d.id = u.id AND d.org_id = u.org_id`

// insertEventsNew is insertEventsUnnest for a batch assumed new: without
// ON CONFLICT (speculative insertion costs a third of the statement), so a
// stored key fails it with a unique violation instead.
const insertEventsNew = `INSERT INTO events
	(org_id, device_id, msg_id, type, device_time, received_at, source, late, body)
	SELECT org_id, device_id, msg_id, type, device_time, received_at, source, late, body::json
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[],
		$7::text[], $8::bool[], $9::text[])
		AS u(org_id, device_id, msg_id, type, device_time, received_at, source, late, body)`

// copyNewThreshold is the batch size from which applyNew writes events
// with COPY straight into events instead of insertEventsNew.
const copyNewThreshold = 200

var eventCols = []string{"org_id", "device_id", "msg_id", "type", "device_time", "received_at", "source", "late", "body"}

// applyNew is the fast path of ApplyEvents, for the common batch whose
// events are all new and whose devices all check out: it writes
// everything without ON CONFLICT, in one pipeline (BEGIN, device locks,
// device check, events, positions, device state, COMMIT) or, for a large
// batch, with a COPY of the events between two pipelines. The same locks
// as the general path serialise overlapping batches. If an event is
// already stored (unique violation) or the device check fails, nothing is
// committed: applyNew rolls back and returns errFallback.
func (s *Store) applyNew(ctx context.Context, conn *pgx.Conn, p parts) (int, error) {
	type pair struct{ dev, org string }
	seen := make(map[pair]struct{}, len(p.devices))
	var pdev, porg []string
	for _, e := range p.uniq {
		k := pair{e.DeviceID, e.OrgID}
		if _, ok := seen[k]; !ok {
			seen[k] = struct{}{}
			pdev, porg = append(pdev, e.DeviceID), append(porg, e.OrgID)
		}
	}
	useCopy := len(p.log) >= s.copyNew
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(lockDevices, p.devices)
	b.Queue(checkNew, pdev, porg)
	if !useCopy {
		if len(p.log) > 0 {
			org, dev, msg, typ, dt, rt, src, late := eventColumns(p.log)
			b.Queue(insertEventsNew, org, dev, msg, typ, dt, rt, src, late, p.bodies)
		}
		queueProjection(b, p.uniq, insertPositionsNew)
	}
	err := conn.SendBatch(ctx, b).Close()
	if err == nil && useCopy {
		_, err = conn.CopyFrom(ctx, pgx.Identifier{"events"}, eventCols,
			pgx.CopyFromSlice(len(p.log), func(i int) ([]any, error) {
				e := p.log[i]
				return []any{e.OrgID, e.DeviceID, e.MsgID, string(e.Type), e.DeviceTime, e.ReceivedAt,
					string(e.Source), e.Late, p.bodies[i]}, nil
			}))
		if err == nil {
			b = &pgx.Batch{}
			queueProjection(b, p.uniq, insertPositionsNew)
			err = conn.SendBatch(ctx, b).Close()
		}
	}
	if err == nil {
		return len(p.uniq), nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "23505" || pe.Code == "22012") && conn.PgConn().TxStatus() != 'I' {
		if _, rerr := conn.Exec(context.WithoutCancel(ctx), "ROLLBACK"); rerr == nil {
			return 0, errFallback
		}
	}
	return 0, err
}

// queueProjection queues the positions and device state of newly inserted
// events, then COMMIT.
func queueProjection(b *pgx.Batch, inserted []*event.Event, positions string) {
	if len(inserted) > 0 {
		queuePositions(b, inserted, positions)
		queueDeltas(b, batch.Deltas(inserted))
	}
	b.Queue("COMMIT")
}

func (s *Store) applyEvents(ctx context.Context, conn *pgx.Conn, p parts) (int, error) {
	staged := len(p.log) >= s.copyThreshold
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	// Serialise batches that share a device before touching any row, so
	// that overlapping batches wait here instead of deadlocking on the
	// unique index or the device rows. Transaction-scoped advisory locks
	// (the two-key space, class lockClassDevice) cost no row writes; they
	// are taken in key order.
	b.Queue(lockDevices, p.devices)
	b.Queue(`SELECT id, org_id FROM devices WHERE id = ANY($1)`, p.devices)
	logInsert := len(p.log) > 0
	switch {
	case !logInsert:
	case staged:
		b.Queue(stageTable)
	default:
		org, dev, msg, typ, dt, rt, src, late := eventColumns(p.log)
		b.Queue(insertEventsUnnest, org, dev, msg, typ, dt, rt, src, late, p.bodies)
	}
	// Position reports, kept only in positions: their insert returns the
	// keys that were new.
	if len(p.reports) > 0 {
		queuePositions(b, p.reports, insertReports)
	}
	br := conn.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return 0, err
	}
	if _, err := br.Exec(); err != nil {
		return 0, fmt.Errorf("lock devices: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		return 0, fmt.Errorf("lock devices: %w", err)
	}
	orgOf := make(map[string]string, len(p.devices))
	var id, org string
	if _, err := pgx.ForEachRow(rows, []any{&id, &org}, func() error { orgOf[id] = org; return nil }); err != nil {
		return 0, fmt.Errorf("lock devices: %w", err)
	}
	// Schema 2 has no FOREIGN KEY from events or positions to devices:
	// this check is what keeps both tables to existing devices of the
	// event's org. The pipelined inserts have already run by now; on a
	// failed check the caller rolls them back, and the positions of log
	// events are only queued after the check.
	for _, e := range p.uniq {
		got, ok := orgOf[e.DeviceID]
		if !ok {
			return 0, fmt.Errorf("device %s: %w", e.DeviceID, store.ErrNotFound)
		}
		if got != e.OrgID {
			return 0, fmt.Errorf("device %s in org %s: %w", e.DeviceID, e.OrgID, store.ErrNotFound)
		}
	}
	type key struct{ dev, msg string }
	collect := func(rows pgx.Rows, into map[key]bool) error {
		var dev, msg string
		_, err := pgx.ForEachRow(rows, []any{&dev, &msg}, func() error { into[key{dev, msg}] = true; return nil })
		return classify(err)
	}
	newLog := make(map[key]bool, len(p.log))
	newReports := make(map[key]bool, len(p.reports))
	if logInsert && !staged {
		if rows, err = br.Query(); err != nil {
			return 0, fmt.Errorf("insert: %w", err)
		}
		if err := collect(rows, newLog); err != nil {
			return 0, fmt.Errorf("insert: %w", err)
		}
	} else if logInsert {
		if _, err := br.Exec(); err != nil {
			return 0, fmt.Errorf("stage: %w", err)
		}
	}
	if len(p.reports) > 0 {
		if rows, err = br.Query(); err != nil {
			return 0, fmt.Errorf("insert positions: %w", err)
		}
		if err := collect(rows, newReports); err != nil {
			return 0, fmt.Errorf("insert positions: %w", err)
		}
	}
	if err := br.Close(); err != nil {
		return 0, err
	}
	if logInsert && staged {
		if rows, err = insertStaged(ctx, conn, p.log, p.bodies); err != nil {
			return 0, fmt.Errorf("insert: %w", err)
		}
		if err := collect(rows, newLog); err != nil {
			return 0, fmt.Errorf("insert: %w", err)
		}
	}
	isNew := make(map[*event.Event]bool, len(p.uniq))
	var logWithPos []*event.Event
	for _, e := range p.log {
		if newLog[key{e.DeviceID, e.MsgID}] {
			isNew[e] = true
			if e.Position != nil {
				logWithPos = append(logWithPos, e)
			}
		}
	}
	for _, e := range p.reports {
		isNew[e] = newReports[key{e.DeviceID, e.MsgID}]
	}
	inserted := batch.Inserted(p.uniq, isNew)

	// The positions of new log events ((device_id, msg_id) stays unique
	// in positions: events' UNIQUE admitted each of these keys once and
	// reports never reach events), device state and COMMIT.
	b = &pgx.Batch{}
	queuePositions(b, logWithPos, insertPositions)
	if len(inserted) > 0 {
		queueDeltas(b, batch.Deltas(inserted))
	}
	b.Queue("COMMIT")
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return 0, fmt.Errorf("project: %w", err)
	}
	return len(inserted), nil
}

func eventColumns(uniq []*event.Event) (org, dev, msg, typ []string, dt, rt []time.Time, src []string, late []bool) {
	n := len(uniq)
	org, dev, msg, typ, src = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	dt, rt, late = make([]time.Time, n), make([]time.Time, n), make([]bool, n)
	for i, e := range uniq {
		org[i], dev[i], msg[i], typ[i] = e.OrgID, e.DeviceID, e.MsgID, string(e.Type)
		dt[i], rt[i], src[i], late[i] = e.DeviceTime, e.ReceivedAt, string(e.Source), e.Late
	}
	return
}

func insertStaged(ctx context.Context, conn *pgx.Conn, uniq []*event.Event, bodies []string) (pgx.Rows, error) {
	_, err := conn.CopyFrom(ctx, pgx.Identifier{"vigil_events_stage"}, stageCols,
		pgx.CopyFromSlice(len(uniq), func(i int) ([]any, error) {
			e := uniq[i]
			return []any{int32(i), e.OrgID, e.DeviceID, e.MsgID, string(e.Type), e.DeviceTime, e.ReceivedAt,
				string(e.Source), e.Late, bodies[i]}, nil
		}))
	if err != nil {
		return nil, err
	}
	return conn.Query(ctx, insertEventsStaged)
}

func queuePositions(b *pgx.Batch, inserted []*event.Event, q string) {
	var dev, msg, src []string
	var dt, rt, fix []pgtype.Timestamptz
	var late []bool
	var lat, lon, acc []float64
	var speed, heading, alt []pgtype.Float8
	for _, e := range inserted {
		p := e.Position
		if p == nil {
			continue
		}
		dev, msg, late = append(dev, e.DeviceID), append(msg, e.MsgID), append(late, e.Late)
		dt, rt, fix = append(dt, ts(e.DeviceTime)), append(rt, ts(e.ReceivedAt)), append(fix, ts(p.FixTime))
		src = append(src, string(e.Source))
		lat, lon, acc = append(lat, p.Lat), append(lon, p.Lon), append(acc, p.AccuracyM)
		speed, heading, alt = append(speed, f8(p.SpeedMPS)), append(heading, f8(p.HeadingDeg)), append(alt, f8(p.AltitudeM))
	}
	if len(dev) > 0 {
		b.Queue(q, dev, dt, msg, rt, src, late, lat, lon, acc, speed, heading, alt, fix)
	}
}

func queueDeltas(b *pgx.Batch, ds []batch.Delta) {
	n := len(ds)
	ids, counts, seen := make([]string, n), make([]int64, n), make([]time.Time, n)
	lat, lon, acc := make([]pgtype.Float8, n), make([]pgtype.Float8, n), make([]pgtype.Float8, n)
	speed, heading, alt := make([]pgtype.Float8, n), make([]pgtype.Float8, n), make([]pgtype.Float8, n)
	fix, pt, bt := make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n)
	pct, charging := make([]pgtype.Int4, n), make([]bool, n)
	for i, d := range ds {
		ids[i], counts[i], seen[i] = d.DeviceID, d.Count, d.LastSeen
		if p := d.Position; p != nil {
			lat[i], lon[i], acc[i] = f8(&p.Lat), f8(&p.Lon), f8(&p.AccuracyM)
			speed[i], heading[i], alt[i] = f8(p.SpeedMPS), f8(p.HeadingDeg), f8(p.AltitudeM)
			fix[i], pt[i] = ts(p.FixTime), ts(d.PositionTime)
		}
		if bat := d.Battery; bat != nil {
			pct[i] = pgtype.Int4{Int32: int32(bat.Percent), Valid: true}
			charging[i], bt[i] = bat.Charging, ts(d.BatteryTime)
		}
	}
	b.Queue(updateDevices, ids, counts, seen, lat, lon, acc, speed, heading, alt, fix, pt, pct, charging, bt)
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
	var where []string
	var args []any
	if f.OrgID != "" {
		args = append(args, f.OrgID)
		where = append(where, fmt.Sprintf("org_id = $%d", len(args)))
	}
	if f.DeviceID != "" {
		args = append(args, f.DeviceID)
		where = append(where, fmt.Sprintf("device_id = $%d", len(args)))
	}
	q := `SELECT seq, body::text FROM events`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, clampLimit(f.Limit))
	q += fmt.Sprintf(" ORDER BY seq DESC LIMIT $%d", len(args))
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.StoredEvent, error) {
		var se store.StoredEvent
		var body []byte
		if err := r.Scan(&se.Seq, &body); err != nil {
			return se, err
		}
		var err error
		if se.Event, err = event.Unmarshal(body); err != nil {
			return se, fmt.Errorf("seq %d: %w", se.Seq, err)
		}
		return se, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	return out, nil
}

// CountEvents counts a device's events (ErrNotFound for an unknown device),
// or all events when deviceID is "".
func (s *Store) CountEvents(ctx context.Context, deviceID string) (int64, error) {
	var n int64
	if deviceID == "" {
		if err := s.pool.QueryRow(ctx, `SELECT coalesce(sum(event_count), 0)::bigint FROM devices`).Scan(&n); err != nil {
			return 0, fmt.Errorf("count events: %w", err)
		}
		return n, nil
	}
	err := s.pool.QueryRow(ctx, `SELECT event_count FROM devices WHERE id = $1`, deviceID).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("count events of %s: %w", deviceID, store.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("count events of %s: %w", deviceID, err)
	}
	return n, nil
}

// HasEvent reports whether an event is stored.
func (s *Store) HasEvent(ctx context.Context, deviceID, msgID string) (bool, error) {
	var ok bool
	// A position report is looked up among its device's positions (the
	// key leads with device_id): a scan of one device's history.
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events WHERE device_id = $1 AND msg_id = $2)
		OR EXISTS (SELECT 1 FROM positions WHERE device_id = $1 AND msg_id = $2)`, deviceID, msgID).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("has event %s/%s: %w", deviceID, msgID, err)
	}
	return ok, nil
}

// Positions returns a device's positions with from <= device time < to,
// oldest first; a zero bound is open.
func (s *Store) Positions(ctx context.Context, deviceID string, from, to time.Time) ([]store.PositionRecord, error) {
	lo := pgtype.Timestamptz{Time: from, Valid: true}
	if from.IsZero() {
		lo = pgtype.Timestamptz{InfinityModifier: pgtype.NegativeInfinity, Valid: true}
	}
	hi := pgtype.Timestamptz{Time: to, Valid: true}
	if to.IsZero() {
		hi = pgtype.Timestamptz{InfinityModifier: pgtype.Infinity, Valid: true}
	}
	rows, err := s.pool.Query(ctx, `SELECT device_id, msg_id, device_time, received_at, source, late,
		lat, lon, accuracy_m, speed, heading, altitude, fix_time
		FROM positions WHERE device_id = $1 AND device_time >= $2 AND device_time < $3 ORDER BY device_time, msg_id`,
		deviceID, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("positions of %s: %w", deviceID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.PositionRecord, error) {
		var p store.PositionRecord
		var speed, heading, alt pgtype.Float8
		var fix pgtype.Timestamptz
		var src string
		err := r.Scan(&p.DeviceID, &p.MsgID, &p.DeviceTime, &p.ReceivedAt, &src, &p.Late,
			&p.Lat, &p.Lon, &p.AccuracyM, &speed, &heading, &alt, &fix)
		p.DeviceTime, p.ReceivedAt, p.Source = p.DeviceTime.UTC(), p.ReceivedAt.UTC(), event.Source(src)
		p.SpeedMPS, p.HeadingDeg, p.AltitudeM = fromF8(speed), fromF8(heading), fromF8(alt)
		p.FixTime = fromTS(fix)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("positions of %s: %w", deviceID, err)
	}
	return out, nil
}

// --- meta -----------------------------------------------------------------

// GetMeta returns a named value or ErrNotFound.
func (s *Store) GetMeta(ctx context.Context, key string) (string, error) {
	var v string
	err := s.pool.QueryRow(ctx, `SELECT value FROM meta WHERE key = $1`, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("get meta %s: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("get meta %s: %w", key, err)
	}
	return v, nil
}

// PutMeta sets a named value.
func (s *Store) PutMeta(ctx context.Context, key, value string) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value); err != nil {
		return fmt.Errorf("put meta %s: %w", key, err)
	}
	return nil
}

// PutMetas writes kvs in one statement (one transaction).
func (s *Store) PutMetas(ctx context.Context, kvs map[string]string) error {
	if len(kvs) == 0 {
		return nil
	}
	keys, vals := make([]string, 0, len(kvs)), make([]string, 0, len(kvs))
	for k, v := range kvs {
		keys, vals = append(keys, k), append(vals, v)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO meta (key, value) SELECT * FROM unnest($1::text[], $2::text[])
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, keys, vals); err != nil {
		return fmt.Errorf("put meta: %w", err)
	}
	return nil
}

// DeleteMeta deletes a named value; an unknown key is ErrNotFound, so that
// exactly one of several concurrent deleters succeeds (one-time tokens).
func (s *Store) DeleteMeta(ctx context.Context, key string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM meta WHERE key = $1`, key)
	if err != nil {
		return fmt.Errorf("delete meta %s: %w", key, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete meta %s: %w", key, store.ErrNotFound)
	}
	return nil
}
