package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"vigil/internal/event"
	"vigil/internal/store"
)

// querier is what both the pool and a transaction offer.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

const alertCols = `id, org_id, device_id, person_id, session_id, kind, severity, state, dedup_key,
	raised_at, cause_time, pending_until, cancel_until, acknowledged_at, acknowledged_by,
	closed_at, closed_by, outcome, outcome_note, note, detail,
	lat, lon, accuracy_m, fix_time, position_time, duress, late, version, updated_at`

const openStates = `('pending', 'raised', 'acknowledged')`

func scanAlert(r pgx.Row) (store.Alert, error) {
	var a store.Alert
	var state string
	var pending, cancel, acked, closed, fix, posTime pgtype.Timestamptz
	var lat, lon, acc pgtype.Float8
	err := r.Scan(&a.ID, &a.OrgID, &a.DeviceID, &a.PersonID, &a.SessionID, &a.Kind, &a.Severity, &state, &a.DedupKey,
		&a.RaisedAt, &a.CauseTime, &pending, &cancel, &acked, &a.AcknowledgedBy,
		&closed, &a.ClosedBy, &a.Outcome, &a.OutcomeNote, &a.Note, &a.Detail,
		&lat, &lon, &acc, &fix, &posTime, &a.Duress, &a.Late, &a.Version, &a.UpdatedAt)
	if err != nil {
		return store.Alert{}, err
	}
	a.State = store.AlertState(state)
	a.RaisedAt, a.CauseTime, a.UpdatedAt = a.RaisedAt.UTC(), a.CauseTime.UTC(), a.UpdatedAt.UTC()
	a.PendingUntil, a.CancelUntil = fromTS(pending), fromTS(cancel)
	a.AcknowledgedAt, a.ClosedAt, a.PositionTime = fromTS(acked), fromTS(closed), fromTS(posTime)
	if lat.Valid && lon.Valid {
		a.Position = &event.Position{Lat: lat.Float64, Lon: lon.Float64, AccuracyM: acc.Float64, FixTime: fromTS(fix)}
	}
	return a, nil
}

func getAlert(ctx context.Context, q querier, id string, timeline bool) (store.Alert, error) {
	a, err := scanAlert(q.QueryRow(ctx, `SELECT `+alertCols+` FROM alerts WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Alert{}, store.ErrNotFound
	}
	if err != nil || !timeline {
		return a, err
	}
	rows, err := q.Query(ctx, `SELECT seq, at, actor, action, detail, cause FROM alert_entries WHERE alert_id = $1 ORDER BY seq`, id)
	if err != nil {
		return store.Alert{}, err
	}
	entries, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.AlertEntry, error) {
		var e store.AlertEntry
		var cause pgtype.Text
		err := r.Scan(&e.Seq, &e.At, &e.Actor, &e.Action, &e.Detail, &cause)
		e.At, e.Cause = e.At.UTC(), cause.String
		return e, err
	})
	a.Timeline = entries
	return a, err
}

func addEntry(ctx context.Context, tx pgx.Tx, alertID string, e store.AlertEntry) error {
	_, err := tx.Exec(ctx, `INSERT INTO alert_entries (alert_id, seq, at, actor, action, detail, cause)
		VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM alert_entries WHERE alert_id = $1), $2, $3, $4, $5, $6)`,
		alertID, orNow(e.At), e.Actor, e.Action, e.Detail, text(e.Cause))
	return err
}

func causeAlert(ctx context.Context, q querier, cause string) (string, error) {
	var id string
	err := q.QueryRow(ctx, `SELECT alert_id FROM alert_entries WHERE cause = $1`, cause).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return id, err
}

// inTx runs f in a transaction, retrying a few times when a concurrent
// writer won a unique key first (two processors deciding the same thing):
// the retry then finds the winner's row.
func (s *Store) inTx(ctx context.Context, f func(tx pgx.Tx) error) error {
	var err error
	for range 3 {
		err = pgx.BeginFunc(ctx, s.pool, f)
		if !errors.Is(classify(err), store.ErrConflict) {
			return err
		}
	}
	return err
}

// RaiseAlert records a decision idempotently (see store.SafetyStore).
func (s *Store) RaiseAlert(ctx context.Context, a store.Alert, first store.AlertEntry) (store.Alert, store.RaiseResult, error) {
	if a.ID == "" || a.DedupKey == "" || !a.State.Open() {
		return store.Alert{}, 0, fmt.Errorf("raise alert: id, dedup key and an open state are required")
	}
	var got store.Alert
	var res store.RaiseResult
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		r, id, err := raise(ctx, tx, a, first)
		if err != nil {
			return err
		}
		res = r
		got, err = getAlert(ctx, tx, id, true)
		return err
	})
	if err != nil {
		return store.Alert{}, 0, fmt.Errorf("raise alert %s: %w", a.DedupKey, classify(err))
	}
	return got, res, nil
}

func raise(ctx context.Context, tx pgx.Tx, a store.Alert, first store.AlertEntry) (store.RaiseResult, string, error) {
	if first.Cause != "" {
		id, err := causeAlert(ctx, tx, first.Cause)
		if err != nil || id != "" {
			return store.RaiseDuplicate, id, err
		}
	}
	now := orNow(first.At)
	var open string
	err := tx.QueryRow(ctx, `SELECT id FROM alerts WHERE dedup_key = $1 AND state IN `+openStates+` FOR UPDATE`, a.DedupKey).Scan(&open)
	switch {
	case err == nil:
		if err := addEntry(ctx, tx, open, first); err != nil {
			return 0, "", err
		}
		_, err := tx.Exec(ctx, `UPDATE alerts SET version = version + 1, updated_at = $1 WHERE id = $2`, now, open)
		return store.RaiseJoined, open, err
	case !errors.Is(err, pgx.ErrNoRows):
		return 0, "", err
	}
	var lat, lon, acc pgtype.Float8
	var fix pgtype.Timestamptz
	if p := a.Position; p != nil {
		lat, lon = pgtype.Float8{Float64: p.Lat, Valid: true}, pgtype.Float8{Float64: p.Lon, Valid: true}
		acc, fix = pgtype.Float8{Float64: p.AccuracyM, Valid: true}, ts(p.FixTime)
	}
	_, err = tx.Exec(ctx, `INSERT INTO alerts (`+alertCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21,
		$22, $23, $24, $25, $26, $27, $28, 1, $29)`,
		a.ID, a.OrgID, a.DeviceID, a.PersonID, a.SessionID, a.Kind, a.Severity, string(a.State), a.DedupKey,
		orNow(a.RaisedAt), orNow(a.CauseTime), ts(a.PendingUntil), ts(a.CancelUntil),
		ts(a.AcknowledgedAt), a.AcknowledgedBy, ts(a.ClosedAt), a.ClosedBy, a.Outcome, a.OutcomeNote,
		a.Note, a.Detail, lat, lon, acc, fix, ts(a.PositionTime), a.Duress, a.Late, now)
	if err != nil {
		return 0, "", err
	}
	return store.RaiseNew, a.ID, addEntry(ctx, tx, a.ID, first)
}

// UpdateAlert writes the lifecycle fields if the version still matches.
func (s *Store) UpdateAlert(ctx context.Context, a store.Alert, e store.AlertEntry) (store.Alert, error) {
	var got store.Alert
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE alerts SET state = $1, severity = $2, pending_until = $3, cancel_until = $4,
			acknowledged_at = $5, acknowledged_by = $6, closed_at = $7, closed_by = $8, outcome = $9, outcome_note = $10,
			duress = $11, version = version + 1, updated_at = $12
			WHERE id = $13 AND version = $14`,
			string(a.State), a.Severity, ts(a.PendingUntil), ts(a.CancelUntil), ts(a.AcknowledgedAt), a.AcknowledgedBy,
			ts(a.ClosedAt), a.ClosedBy, a.Outcome, a.OutcomeNote, a.Duress, orNow(e.At), a.ID, a.Version)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			if _, err := getAlert(ctx, tx, a.ID, false); err != nil {
				return err
			}
			return fmt.Errorf("changed meanwhile: %w", store.ErrConflict)
		}
		if e.Action != "" {
			if err := addEntry(ctx, tx, a.ID, e); err != nil {
				return err
			}
		}
		got, err = getAlert(ctx, tx, a.ID, true)
		return err
	})
	if err != nil {
		return store.Alert{}, fmt.Errorf("update alert %s: %w", a.ID, classify(err))
	}
	return got, nil
}

// AddAlertEntry appends an entry; false if its cause was already recorded.
func (s *Store) AddAlertEntry(ctx context.Context, alertID string, e store.AlertEntry) (bool, error) {
	added := false
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		added = false
		if e.Cause != "" {
			id, err := causeAlert(ctx, tx, e.Cause)
			if err != nil || id != "" {
				return err
			}
		}
		tag, err := tx.Exec(ctx, `UPDATE alerts SET version = version + 1, updated_at = $1 WHERE id = $2`, orNow(e.At), alertID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		if err := addEntry(ctx, tx, alertID, e); err != nil {
			return err
		}
		added = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("add alert entry %s: %w", alertID, classify(err))
	}
	return added, nil
}

// GetAlert returns an alert with its timeline, or ErrNotFound.
func (s *Store) GetAlert(ctx context.Context, id string) (store.Alert, error) {
	a, err := getAlert(ctx, s.pool, id, true)
	if err != nil {
		return store.Alert{}, fmt.Errorf("get alert %s: %w", id, err)
	}
	return a, nil
}

// HasCause reports whether a cause is recorded in any timeline.
func (s *Store) HasCause(ctx context.Context, cause string) (bool, error) {
	id, err := causeAlert(ctx, s.pool, cause)
	if err != nil {
		return false, fmt.Errorf("has cause: %w", err)
	}
	return id != "", nil
}

// where builds a WHERE clause with numbered parameters.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, arg any) {
	w.args = append(w.args, arg)
	w.conds = append(w.conds, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(w.args))))
}

func (w *where) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

func (w *where) next(arg any) string {
	w.args = append(w.args, arg)
	return "$" + strconv.Itoa(len(w.args))
}

// ListAlerts lists alerts newest first, without timelines.
func (s *Store) ListAlerts(ctx context.Context, f store.AlertFilter) ([]store.Alert, error) {
	var w where
	if f.OrgID != "" {
		w.add("org_id = ?", f.OrgID)
	}
	if f.PersonID != "" {
		w.add("person_id = ?", f.PersonID)
	}
	if f.DeviceID != "" {
		w.add("device_id = ?", f.DeviceID)
	}
	if f.Kind != "" {
		w.add("kind = ?", f.Kind)
	}
	if !f.RaisedBefore.IsZero() {
		w.add("raised_at < ?", f.RaisedBefore)
	}
	if len(f.States) > 0 {
		states := make([]string, len(f.States))
		for i, st := range f.States {
			states[i] = string(st)
		}
		w.add("state = ANY(?)", states)
	}
	q := `SELECT ` + alertCols + ` FROM alerts` + w.String()
	q += " ORDER BY raised_at DESC, id DESC LIMIT " + w.next(clampLimit(f.Limit))
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Alert, error) { return scanAlert(r) })
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	return out, nil
}

// --- sessions ---------------------------------------------------------------

const sessionCols = `id, org_id, person_id, device_id, preset, note, started_at, expected_end,
	checkin_interval, grace, last_checkin, state, ended_at, ended_by, version`

func scanSession(r pgx.Row) (store.Session, error) {
	var x store.Session
	var state string
	var ended pgtype.Timestamptz
	var interval, grace int64
	err := r.Scan(&x.ID, &x.OrgID, &x.PersonID, &x.DeviceID, &x.Preset, &x.Note, &x.StartedAt, &x.ExpectedEnd,
		&interval, &grace, &x.LastCheckin, &state, &ended, &x.EndedBy, &x.Version)
	if err != nil {
		return store.Session{}, err
	}
	x.State = store.SessionState(state)
	x.StartedAt, x.ExpectedEnd, x.LastCheckin, x.EndedAt = x.StartedAt.UTC(), x.ExpectedEnd.UTC(), x.LastCheckin.UTC(), fromTS(ended)
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
	_, err := s.pool.Exec(ctx, `INSERT INTO sessions (`+sessionCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'active', NULL, '', 1)`,
		x.ID, x.OrgID, x.PersonID, x.DeviceID, x.Preset, x.Note, x.StartedAt, x.ExpectedEnd,
		int64(x.CheckinInterval), int64(x.Grace), last)
	if err != nil {
		return fmt.Errorf("create session %s: %w", x.ID, classify(err))
	}
	return nil
}

// GetSession returns a session or ErrNotFound.
func (s *Store) GetSession(ctx context.Context, id string) (store.Session, error) {
	x, err := scanSession(s.pool.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Session{}, fmt.Errorf("get session %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Session{}, fmt.Errorf("get session %s: %w", id, err)
	}
	return x, nil
}

// UpdateSession writes the mutable fields if the version still matches.
func (s *Store) UpdateSession(ctx context.Context, x store.Session) (store.Session, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE sessions SET expected_end = $1, last_checkin = $2, state = $3, ended_at = $4,
		ended_by = $5, version = version + 1 WHERE id = $6 AND version = $7`,
		x.ExpectedEnd, x.LastCheckin, string(x.State), ts(x.EndedAt), x.EndedBy, x.ID, x.Version)
	if err != nil {
		return store.Session{}, fmt.Errorf("update session %s: %w", x.ID, classify(err))
	}
	if tag.RowsAffected() == 0 {
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
	var w where
	if f.OrgID != "" {
		w.add("org_id = ?", f.OrgID)
	}
	if f.PersonID != "" {
		w.add("person_id = ?", f.PersonID)
	}
	if f.ActiveOnly {
		w.conds = append(w.conds, "state = 'active'")
	}
	q := `SELECT ` + sessionCols + ` FROM sessions` + w.String() + " ORDER BY started_at DESC, id DESC"
	if !(f.ActiveOnly && f.OrgID == "" && f.PersonID == "") {
		q += " LIMIT " + w.next(clampLimit(f.Limit))
	}
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Session, error) { return scanSession(r) })
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return out, nil
}

// PutSessionPreset creates or replaces a preset.
func (s *Store) PutSessionPreset(ctx context.Context, p store.SessionPreset) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO session_presets (org_id, name, duration, checkin_interval, grace)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org_id, name) DO UPDATE SET duration = excluded.duration,
		checkin_interval = excluded.checkin_interval, grace = excluded.grace`,
		p.OrgID, p.Name, int64(p.Duration), int64(p.CheckinInterval), int64(p.Grace))
	if err != nil {
		return fmt.Errorf("put session preset %s/%s: %w", p.OrgID, p.Name, classify(err))
	}
	return nil
}

// ListSessionPresets lists an organisation's presets by name.
func (s *Store) ListSessionPresets(ctx context.Context, orgID string) ([]store.SessionPreset, error) {
	rows, err := s.pool.Query(ctx, `SELECT org_id, name, duration, checkin_interval, grace FROM session_presets
		WHERE org_id = $1 ORDER BY name`, orgID)
	if err != nil {
		return nil, fmt.Errorf("list session presets of %s: %w", orgID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.SessionPreset, error) {
		var p store.SessionPreset
		var d, i, g int64
		err := r.Scan(&p.OrgID, &p.Name, &d, &i, &g)
		p.Duration, p.CheckinInterval, p.Grace = time.Duration(d), time.Duration(i), time.Duration(g)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("list session presets of %s: %w", orgID, err)
	}
	return out, nil
}

// --- geofences --------------------------------------------------------------

// PutGeofence creates or replaces a geofence (its organisation is fixed).
func (s *Store) PutGeofence(ctx context.Context, g store.GeofenceRecord) error {
	tag, err := s.pool.Exec(ctx, `INSERT INTO geofences (id, org_id, name, feature, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET name = excluded.name, feature = excluded.feature,
		updated_at = excluded.updated_at WHERE geofences.org_id = excluded.org_id`,
		g.ID, g.OrgID, g.Name, string(g.Feature), orNow(g.CreatedAt), orNow(g.UpdatedAt))
	if err != nil {
		return fmt.Errorf("put geofence %s: %w", g.ID, classify(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("put geofence %s: id belongs to another organisation: %w", g.ID, store.ErrConflict)
	}
	return nil
}

func scanGeofence(r pgx.Row) (store.GeofenceRecord, error) {
	var g store.GeofenceRecord
	var feature string
	err := r.Scan(&g.ID, &g.OrgID, &g.Name, &feature, &g.CreatedAt, &g.UpdatedAt)
	g.Feature, g.CreatedAt, g.UpdatedAt = []byte(feature), g.CreatedAt.UTC(), g.UpdatedAt.UTC()
	return g, err
}

// GetGeofence returns a geofence or ErrNotFound.
func (s *Store) GetGeofence(ctx context.Context, id string) (store.GeofenceRecord, error) {
	g, err := scanGeofence(s.pool.QueryRow(ctx, `SELECT id, org_id, name, feature, created_at, updated_at FROM geofences WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
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
		q, args = `SELECT id, org_id, name, feature, created_at, updated_at FROM geofences WHERE org_id = $1 ORDER BY id`, []any{orgID}
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list geofences: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.GeofenceRecord, error) { return scanGeofence(r) })
	if err != nil {
		return nil, fmt.Errorf("list geofences: %w", err)
	}
	return out, nil
}

// DeleteGeofence removes a geofence or returns ErrNotFound.
func (s *Store) DeleteGeofence(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM geofences WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("delete geofence %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
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
	tag, err := s.pool.Exec(ctx, `UPDATE orgs SET location_policy = $1 WHERE id = $2`, string(p), orgID)
	if err != nil {
		return fmt.Errorf("set location policy of %s: %w", orgID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("set location policy of %s: %w", orgID, store.ErrNotFound)
	}
	return nil
}

// SetDuressCode sets (or, with nil, clears) a person's duress code hash.
func (s *Store) SetDuressCode(ctx context.Context, personID string, hash []byte) error {
	tag, err := s.pool.Exec(ctx, `UPDATE people SET duress_code_hash = $1 WHERE id = $2`, nullBytes(hash), personID)
	if err != nil {
		return fmt.Errorf("set duress code of %s: %w", personID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("set duress code of %s: %w", personID, store.ErrNotFound)
	}
	return nil
}

// OffDutyDevices returns the devices whose positions the location policy
// keeps out of the store now.
func (s *Store) OffDutyDevices(ctx context.Context, ids []string) (map[string]bool, error) {
	out := make(map[string]bool)
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT d.id FROM devices d
		JOIN people p ON p.id = d.person_id
		JOIN orgs o ON o.id = d.org_id
		WHERE d.id = ANY($1)
		AND p.kind = 'worker' AND o.location_policy = 'on_duty'
		AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.person_id = d.person_id AND s.state = 'active')
		AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.person_id = d.person_id AND a.state IN ('pending', 'raised', 'acknowledged'))`, ids)
	if err != nil {
		return nil, fmt.Errorf("off-duty devices: %w", err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("off-duty devices: %w", err)
	}
	for _, id := range got {
		out[id] = true
	}
	return out, nil
}

// ResidentIDs lists every resident's id.
func (s *Store) ResidentIDs(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT id FROM people WHERE kind = 'resident'`)
	if err != nil {
		return nil, fmt.Errorf("resident ids: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("resident ids: %w", err)
	}
	return out, nil
}

// EachDeviceWatch streams what the safety engine watches of every device,
// unordered, without its last position.
func (s *Store) EachDeviceWatch(ctx context.Context, fn func(store.DeviceWatch) error) error {
	rows, err := s.pool.Query(ctx, `SELECT id, org_id, coalesce(person_id, ''), disabled_at IS NOT NULL, last_seen,
		battery, charging FROM devices`)
	if err != nil {
		return fmt.Errorf("each device watch: %w", err)
	}
	defer rows.Close()
	var seen pgtype.Timestamptz
	var battery pgtype.Int4
	for rows.Next() {
		var w store.DeviceWatch
		if err := rows.Scan(&w.ID, &w.OrgID, &w.PersonID, &w.Disabled, &seen, &battery, &w.Charging); err != nil {
			return fmt.Errorf("each device watch: %w", err)
		}
		w.LastSeen = fromTS(seen)
		w.Battery = -1
		if battery.Valid {
			w.Battery = int(battery.Int32)
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
// session, unordered; the columns are those of the covering index
// sessions_active_timer (migration 7), so PostgreSQL can answer with an
// index-only scan.
func (s *Store) EachSessionTimer(ctx context.Context, fn func(store.SessionTimer) error) error {
	rows, err := s.pool.Query(ctx, `SELECT id, org_id, person_id, device_id, started_at, expected_end,
		checkin_interval, grace, last_checkin FROM sessions WHERE state = 'active'`)
	if err != nil {
		return fmt.Errorf("each session timer: %w", err)
	}
	defer rows.Close()
	var interval, grace int64
	for rows.Next() {
		var x store.SessionTimer
		if err := rows.Scan(&x.ID, &x.OrgID, &x.PersonID, &x.DeviceID, &x.StartedAt, &x.ExpectedEnd, &interval, &grace, &x.LastCheckin); err != nil {
			return fmt.Errorf("each session timer: %w", err)
		}
		x.StartedAt, x.ExpectedEnd, x.LastCheckin = x.StartedAt.UTC(), x.ExpectedEnd.UTC(), x.LastCheckin.UTC()
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
