package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"vigil/internal/store"
)

// GetRetention returns an organisation's retention policy; see
// store.RetentionStore.
func (s *Store) GetRetention(ctx context.Context, orgID string) (store.RetentionPolicy, error) {
	p := store.RetentionPolicy{OrgID: orgID}
	var pos, ev, al, au, at sql.NullInt64
	var by sql.NullString
	err := s.r.QueryRowContext(ctx, `SELECT r.positions, r.events, r.alerts, r.audit, r.updated_at, r.updated_by
		FROM orgs o LEFT JOIN retention_policies r ON r.org_id = o.id WHERE o.id = ?`, orgID).
		Scan(&pos, &ev, &al, &au, &at, &by)
	if errors.Is(err, sql.ErrNoRows) {
		return store.RetentionPolicy{}, fmt.Errorf("get retention of %s: %w", orgID, store.ErrNotFound)
	}
	if err != nil {
		return store.RetentionPolicy{}, fmt.Errorf("get retention of %s: %w", orgID, err)
	}
	p.Positions, p.Events, p.Alerts, p.Audit = time.Duration(pos.Int64), time.Duration(ev.Int64), time.Duration(al.Int64), time.Duration(au.Int64)
	p.UpdatedAt, p.UpdatedBy = fromEpochNS(at.Int64), by.String
	return p, nil
}

// SetRetention stores an organisation's retention policy; see
// store.RetentionStore.
func (s *Store) SetRetention(ctx context.Context, p store.RetentionPolicy) error {
	if p.Positions < 0 || p.Events < 0 || p.Alerts < 0 || p.Audit < 0 {
		return fmt.Errorf("set retention of %s: negative period", p.OrgID)
	}
	res, err := s.w.ExecContext(ctx, `INSERT INTO retention_policies (org_id, positions, events, alerts, audit, updated_at, updated_by)
		SELECT id, ?, ?, ?, ?, ?, ? FROM orgs WHERE id = ?
		ON CONFLICT (org_id) DO UPDATE SET positions = excluded.positions, events = excluded.events,
			alerts = excluded.alerts, audit = excluded.audit, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
		int64(p.Positions), int64(p.Events), int64(p.Alerts), int64(p.Audit), epochNS(orNow(p.UpdatedAt)), p.UpdatedBy, p.OrgID)
	if err != nil {
		return fmt.Errorf("set retention of %s: %w", p.OrgID, classify(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("set retention of %s: %w", p.OrgID, err)
	} else if n == 0 {
		return fmt.Errorf("set retention of %s: %w", p.OrgID, store.ErrNotFound)
	}
	return nil
}

// openAlertOf is true for a device d (alias) that has, or whose person
// has, an open alert.
const openAlertOf = `EXISTS (SELECT 1 FROM alerts a WHERE a.state IN ('pending', 'raised', 'acknowledged')
	AND (a.device_id = d.id OR (d.person_id IS NOT NULL AND d.person_id <> '' AND a.person_id = d.person_id)))`

// PurgePositions deletes up to limit rows of an organisation's position
// history; see store.RetentionStore.
func (s *Store) PurgePositions(ctx context.Context, orgID string, before time.Time, limit int) (int, error) {
	return s.purge(ctx, "purge positions of "+orgID, `DELETE FROM positions WHERE (device_id, device_time, msg_id) IN (
		SELECT p.device_id, p.device_time, p.msg_id FROM devices d JOIN positions p ON p.device_id = d.id
		WHERE d.org_id = ?1 AND p.device_time < ?2 AND NOT `+openAlertOf+` LIMIT ?3)`,
		orgID, before.UnixNano(), limit)
}

// PurgeEvents deletes up to limit records of an organisation's event log;
// see store.RetentionStore.
func (s *Store) PurgeEvents(ctx context.Context, orgID string, before time.Time, limit int) (int, error) {
	return s.purge(ctx, "purge events of "+orgID, `DELETE FROM events WHERE seq IN (
		SELECT e.seq FROM events e JOIN devices d ON d.id = e.device_id
		WHERE e.org_id = ?1 AND e.received_at < ?2 AND NOT `+openAlertOf+` LIMIT ?3)`,
		orgID, before.UnixNano(), limit)
}

func (s *Store) purge(ctx context.Context, op, q string, orgID string, before int64, limit int) (int, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("%s: limit %d, want > 0", op, limit)
	}
	res, err := s.w.ExecContext(ctx, q, orgID, before, limit)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	return int(n), nil
}

// PurgeAlerts deletes up to limit closed alerts of an organisation with
// their entries, escalation and deliveries, in one transaction; see
// store.RetentionStore.
func (s *Store) PurgeAlerts(ctx context.Context, orgID string, before time.Time, limit int) (n int, err error) {
	if limit <= 0 {
		return 0, fmt.Errorf("purge alerts of %s: limit %d, want > 0", orgID, limit)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("purge alerts of %s: %w", orgID, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	rows, err := tx.QueryContext(ctx, `SELECT id FROM alerts
		WHERE org_id = ? AND state IN ('resolved', 'cancelled') AND closed_at < ? LIMIT ?`, orgID, before.UnixNano(), limit)
	if err != nil {
		return 0, fmt.Errorf("purge alerts of %s: %w", orgID, err)
	}
	var ids []any
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, fmt.Errorf("purge alerts of %s: %w", orgID, err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("purge alerts of %s: %w", orgID, err)
	}
	if len(ids) == 0 {
		return 0, tx.Rollback()
	}
	in := "(?" + strings.Repeat(", ?", len(ids)-1) + ")"
	for _, t := range []string{"deliveries", "escalations", "alert_entries", "alerts"} {
		col := "alert_id"
		if t == "alerts" {
			col = "id"
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+t+` WHERE `+col+` IN `+in, ids...); err != nil {
			return 0, fmt.Errorf("purge alerts of %s: delete %s: %w", orgID, t, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("purge alerts of %s: %w", orgID, err)
	}
	return len(ids), nil
}

// PurgeAuditBefore deletes the oldest whole checkpoint ranges of the audit
// log below before; see store.RetentionStore.
func (s *Store) PurgeAuditBefore(ctx context.Context, before int64, limit int) (n int, err error) {
	if limit <= 0 {
		return 0, fmt.Errorf("purge audit before %d: limit %d, want > 0", before, limit)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("purge audit before %d: %w", before, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var ok int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM audit_checkpoints WHERE seq = ?`, before).Scan(&ok); err != nil {
		return 0, fmt.Errorf("purge audit before %d: %w", before, err)
	}
	if ok == 0 {
		return 0, fmt.Errorf("purge audit before %d: no checkpoint there: %w", before, store.ErrNotFound)
	}
	// The cut: the furthest checkpoint within limit records of the oldest
	// record, else the nearest one (a range longer than limit goes whole).
	var cut sql.NullInt64
	if err := tx.QueryRowContext(ctx, `WITH lo (m) AS (SELECT min(seq) FROM audit_log)
		SELECT coalesce(
			(SELECT max(c.seq) FROM audit_checkpoints c, lo WHERE c.seq > lo.m AND c.seq <= ?1 AND c.seq <= lo.m + ?2),
			(SELECT min(c.seq) FROM audit_checkpoints c, lo WHERE c.seq > lo.m AND c.seq <= ?1))`, before, limit).Scan(&cut); err != nil {
		return 0, fmt.Errorf("purge audit before %d: %w", before, err)
	}
	if !cut.Valid {
		return 0, tx.Rollback()
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM audit_checkpoints WHERE seq < ?`, cut.Int64); err != nil {
		return 0, fmt.Errorf("purge audit before %d: %w", before, err)
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM audit_log WHERE seq < ?`, cut.Int64)
	if err != nil {
		return 0, fmt.Errorf("purge audit before %d: %w", before, err)
	}
	deleted, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("purge audit before %d: %w", before, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("purge audit before %d: %w", before, err)
	}
	return int(deleted), nil
}
