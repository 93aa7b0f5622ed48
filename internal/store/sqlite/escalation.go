package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"vigil/internal/store"
)

// PutEscalationPolicy stores an organisation's policy for a kind.
func (s *Store) PutEscalationPolicy(ctx context.Context, orgID, kind, policy string, at time.Time) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO escalation_policies (org_id, kind, policy, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (org_id, kind) DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at`,
		orgID, kind, policy, orNow(at).UnixNano())
	if err != nil {
		return fmt.Errorf("put escalation policy %s/%s: %w", orgID, kind, classify(err))
	}
	return nil
}

// GetEscalationPolicy returns a policy or ErrNotFound.
func (s *Store) GetEscalationPolicy(ctx context.Context, orgID, kind string) (string, error) {
	var p string
	err := s.r.QueryRowContext(ctx, `SELECT policy FROM escalation_policies WHERE org_id = ? AND kind = ?`, orgID, kind).Scan(&p)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("get escalation policy %s/%s: %w", orgID, kind, store.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("get escalation policy %s/%s: %w", orgID, kind, err)
	}
	return p, nil
}

// ListEscalationPolicies returns an organisation's policies by kind.
func (s *Store) ListEscalationPolicies(ctx context.Context, orgID string) (map[string]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT kind, policy FROM escalation_policies WHERE org_id = ?`, orgID)
	if err != nil {
		return nil, fmt.Errorf("list escalation policies of %s: %w", orgID, err)
	}
	defer rows.Close()
	out := make(map[string]string)
	for rows.Next() {
		var k, p string
		if err := rows.Scan(&k, &p); err != nil {
			return nil, fmt.Errorf("list escalation policies of %s: %w", orgID, err)
		}
		out[k] = p
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list escalation policies of %s: %w", orgID, err)
	}
	return out, nil
}

const escalationCols = `alert_id, org_id, policy, started_at, step, attempt, next_at, state, stop_reason, version`

func scanEscalation(sc scanner) (store.Escalation, error) {
	var e store.Escalation
	var started, next int64
	err := sc.Scan(&e.AlertID, &e.OrgID, &e.Policy, &started, &e.Step, &e.Attempt, &next, &e.State, &e.StopReason, &e.Version)
	e.StartedAt, e.NextAt = time.Unix(0, started).UTC(), time.Unix(0, next).UTC()
	return e, err
}

// StartEscalation stores e unless the alert has a ladder.
func (s *Store) StartEscalation(ctx context.Context, e store.Escalation) (store.Escalation, bool, error) {
	if e.State == "" {
		e.State = store.EscalationActive
	}
	res, err := s.w.ExecContext(ctx, `INSERT INTO escalations (`+escalationCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)
		ON CONFLICT (alert_id) DO NOTHING`,
		e.AlertID, e.OrgID, e.Policy, e.StartedAt.UnixNano(), e.Step, e.Attempt, e.NextAt.UnixNano(), string(e.State), e.StopReason)
	if err != nil {
		return store.Escalation{}, false, fmt.Errorf("start escalation of %s: %w", e.AlertID, classify(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return store.Escalation{}, false, fmt.Errorf("start escalation of %s: %w", e.AlertID, err)
	}
	got, err := s.getEscalation(ctx, s.w, e.AlertID)
	if err != nil {
		return store.Escalation{}, false, fmt.Errorf("start escalation: %w", err)
	}
	return got, n == 1, nil
}

// GetEscalation returns an alert's ladder or ErrNotFound.
func (s *Store) GetEscalation(ctx context.Context, alertID string) (store.Escalation, error) {
	return s.getEscalation(ctx, s.r, alertID)
}

func (s *Store) getEscalation(ctx context.Context, q querier, alertID string) (store.Escalation, error) {
	e, err := scanEscalation(q.QueryRowContext(ctx, `SELECT `+escalationCols+` FROM escalations WHERE alert_id = ?`, alertID))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Escalation{}, fmt.Errorf("get escalation of %s: %w", alertID, store.ErrNotFound)
	}
	if err != nil {
		return store.Escalation{}, fmt.Errorf("get escalation of %s: %w", alertID, err)
	}
	return e, nil
}

// UpdateEscalation writes the ladder's position if its version is current.
func (s *Store) UpdateEscalation(ctx context.Context, e store.Escalation) (store.Escalation, error) {
	res, err := s.w.ExecContext(ctx, `UPDATE escalations SET step = ?, attempt = ?, next_at = ?, state = ?, stop_reason = ?,
		version = version + 1 WHERE alert_id = ? AND version = ?`,
		e.Step, e.Attempt, e.NextAt.UnixNano(), string(e.State), e.StopReason, e.AlertID, e.Version)
	if err != nil {
		return store.Escalation{}, fmt.Errorf("update escalation of %s: %w", e.AlertID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return store.Escalation{}, fmt.Errorf("update escalation of %s: %w", e.AlertID, err)
	} else if n == 0 {
		if _, err := s.getEscalation(ctx, s.w, e.AlertID); err != nil {
			return store.Escalation{}, fmt.Errorf("update escalation: %w", err)
		}
		return store.Escalation{}, fmt.Errorf("update escalation of %s: %w", e.AlertID, store.ErrConflict)
	}
	e.Version++
	return e, nil
}

// EachActiveEscalation streams the active ladders.
func (s *Store) EachActiveEscalation(ctx context.Context, fn func(store.Escalation) error) error {
	rows, err := s.r.QueryContext(ctx, `SELECT `+escalationCols+` FROM escalations WHERE state = 'active'`)
	if err != nil {
		return fmt.Errorf("each active escalation: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEscalation(rows)
		if err != nil {
			return fmt.Errorf("each active escalation: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("each active escalation: %w", err)
	}
	return nil
}

const deliveryCols = `key, alert_id, org_id, event, step, attempt, channel, target, status, provider_id, error, latency_ns, created_at, done_at`

func scanDelivery(sc scanner) (store.Delivery, error) {
	var d store.Delivery
	var lat, created int64
	var done sql.NullInt64
	err := sc.Scan(&d.Key, &d.AlertID, &d.OrgID, &d.Event, &d.Step, &d.Attempt, &d.Channel, &d.Target, &d.Status,
		&d.ProviderID, &d.Error, &lat, &created, &done)
	d.Latency, d.CreatedAt, d.DoneAt = time.Duration(lat), time.Unix(0, created).UTC(), fromNanos(done)
	return d, err
}

// BeginDelivery records d as pending unless its key is recorded.
func (s *Store) BeginDelivery(ctx context.Context, d store.Delivery) (store.Delivery, bool, error) {
	res, err := s.w.ExecContext(ctx, `INSERT INTO deliveries (`+deliveryCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', '', '', 0, ?, NULL) ON CONFLICT (key) DO NOTHING`,
		d.Key, d.AlertID, d.OrgID, d.Event, d.Step, d.Attempt, d.Channel, d.Target, orNow(d.CreatedAt).UnixNano())
	if err != nil {
		return store.Delivery{}, false, fmt.Errorf("begin delivery for %s: %w", d.AlertID, classify(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return store.Delivery{}, false, fmt.Errorf("begin delivery for %s: %w", d.AlertID, err)
	}
	got, err := scanDelivery(s.w.QueryRowContext(ctx, `SELECT `+deliveryCols+` FROM deliveries WHERE key = ?`, d.Key))
	if err != nil {
		return store.Delivery{}, false, fmt.Errorf("begin delivery for %s: %w", d.AlertID, err)
	}
	return got, n == 1, nil
}

// FinishDelivery records how a delivery ended.
func (s *Store) FinishDelivery(ctx context.Context, d store.Delivery) error {
	res, err := s.w.ExecContext(ctx, `UPDATE deliveries SET status = ?, provider_id = ?, error = ?, latency_ns = ?, done_at = ?
		WHERE key = ?`, string(d.Status), d.ProviderID, d.Error, int64(d.Latency), orNow(d.DoneAt).UnixNano(), d.Key)
	if err != nil {
		return fmt.Errorf("finish delivery for %s: %w", d.AlertID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("finish delivery for %s: %w", d.AlertID, err)
	} else if n == 0 {
		return fmt.Errorf("finish delivery for %s: %w", d.AlertID, store.ErrNotFound)
	}
	return nil
}

// ListDeliveries lists an alert's deliveries, oldest first.
func (s *Store) ListDeliveries(ctx context.Context, alertID string) ([]store.Delivery, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+deliveryCols+` FROM deliveries WHERE alert_id = ? ORDER BY created_at, key`, alertID)
	if err != nil {
		return nil, fmt.Errorf("list deliveries of %s: %w", alertID, err)
	}
	defer rows.Close()
	var out []store.Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, fmt.Errorf("list deliveries of %s: %w", alertID, err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list deliveries of %s: %w", alertID, err)
	}
	return out, nil
}
