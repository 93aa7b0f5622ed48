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

// PutEscalationPolicy stores an organisation's policy for a kind.
func (s *Store) PutEscalationPolicy(ctx context.Context, orgID, kind, policy string, at time.Time) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO escalation_policies (org_id, kind, policy, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (org_id, kind) DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at`,
		orgID, kind, policy, orNow(at))
	if err != nil {
		return fmt.Errorf("put escalation policy %s/%s: %w", orgID, kind, classify(err))
	}
	return nil
}

// GetEscalationPolicy returns a policy or ErrNotFound.
func (s *Store) GetEscalationPolicy(ctx context.Context, orgID, kind string) (string, error) {
	var p string
	err := s.pool.QueryRow(ctx, `SELECT policy FROM escalation_policies WHERE org_id = $1 AND kind = $2`, orgID, kind).Scan(&p)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("get escalation policy %s/%s: %w", orgID, kind, store.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("get escalation policy %s/%s: %w", orgID, kind, err)
	}
	return p, nil
}

// ListEscalationPolicies returns an organisation's policies by kind.
func (s *Store) ListEscalationPolicies(ctx context.Context, orgID string) (map[string]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT kind, policy FROM escalation_policies WHERE org_id = $1`, orgID)
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

func scanEscalation(r pgx.Row) (store.Escalation, error) {
	var e store.Escalation
	var state string
	err := r.Scan(&e.AlertID, &e.OrgID, &e.Policy, &e.StartedAt, &e.Step, &e.Attempt, &e.NextAt, &state, &e.StopReason, &e.Version)
	e.State, e.StartedAt, e.NextAt = store.EscalationState(state), e.StartedAt.UTC(), e.NextAt.UTC()
	return e, err
}

// StartEscalation stores e unless the alert has a ladder.
func (s *Store) StartEscalation(ctx context.Context, e store.Escalation) (store.Escalation, bool, error) {
	if e.State == "" {
		e.State = store.EscalationActive
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO escalations (`+escalationCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1)
		ON CONFLICT (alert_id) DO NOTHING`,
		e.AlertID, e.OrgID, e.Policy, e.StartedAt, e.Step, e.Attempt, e.NextAt, string(e.State), e.StopReason)
	if err != nil {
		return store.Escalation{}, false, fmt.Errorf("start escalation of %s: %w", e.AlertID, classify(err))
	}
	got, err := s.GetEscalation(ctx, e.AlertID)
	if err != nil {
		return store.Escalation{}, false, fmt.Errorf("start escalation: %w", err)
	}
	return got, tag.RowsAffected() == 1, nil
}

// GetEscalation returns an alert's ladder or ErrNotFound.
func (s *Store) GetEscalation(ctx context.Context, alertID string) (store.Escalation, error) {
	e, err := scanEscalation(s.pool.QueryRow(ctx, `SELECT `+escalationCols+` FROM escalations WHERE alert_id = $1`, alertID))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Escalation{}, fmt.Errorf("get escalation of %s: %w", alertID, store.ErrNotFound)
	}
	if err != nil {
		return store.Escalation{}, fmt.Errorf("get escalation of %s: %w", alertID, err)
	}
	return e, nil
}

// UpdateEscalation writes the ladder's position if its version is current.
func (s *Store) UpdateEscalation(ctx context.Context, e store.Escalation) (store.Escalation, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE escalations SET step = $1, attempt = $2, next_at = $3, state = $4, stop_reason = $5,
		version = version + 1 WHERE alert_id = $6 AND version = $7`,
		e.Step, e.Attempt, e.NextAt, string(e.State), e.StopReason, e.AlertID, e.Version)
	if err != nil {
		return store.Escalation{}, fmt.Errorf("update escalation of %s: %w", e.AlertID, err)
	}
	if tag.RowsAffected() == 0 {
		if _, err := s.GetEscalation(ctx, e.AlertID); err != nil {
			return store.Escalation{}, fmt.Errorf("update escalation: %w", err)
		}
		return store.Escalation{}, fmt.Errorf("update escalation of %s: %w", e.AlertID, store.ErrConflict)
	}
	e.Version++
	return e, nil
}

// EachActiveEscalation streams the active ladders.
func (s *Store) EachActiveEscalation(ctx context.Context, fn func(store.Escalation) error) error {
	rows, err := s.pool.Query(ctx, `SELECT `+escalationCols+` FROM escalations WHERE state = 'active'`)
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

func scanDelivery(r pgx.Row) (store.Delivery, error) {
	var d store.Delivery
	var status string
	var lat int64
	var done pgtype.Timestamptz
	err := r.Scan(&d.Key, &d.AlertID, &d.OrgID, &d.Event, &d.Step, &d.Attempt, &d.Channel, &d.Target, &status,
		&d.ProviderID, &d.Error, &lat, &d.CreatedAt, &done)
	d.Status, d.Latency, d.CreatedAt, d.DoneAt = store.DeliveryStatus(status), time.Duration(lat), d.CreatedAt.UTC(), fromTS(done)
	return d, err
}

// BeginDelivery records d as pending unless its key is recorded.
func (s *Store) BeginDelivery(ctx context.Context, d store.Delivery) (store.Delivery, bool, error) {
	tag, err := s.pool.Exec(ctx, `INSERT INTO deliveries (`+deliveryCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', '', '', 0, $9, NULL) ON CONFLICT (key) DO NOTHING`,
		d.Key, d.AlertID, d.OrgID, d.Event, d.Step, d.Attempt, d.Channel, d.Target, orNow(d.CreatedAt))
	if err != nil {
		return store.Delivery{}, false, fmt.Errorf("begin delivery for %s: %w", d.AlertID, classify(err))
	}
	got, err := scanDelivery(s.pool.QueryRow(ctx, `SELECT `+deliveryCols+` FROM deliveries WHERE key = $1`, d.Key))
	if err != nil {
		return store.Delivery{}, false, fmt.Errorf("begin delivery for %s: %w", d.AlertID, err)
	}
	return got, tag.RowsAffected() == 1, nil
}

// FinishDelivery records how a delivery ended.
func (s *Store) FinishDelivery(ctx context.Context, d store.Delivery) error {
	tag, err := s.pool.Exec(ctx, `UPDATE deliveries SET status = $1, provider_id = $2, error = $3, latency_ns = $4, done_at = $5
		WHERE key = $6`, string(d.Status), d.ProviderID, d.Error, int64(d.Latency), orNow(d.DoneAt), d.Key)
	if err != nil {
		return fmt.Errorf("finish delivery for %s: %w", d.AlertID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("finish delivery for %s: %w", d.AlertID, store.ErrNotFound)
	}
	return nil
}

// ListDeliveries lists an alert's deliveries, oldest first.
func (s *Store) ListDeliveries(ctx context.Context, alertID string) ([]store.Delivery, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+deliveryCols+` FROM deliveries WHERE alert_id = $1 ORDER BY created_at, key`, alertID)
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
