package sqlite

import (
	"context"
	"fmt"
	"time"

	"vigil/internal/store"
)

// CreateBreakGlass stores an emergency grant.
func (s *Store) CreateBreakGlass(ctx context.Context, g store.BreakGlass) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO break_glass (id, org_id, user_id, person_id, reason, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		g.ID, g.OrgID, g.UserID, g.PersonID, g.Reason, epochNS(orNow(g.CreatedAt)), epochNS(g.ExpiresAt))
	if err != nil {
		return fmt.Errorf("create break-glass grant %s: %w", g.ID, classify(err))
	}
	return nil
}

// ListBreakGlass lists a user's grants still valid at at, oldest first.
func (s *Store) ListBreakGlass(ctx context.Context, userID string, at time.Time) ([]store.BreakGlass, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, org_id, user_id, person_id, reason, created_at, expires_at FROM break_glass
		WHERE user_id = ? AND expires_at > ? ORDER BY created_at, id`, userID, epochNS(at))
	if err != nil {
		return nil, fmt.Errorf("list break-glass grants of %s: %w", userID, err)
	}
	defer rows.Close()
	var out []store.BreakGlass
	for rows.Next() {
		var g store.BreakGlass
		var c, e int64
		if err := rows.Scan(&g.ID, &g.OrgID, &g.UserID, &g.PersonID, &g.Reason, &c, &e); err != nil {
			return nil, fmt.Errorf("list break-glass grants of %s: %w", userID, err)
		}
		g.CreatedAt, g.ExpiresAt = fromEpochNS(c), fromEpochNS(e)
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list break-glass grants of %s: %w", userID, err)
	}
	return out, nil
}
