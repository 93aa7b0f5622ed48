package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"vigil/internal/store"
)

// GetRetention returns an organisation's retention policy; see
// store.RetentionStore.
func (s *Store) GetRetention(ctx context.Context, orgID string) (store.RetentionPolicy, error) {
	p := store.RetentionPolicy{OrgID: orgID}
	var pos, ev, al, au pgtype.Int8
	var at pgtype.Timestamptz
	var by pgtype.Text
	err := s.pool.QueryRow(ctx, `SELECT r.positions, r.events, r.alerts, r.audit, r.updated_at, r.updated_by
		FROM orgs o LEFT JOIN retention_policies r ON r.org_id = o.id WHERE o.id = $1`, orgID).
		Scan(&pos, &ev, &al, &au, &at, &by)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.RetentionPolicy{}, fmt.Errorf("get retention of %s: %w", orgID, store.ErrNotFound)
	}
	if err != nil {
		return store.RetentionPolicy{}, fmt.Errorf("get retention of %s: %w", orgID, err)
	}
	p.Positions, p.Events, p.Alerts, p.Audit = time.Duration(pos.Int64), time.Duration(ev.Int64), time.Duration(al.Int64), time.Duration(au.Int64)
	p.UpdatedAt, p.UpdatedBy = fromTS(at), by.String
	return p, nil
}

// SetRetention stores an organisation's retention policy; see
// store.RetentionStore.
func (s *Store) SetRetention(ctx context.Context, p store.RetentionPolicy) error {
	if p.Positions < 0 || p.Events < 0 || p.Alerts < 0 || p.Audit < 0 {
		return fmt.Errorf("set retention of %s: negative period", p.OrgID)
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO retention_policies (org_id, positions, events, alerts, audit, updated_at, updated_by)
		SELECT id, $1, $2, $3, $4, $5, $6 FROM orgs WHERE id = $7
		ON CONFLICT (org_id) DO UPDATE SET positions = excluded.positions, events = excluded.events,
			alerts = excluded.alerts, audit = excluded.audit, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
		int64(p.Positions), int64(p.Events), int64(p.Alerts), int64(p.Audit), ts(orNow(p.UpdatedAt)), p.UpdatedBy, p.OrgID)
	if err != nil {
		return fmt.Errorf("set retention of %s: %w", p.OrgID, classify(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("set retention of %s: %w", p.OrgID, store.ErrNotFound)
	}
	return nil
}

// openAlertOf is true for a device d (alias) that has, or whose person
// has, an open alert.
const openAlertOf = `EXISTS (SELECT 1 FROM alerts a WHERE a.state IN ('pending', 'raised', 'acknowledged')
	AND (a.device_id = d.id OR (coalesce(d.person_id, '') <> '' AND a.person_id = d.person_id)))`

// PurgePositions deletes up to limit rows of an organisation's position
// history; see store.RetentionStore.
func (s *Store) PurgePositions(ctx context.Context, orgID string, before time.Time, limit int) (int, error) {
	// Per device, oldest first, through the key (device_id, device_time,
	// msg_id): an ordered index scan that stops at the limit. A bitmap scan
	// of each device's whole old range would revisit the index entries of
	// the rows earlier batches deleted (dead until vacuum) every batch:
	// measured 3,000 rows/s and 8.7 s batches on 1 M rows.
	return s.purge(ctx, "purge positions of "+orgID, `DELETE FROM positions WHERE ctid = ANY (ARRAY (
		SELECT x.ctid FROM devices d CROSS JOIN LATERAL (
			SELECT p.ctid FROM positions p WHERE p.device_id = d.id AND p.device_time < $2
			ORDER BY p.device_time LIMIT $3) x
		WHERE d.org_id = $1 AND NOT `+openAlertOf+` LIMIT $3))`,
		orgID, before, limit)
}

// PurgeEvents deletes up to limit records of an organisation's event log;
// see store.RetentionStore.
func (s *Store) PurgeEvents(ctx context.Context, orgID string, before time.Time, limit int) (int, error) {
	return s.purge(ctx, "purge events of "+orgID, `DELETE FROM events WHERE seq = ANY (ARRAY (
		SELECT e.seq FROM events e JOIN devices d ON d.id = e.device_id
		WHERE e.org_id = $1 AND e.received_at < $2 AND NOT `+openAlertOf+`
		ORDER BY e.received_at LIMIT $3))`,
		orgID, before, limit)
}

func (s *Store) purge(ctx context.Context, op, q string, orgID string, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("%s: limit %d, want > 0", op, limit)
	}
	tag, err := s.pool.Exec(ctx, q, orgID, ts(before), limit)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	return int(tag.RowsAffected()), nil
}

// PurgeAlerts deletes up to limit closed alerts of an organisation with
// their entries, escalation and deliveries, in one transaction; see
// store.RetentionStore.
func (s *Store) PurgeAlerts(ctx context.Context, orgID string, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("purge alerts of %s: limit %d, want > 0", orgID, limit)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("purge alerts of %s: %w", orgID, err)
	}
	defer tx.Rollback(ctx)
	// FOR UPDATE SKIP LOCKED: an alert being written to now waits for the
	// next batch, and two purgers never take the same alerts.
	rows, err := tx.Query(ctx, `SELECT id FROM alerts
		WHERE org_id = $1 AND state IN ('resolved', 'cancelled') AND closed_at < $2
		LIMIT $3 FOR UPDATE SKIP LOCKED`, orgID, ts(before), limit)
	if err != nil {
		return 0, fmt.Errorf("purge alerts of %s: %w", orgID, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("purge alerts of %s: %w", orgID, err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	for _, t := range []string{"deliveries", "escalations", "alert_entries", "alerts"} {
		col := "alert_id"
		if t == "alerts" {
			col = "id"
		}
		if _, err := tx.Exec(ctx, `DELETE FROM `+t+` WHERE `+col+` = ANY ($1)`, ids); err != nil {
			return 0, fmt.Errorf("purge alerts of %s: delete %s: %w", orgID, t, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("purge alerts of %s: %w", orgID, err)
	}
	return len(ids), nil
}

// PurgeAuditBefore deletes the oldest whole checkpoint ranges of the audit
// log below before; see store.RetentionStore.
func (s *Store) PurgeAuditBefore(ctx context.Context, before int64, limit int) (int, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("purge audit before %d: limit %d, want > 0", before, limit)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("purge audit before %d: %w", before, err)
	}
	defer tx.Rollback(ctx)
	// The appenders' lock: no record is added while the chain's start moves.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('vigil.audit.' || current_schema()))`); err != nil {
		return 0, fmt.Errorf("purge audit before %d: %w", before, err)
	}
	var ok bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM audit_checkpoints WHERE seq = $1)`, before).Scan(&ok); err != nil {
		return 0, fmt.Errorf("purge audit before %d: %w", before, err)
	}
	if !ok {
		return 0, fmt.Errorf("purge audit before %d: no checkpoint there: %w", before, store.ErrNotFound)
	}
	var cut pgtype.Int8
	if err := tx.QueryRow(ctx, `WITH lo (m) AS (SELECT min(seq) FROM audit_log)
		SELECT coalesce(
			(SELECT max(c.seq) FROM audit_checkpoints c, lo WHERE c.seq > lo.m AND c.seq <= $1 AND c.seq <= lo.m + $2),
			(SELECT min(c.seq) FROM audit_checkpoints c, lo WHERE c.seq > lo.m AND c.seq <= $1))`, before, int64(limit)).Scan(&cut); err != nil {
		return 0, fmt.Errorf("purge audit before %d: %w", before, err)
	}
	if !cut.Valid {
		return 0, nil
	}
	if _, err := tx.Exec(ctx, `DELETE FROM audit_checkpoints WHERE seq < $1`, cut.Int64); err != nil {
		return 0, fmt.Errorf("purge audit before %d: %w", before, err)
	}
	tag, err := tx.Exec(ctx, `DELETE FROM audit_log WHERE seq < $1`, cut.Int64)
	if err != nil {
		return 0, fmt.Errorf("purge audit before %d: %w", before, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("purge audit before %d: %w", before, err)
	}
	return int(tag.RowsAffected()), nil
}
