package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"vigil/internal/event"
	"vigil/internal/store"
)

// querier is what both *sql.DB and *sql.Tx offer for reads.
type querier interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

const alertCols = `id, org_id, device_id, person_id, session_id, kind, severity, state, dedup_key,
	raised_at, cause_time, pending_until, cancel_until, acknowledged_at, acknowledged_by,
	closed_at, closed_by, outcome, outcome_note, note, detail,
	lat, lon, accuracy_m, fix_time, position_time, duress, late, version, updated_at`

const openStates = `('pending', 'raised', 'acknowledged')`

func scanAlert(sc scanner) (store.Alert, error) {
	var a store.Alert
	var raised, cause, pending, cancel, acked, closed, fix, posTime, updated sql.NullInt64
	var lat, lon, acc sql.NullFloat64
	err := sc.Scan(&a.ID, &a.OrgID, &a.DeviceID, &a.PersonID, &a.SessionID, &a.Kind, &a.Severity, &a.State, &a.DedupKey,
		&raised, &cause, &pending, &cancel, &acked, &a.AcknowledgedBy,
		&closed, &a.ClosedBy, &a.Outcome, &a.OutcomeNote, &a.Note, &a.Detail,
		&lat, &lon, &acc, &fix, &posTime, &a.Duress, &a.Late, &a.Version, &updated)
	if err != nil {
		return store.Alert{}, err
	}
	a.RaisedAt, a.CauseTime = fromNanos(raised), fromNanos(cause)
	a.PendingUntil, a.CancelUntil = fromNanos(pending), fromNanos(cancel)
	a.AcknowledgedAt, a.ClosedAt = fromNanos(acked), fromNanos(closed)
	a.PositionTime, a.UpdatedAt = fromNanos(posTime), fromNanos(updated)
	if lat.Valid && lon.Valid {
		a.Position = &event.Position{Lat: lat.Float64, Lon: lon.Float64, AccuracyM: acc.Float64, FixTime: fromNanos(fix)}
	}
	return a, nil
}

func getAlert(ctx context.Context, q querier, id string, timeline bool) (store.Alert, error) {
	a, err := scanAlert(q.QueryRowContext(ctx, `SELECT `+alertCols+` FROM alerts WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Alert{}, store.ErrNotFound
	}
	if err != nil || !timeline {
		return a, err
	}
	rows, err := q.QueryContext(ctx, `SELECT seq, at, actor, action, detail, cause FROM alert_entries WHERE alert_id = ? ORDER BY seq`, id)
	if err != nil {
		return store.Alert{}, err
	}
	defer rows.Close()
	for rows.Next() {
		var e store.AlertEntry
		var at sql.NullInt64
		var cause sql.NullString
		if err := rows.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Detail, &cause); err != nil {
			return store.Alert{}, err
		}
		e.At, e.Cause = fromNanos(at), cause.String
		a.Timeline = append(a.Timeline, e)
	}
	return a, rows.Err()
}

func nullText(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

func addEntry(ctx context.Context, tx *sql.Tx, alertID string, e store.AlertEntry) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO alert_entries (alert_id, seq, at, actor, action, detail, cause)
		VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM alert_entries WHERE alert_id = ?), ?, ?, ?, ?, ?)`,
		alertID, alertID, nanos(orNow(e.At)), e.Actor, e.Action, e.Detail, nullText(e.Cause))
	return err
}

func causeAlert(ctx context.Context, q querier, cause string) (string, error) {
	var id string
	err := q.QueryRowContext(ctx, `SELECT alert_id FROM alert_entries WHERE cause = ?`, cause).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return id, err
}

// RaiseAlert records a decision idempotently (see store.SafetyStore).
func (s *Store) RaiseAlert(ctx context.Context, a store.Alert, first store.AlertEntry) (store.Alert, store.RaiseResult, error) {
	if a.ID == "" || a.DedupKey == "" || !a.State.Open() {
		return store.Alert{}, 0, fmt.Errorf("raise alert: id, dedup key and an open state are required")
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.Alert{}, 0, fmt.Errorf("raise alert %s: %w", a.DedupKey, err)
	}
	defer tx.Rollback()
	res, id, err := s.raise(ctx, tx, a, first)
	if err != nil {
		return store.Alert{}, 0, fmt.Errorf("raise alert %s: %w", a.DedupKey, classify(err))
	}
	got, err := getAlert(ctx, tx, id, true)
	if err != nil {
		return store.Alert{}, 0, fmt.Errorf("raise alert %s: read back: %w", a.DedupKey, err)
	}
	if err := tx.Commit(); err != nil {
		return store.Alert{}, 0, fmt.Errorf("raise alert %s: commit: %w", a.DedupKey, err)
	}
	return got, res, nil
}

func (s *Store) raise(ctx context.Context, tx *sql.Tx, a store.Alert, first store.AlertEntry) (store.RaiseResult, string, error) {
	if first.Cause != "" {
		id, err := causeAlert(ctx, tx, first.Cause)
		if err != nil || id != "" {
			return store.RaiseDuplicate, id, err
		}
	}
	now := orNow(first.At)
	var open string
	err := tx.QueryRowContext(ctx, `SELECT id FROM alerts WHERE dedup_key = ? AND state IN `+openStates, a.DedupKey).Scan(&open)
	switch {
	case err == nil:
		if err := addEntry(ctx, tx, open, first); err != nil {
			return 0, "", err
		}
		_, err := tx.ExecContext(ctx, `UPDATE alerts SET version = version + 1, updated_at = ? WHERE id = ?`, nanos(now), open)
		return store.RaiseJoined, open, err
	case !errors.Is(err, sql.ErrNoRows):
		return 0, "", err
	}
	var lat, lon, acc sql.NullFloat64
	var fix sql.NullInt64
	if p := a.Position; p != nil {
		lat, lon = sql.NullFloat64{Float64: p.Lat, Valid: true}, sql.NullFloat64{Float64: p.Lon, Valid: true}
		acc, fix = sql.NullFloat64{Float64: p.AccuracyM, Valid: true}, nanos(p.FixTime)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO alerts (`+alertCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)`,
		a.ID, a.OrgID, a.DeviceID, a.PersonID, a.SessionID, a.Kind, a.Severity, string(a.State), a.DedupKey,
		nanos(orNow(a.RaisedAt)), nanos(orNow(a.CauseTime)), nanos(a.PendingUntil), nanos(a.CancelUntil),
		nanos(a.AcknowledgedAt), a.AcknowledgedBy, nanos(a.ClosedAt), a.ClosedBy, a.Outcome, a.OutcomeNote,
		a.Note, a.Detail, lat, lon, acc, fix, nanos(a.PositionTime), a.Duress, a.Late, nanos(now))
	if err != nil {
		return 0, "", err
	}
	return store.RaiseNew, a.ID, addEntry(ctx, tx, a.ID, first)
}

// UpdateAlert writes the lifecycle fields if the version still matches.
func (s *Store) UpdateAlert(ctx context.Context, a store.Alert, e store.AlertEntry) (store.Alert, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.Alert{}, fmt.Errorf("update alert %s: %w", a.ID, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE alerts SET state = ?, severity = ?, pending_until = ?, cancel_until = ?,
		acknowledged_at = ?, acknowledged_by = ?, closed_at = ?, closed_by = ?, outcome = ?, outcome_note = ?,
		duress = ?, version = version + 1, updated_at = ?
		WHERE id = ? AND version = ?`,
		string(a.State), a.Severity, nanos(a.PendingUntil), nanos(a.CancelUntil), nanos(a.AcknowledgedAt), a.AcknowledgedBy,
		nanos(a.ClosedAt), a.ClosedBy, a.Outcome, a.OutcomeNote, a.Duress, nanos(orNow(e.At)), a.ID, a.Version)
	if err != nil {
		return store.Alert{}, fmt.Errorf("update alert %s: %w", a.ID, classify(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := getAlert(ctx, tx, a.ID, false); err != nil {
			return store.Alert{}, fmt.Errorf("update alert %s: %w", a.ID, err)
		}
		return store.Alert{}, fmt.Errorf("update alert %s: changed meanwhile: %w", a.ID, store.ErrConflict)
	}
	if e.Action != "" {
		if err := addEntry(ctx, tx, a.ID, e); err != nil {
			return store.Alert{}, fmt.Errorf("update alert %s: %w", a.ID, classify(err))
		}
	}
	got, err := getAlert(ctx, tx, a.ID, true)
	if err != nil {
		return store.Alert{}, fmt.Errorf("update alert %s: read back: %w", a.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return store.Alert{}, fmt.Errorf("update alert %s: commit: %w", a.ID, err)
	}
	return got, nil
}

// AddAlertEntry appends an entry; false if its cause was already recorded.
func (s *Store) AddAlertEntry(ctx context.Context, alertID string, e store.AlertEntry) (bool, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("add alert entry %s: %w", alertID, err)
	}
	defer tx.Rollback()
	if e.Cause != "" {
		id, err := causeAlert(ctx, tx, e.Cause)
		if err != nil {
			return false, fmt.Errorf("add alert entry %s: %w", alertID, err)
		}
		if id != "" {
			return false, nil
		}
	}
	if _, err := getAlert(ctx, tx, alertID, false); err != nil {
		return false, fmt.Errorf("add alert entry %s: %w", alertID, err)
	}
	if err := addEntry(ctx, tx, alertID, e); err != nil {
		return false, fmt.Errorf("add alert entry %s: %w", alertID, classify(err))
	}
	if _, err := tx.ExecContext(ctx, `UPDATE alerts SET version = version + 1, updated_at = ? WHERE id = ?`, nanos(orNow(e.At)), alertID); err != nil {
		return false, fmt.Errorf("add alert entry %s: %w", alertID, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("add alert entry %s: commit: %w", alertID, err)
	}
	return true, nil
}

// GetAlert returns an alert with its timeline, or ErrNotFound.
func (s *Store) GetAlert(ctx context.Context, id string) (store.Alert, error) {
	a, err := getAlert(ctx, s.r, id, true)
	if err != nil {
		return store.Alert{}, fmt.Errorf("get alert %s: %w", id, err)
	}
	return a, nil
}

// HasCause reports whether a cause is recorded in any timeline.
func (s *Store) HasCause(ctx context.Context, cause string) (bool, error) {
	id, err := causeAlert(ctx, s.r, cause)
	if err != nil {
		return false, fmt.Errorf("has cause: %w", err)
	}
	return id != "", nil
}

// ListAlerts lists alerts newest first, without timelines.
func (s *Store) ListAlerts(ctx context.Context, f store.AlertFilter) ([]store.Alert, error) {
	var where []string
	var args []any
	if f.OrgID != "" {
		where, args = append(where, "org_id = ?"), append(args, f.OrgID)
	}
	if f.PersonID != "" {
		where, args = append(where, "person_id = ?"), append(args, f.PersonID)
	}
	if f.DeviceID != "" {
		where, args = append(where, "device_id = ?"), append(args, f.DeviceID)
	}
	if f.Kind != "" {
		where, args = append(where, "kind = ?"), append(args, f.Kind)
	}
	if !f.RaisedBefore.IsZero() {
		where, args = append(where, "raised_at < ?"), append(args, nanos(f.RaisedBefore))
	}
	if len(f.States) > 0 {
		ph := make([]string, len(f.States))
		for i, st := range f.States {
			ph[i] = "?"
			args = append(args, string(st))
		}
		where = append(where, "state IN ("+strings.Join(ph, ", ")+")")
	}
	q := `SELECT ` + alertCols + ` FROM alerts`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY raised_at DESC, id DESC LIMIT ?"
	args = append(args, clampLimit(f.Limit))
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	defer rows.Close()
	var out []store.Alert
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, fmt.Errorf("list alerts: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	return out, nil
}

// --- sessions ---------------------------------------------------------------

const sessionCols = `id, org_id, person_id, device_id, preset, note, started_at, expected_end,
	checkin_interval, grace, last_checkin, state, ended_at, ended_by, version`

func scanSession(sc scanner) (store.Session, error) {
	var x store.Session
	var started, end, last, ended sql.NullInt64
	var interval, grace int64
	err := sc.Scan(&x.ID, &x.OrgID, &x.PersonID, &x.DeviceID, &x.Preset, &x.Note, &started, &end,
		&interval, &grace, &last, &x.State, &ended, &x.EndedBy, &x.Version)
	if err != nil {
		return store.Session{}, err
	}
	x.StartedAt, x.ExpectedEnd, x.LastCheckin, x.EndedAt = fromNanos(started), fromNanos(end), fromNanos(last), fromNanos(ended)
	x.CheckinInterval, x.Grace = time.Duration(interval), time.Duration(grace)
	return x, nil
}

// CreateSession stores a new active session.
func (s *Store) CreateSession(ctx context.Context, x store.Session) error {
	if x.ID == "" || x.StartedAt.IsZero() || x.ExpectedEnd.IsZero() {
		return fmt.Errorf("create session: id, start and expected end are required")
	}
	last := x.LastCheckin
	if last.IsZero() {
		last = x.StartedAt
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO sessions (`+sessionCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', NULL, '', 1)`,
		x.ID, x.OrgID, x.PersonID, x.DeviceID, x.Preset, x.Note, nanos(x.StartedAt), nanos(x.ExpectedEnd),
		int64(x.CheckinInterval), int64(x.Grace), nanos(last))
	if err != nil {
		return fmt.Errorf("create session %s: %w", x.ID, classify(err))
	}
	return nil
}

// GetSession returns a session or ErrNotFound.
func (s *Store) GetSession(ctx context.Context, id string) (store.Session, error) {
	x, err := scanSession(s.r.QueryRowContext(ctx, `SELECT `+sessionCols+` FROM sessions WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Session{}, fmt.Errorf("get session %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Session{}, fmt.Errorf("get session %s: %w", id, err)
	}
	return x, nil
}

// UpdateSession writes the mutable fields if the version still matches.
func (s *Store) UpdateSession(ctx context.Context, x store.Session) (store.Session, error) {
	res, err := s.w.ExecContext(ctx, `UPDATE sessions SET expected_end = ?, last_checkin = ?, state = ?, ended_at = ?,
		ended_by = ?, version = version + 1 WHERE id = ? AND version = ?`,
		nanos(x.ExpectedEnd), nanos(x.LastCheckin), string(x.State), nanos(x.EndedAt), x.EndedBy, x.ID, x.Version)
	if err != nil {
		return store.Session{}, fmt.Errorf("update session %s: %w", x.ID, classify(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := s.GetSession(ctx, x.ID); err != nil {
			return store.Session{}, fmt.Errorf("update session: %w", err)
		}
		return store.Session{}, fmt.Errorf("update session %s: changed meanwhile: %w", x.ID, store.ErrConflict)
	}
	x.Version++
	return x, nil
}

// ListSessions lists sessions newest first.
func (s *Store) ListSessions(ctx context.Context, f store.SessionFilter) ([]store.Session, error) {
	var where []string
	var args []any
	if f.OrgID != "" {
		where, args = append(where, "org_id = ?"), append(args, f.OrgID)
	}
	if f.PersonID != "" {
		where, args = append(where, "person_id = ?"), append(args, f.PersonID)
	}
	if f.ActiveOnly {
		where = append(where, "state = 'active'")
	}
	q := `SELECT ` + sessionCols + ` FROM sessions`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY started_at DESC, id DESC"
	if !(f.ActiveOnly && f.OrgID == "" && f.PersonID == "") {
		q += " LIMIT ?"
		args = append(args, clampLimit(f.Limit))
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	defer rows.Close()
	var out []store.Session
	for rows.Next() {
		x, err := scanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("list sessions: %w", err)
		}
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return out, nil
}

// PutSessionPreset creates or replaces a preset.
func (s *Store) PutSessionPreset(ctx context.Context, p store.SessionPreset) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO session_presets (org_id, name, duration, checkin_interval, grace)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (org_id, name) DO UPDATE SET duration = excluded.duration,
		checkin_interval = excluded.checkin_interval, grace = excluded.grace`,
		p.OrgID, p.Name, int64(p.Duration), int64(p.CheckinInterval), int64(p.Grace))
	if err != nil {
		return fmt.Errorf("put session preset %s/%s: %w", p.OrgID, p.Name, classify(err))
	}
	return nil
}

// ListSessionPresets lists an organisation's presets by name.
func (s *Store) ListSessionPresets(ctx context.Context, orgID string) ([]store.SessionPreset, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT org_id, name, duration, checkin_interval, grace FROM session_presets
		WHERE org_id = ? ORDER BY name`, orgID)
	if err != nil {
		return nil, fmt.Errorf("list session presets of %s: %w", orgID, err)
	}
	defer rows.Close()
	var out []store.SessionPreset
	for rows.Next() {
		var p store.SessionPreset
		var d, i, g int64
		if err := rows.Scan(&p.OrgID, &p.Name, &d, &i, &g); err != nil {
			return nil, fmt.Errorf("list session presets of %s: %w", orgID, err)
		}
		p.Duration, p.CheckinInterval, p.Grace = time.Duration(d), time.Duration(i), time.Duration(g)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list session presets of %s: %w", orgID, err)
	}
	return out, nil
}

// --- geofences --------------------------------------------------------------

// PutGeofence creates or replaces a geofence (its organisation is fixed).
func (s *Store) PutGeofence(ctx context.Context, g store.GeofenceRecord) error {
	now := orNow(g.UpdatedAt)
	res, err := s.w.ExecContext(ctx, `INSERT INTO geofences (id, org_id, name, feature, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET name = excluded.name, feature = excluded.feature,
		updated_at = excluded.updated_at WHERE geofences.org_id = excluded.org_id`,
		g.ID, g.OrgID, g.Name, string(g.Feature), nanos(orNow(g.CreatedAt)), nanos(now))
	if err != nil {
		return fmt.Errorf("put geofence %s: %w", g.ID, classify(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("put geofence %s: id belongs to another organisation: %w", g.ID, store.ErrConflict)
	}
	return nil
}

func scanGeofence(sc scanner) (store.GeofenceRecord, error) {
	var g store.GeofenceRecord
	var feature string
	var c, u sql.NullInt64
	if err := sc.Scan(&g.ID, &g.OrgID, &g.Name, &feature, &c, &u); err != nil {
		return store.GeofenceRecord{}, err
	}
	g.Feature, g.CreatedAt, g.UpdatedAt = []byte(feature), fromNanos(c), fromNanos(u)
	return g, nil
}

// GetGeofence returns a geofence or ErrNotFound.
func (s *Store) GetGeofence(ctx context.Context, id string) (store.GeofenceRecord, error) {
	g, err := scanGeofence(s.r.QueryRowContext(ctx, `SELECT id, org_id, name, feature, created_at, updated_at FROM geofences WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.GeofenceRecord{}, fmt.Errorf("get geofence %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.GeofenceRecord{}, fmt.Errorf("get geofence %s: %w", id, err)
	}
	return g, nil
}

// ListGeofences lists geofences by id ("" for every organisation).
func (s *Store) ListGeofences(ctx context.Context, orgID string) ([]store.GeofenceRecord, error) {
	q, args := `SELECT id, org_id, name, feature, created_at, updated_at FROM geofences ORDER BY org_id, id`, []any(nil)
	if orgID != "" {
		q, args = `SELECT id, org_id, name, feature, created_at, updated_at FROM geofences WHERE org_id = ? ORDER BY id`, []any{orgID}
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list geofences: %w", err)
	}
	defer rows.Close()
	var out []store.GeofenceRecord
	for rows.Next() {
		g, err := scanGeofence(rows)
		if err != nil {
			return nil, fmt.Errorf("list geofences: %w", err)
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list geofences: %w", err)
	}
	return out, nil
}

// DeleteGeofence removes a geofence or returns ErrNotFound.
func (s *Store) DeleteGeofence(ctx context.Context, id string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM geofences WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete geofence %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delete geofence %s: %w", id, store.ErrNotFound)
	}
	return nil
}

// SetLocationPolicy sets where an organisation's workers' positions may be
// kept.
func (s *Store) SetLocationPolicy(ctx context.Context, orgID string, p store.LocationPolicy) error {
	if p != store.LocationOnDuty && p != store.LocationAlways {
		return fmt.Errorf("set location policy of %s: must be %q or %q", orgID, store.LocationOnDuty, store.LocationAlways)
	}
	res, err := s.w.ExecContext(ctx, `UPDATE orgs SET location_policy = ? WHERE id = ?`, string(p), orgID)
	if err != nil {
		return fmt.Errorf("set location policy of %s: %w", orgID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("set location policy of %s: %w", orgID, store.ErrNotFound)
	}
	return nil
}

// SetDuressCode sets (or, with nil, clears) a person's duress code hash.
func (s *Store) SetDuressCode(ctx context.Context, personID string, hash []byte) error {
	res, err := s.w.ExecContext(ctx, `UPDATE people SET duress_code_hash = ? WHERE id = ?`, nullBytes(hash), personID)
	if err != nil {
		return fmt.Errorf("set duress code of %s: %w", personID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("set duress code of %s: %w", personID, store.ErrNotFound)
	}
	return nil
}

// OffDutyDevices returns the devices whose positions the location policy
// keeps out of the store now.
func (s *Store) OffDutyDevices(ctx context.Context, ids []string) (map[string]bool, error) {
	out := make(map[string]bool)
	for len(ids) > 0 {
		n := min(len(ids), 500)
		args := make([]any, n)
		for i, id := range ids[:n] {
			args[i] = id
		}
		rows, err := s.r.QueryContext(ctx, `SELECT d.id FROM devices d
		JOIN people p ON p.id = d.person_id
		JOIN orgs o ON o.id = d.org_id
		WHERE d.id IN (?`+strings.Repeat(", ?", n-1)+`)
		AND p.kind = 'worker' AND o.location_policy = 'on_duty'
		AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.person_id = d.person_id AND s.state = 'active')
		AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.person_id = d.person_id AND a.state IN ('pending', 'raised', 'acknowledged'))`, args...)
		if err != nil {
			return nil, fmt.Errorf("off-duty devices: %w", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, fmt.Errorf("off-duty devices: %w", err)
			}
			out[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("off-duty devices: %w", err)
		}
		ids = ids[n:]
	}
	return out, nil
}

// ResidentIDs lists every resident's id.
func (s *Store) ResidentIDs(ctx context.Context) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id FROM people WHERE kind = 'resident'`)
	if err != nil {
		return nil, fmt.Errorf("resident ids: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("resident ids: %w", err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("resident ids: %w", err)
	}
	return out, nil
}

// EachDeviceWatch streams what the safety engine watches of every device,
// unordered and without its last position: a scan of the devices table.
func (s *Store) EachDeviceWatch(ctx context.Context, fn func(store.DeviceWatch) error) error {
	rows, err := s.r.QueryContext(ctx, `SELECT id, org_id, person_id, disabled_at IS NOT NULL, last_seen,
		battery, charging FROM devices`)
	if err != nil {
		return fmt.Errorf("each device watch: %w", err)
	}
	defer rows.Close()
	var person sql.NullString
	var seen, battery sql.NullInt64
	for rows.Next() {
		var w store.DeviceWatch
		if err := rows.Scan(&w.ID, &w.OrgID, &person, &w.Disabled, &seen, &battery, &w.Charging); err != nil {
			return fmt.Errorf("each device watch: %w", err)
		}
		w.PersonID, w.LastSeen = person.String, fromNanos(seen)
		w.Battery = -1
		if battery.Valid {
			w.Battery = int(battery.Int64)
		}
		if err := fn(w); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("each device watch: %w", err)
	}
	return nil
}

// EachSessionTimer streams what the safety engine times of every active
// session, unordered: a scan of the covering index sessions_active_timer
// (migration 7), not a table read per row.
func (s *Store) EachSessionTimer(ctx context.Context, fn func(store.SessionTimer) error) error {
	rows, err := s.r.QueryContext(ctx, qSessionTimers)
	if err != nil {
		return fmt.Errorf("each session timer: %w", err)
	}
	defer rows.Close()
	var started, end, last, interval, grace int64
	for rows.Next() {
		var x store.SessionTimer
		if err := rows.Scan(&x.ID, &x.OrgID, &x.PersonID, &x.DeviceID, &started, &end, &interval, &grace, &last); err != nil {
			return fmt.Errorf("each session timer: %w", err)
		}
		x.StartedAt, x.ExpectedEnd, x.LastCheckin = time.Unix(0, started).UTC(), time.Unix(0, end).UTC(), time.Unix(0, last).UTC()
		x.CheckinInterval, x.Grace = time.Duration(interval), time.Duration(grace)
		if err := fn(x); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("each session timer: %w", err)
	}
	return nil
}

// qSessionTimers reads only columns of sessions_active_timer.
const qSessionTimers = `SELECT id, org_id, person_id, device_id, started_at, expected_end, checkin_interval, grace, last_checkin
	FROM sessions INDEXED BY sessions_active_timer WHERE state = 'active'`
