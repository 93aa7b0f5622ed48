package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"vigil/internal/store"
)

// PutRota creates or replaces a rota's time zone and shifts.
func (s *Store) PutRota(ctx context.Context, r store.Rota) error {
	shifts, err := json.Marshal(r.Shifts)
	if err != nil {
		return fmt.Errorf("put rota %s/%s: %w", r.OrgID, r.Name, err)
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO rotas (org_id, name, time_zone, shifts, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (org_id, name) DO UPDATE SET time_zone = excluded.time_zone, shifts = excluded.shifts, updated_at = excluded.updated_at`,
		r.OrgID, r.Name, r.TimeZone, string(shifts), orNow(r.UpdatedAt).UnixNano())
	if err != nil {
		return fmt.Errorf("put rota %s/%s: %w", r.OrgID, r.Name, classify(err))
	}
	return nil
}

// GetRota returns a rota with its overrides, or ErrNotFound.
func (s *Store) GetRota(ctx context.Context, orgID, name string) (store.Rota, error) {
	rs, err := s.rotas(ctx, orgID, name)
	if err != nil {
		return store.Rota{}, fmt.Errorf("get rota %s/%s: %w", orgID, name, err)
	}
	if len(rs) == 0 {
		return store.Rota{}, fmt.Errorf("get rota %s/%s: %w", orgID, name, store.ErrNotFound)
	}
	return rs[0], nil
}

// ListRotas returns an organisation's rotas by name, with overrides.
func (s *Store) ListRotas(ctx context.Context, orgID string) ([]store.Rota, error) {
	rs, err := s.rotas(ctx, orgID, "")
	if err != nil {
		return nil, fmt.Errorf("list rotas of %s: %w", orgID, err)
	}
	return rs, nil
}

// rotas reads an organisation's rotas (one if name is set) and their
// overrides in one read transaction.
func (s *Store) rotas(ctx context.Context, orgID, name string) ([]store.Rota, error) {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT name, time_zone, shifts, updated_at FROM rotas
		WHERE org_id = ? AND (? = '' OR name = ?) ORDER BY name`, orgID, name, name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Rota
	at := map[string]int{}
	for rows.Next() {
		r := store.Rota{OrgID: orgID}
		var shifts string
		var updated int64
		if err := rows.Scan(&r.Name, &r.TimeZone, &shifts, &updated); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(shifts), &r.Shifts); err != nil {
			return nil, fmt.Errorf("shifts of %s: %w", r.Name, err)
		}
		r.UpdatedAt = fromEpochNS(updated)
		at[r.Name] = len(out)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	orows, err := tx.QueryContext(ctx, `SELECT id, rota, user_id, from_at, to_at, created_at FROM rota_overrides
		WHERE org_id = ? AND (? = '' OR rota = ?) ORDER BY from_at, to_at, id`, orgID, name, name)
	if err != nil {
		return nil, err
	}
	defer orows.Close()
	for orows.Next() {
		o := store.RotaOverride{OrgID: orgID}
		var from, to, created int64
		if err := orows.Scan(&o.ID, &o.Rota, &o.UserID, &from, &to, &created); err != nil {
			return nil, err
		}
		o.From, o.To, o.CreatedAt = fromEpochNS(from), fromEpochNS(to), fromEpochNS(created)
		if i, ok := at[o.Rota]; ok {
			out[i].Overrides = append(out[i].Overrides, o)
		}
	}
	return out, orows.Err()
}

// DeleteRota removes a rota and (by cascade) its overrides.
func (s *Store) DeleteRota(ctx context.Context, orgID, name string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM rotas WHERE org_id = ? AND name = ?`, orgID, name)
	if err != nil {
		return fmt.Errorf("delete rota %s/%s: %w", orgID, name, err)
	}
	return rotaRowGone(res, fmt.Sprintf("delete rota %s/%s", orgID, name))
}

// AddRotaOverride stores dated cover on a rota.
func (s *Store) AddRotaOverride(ctx context.Context, o store.RotaOverride) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO rota_overrides (id, org_id, rota, user_id, from_at, to_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, o.ID, o.OrgID, o.Rota, o.UserID, o.From.UnixNano(), o.To.UnixNano(), orNow(o.CreatedAt).UnixNano())
	if err != nil {
		return fmt.Errorf("add override %s to rota %s/%s: %w", o.ID, o.OrgID, o.Rota, classify(err))
	}
	return nil
}

// DeleteRotaOverride removes one of a rota's overrides.
func (s *Store) DeleteRotaOverride(ctx context.Context, orgID, rota, id string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM rota_overrides WHERE org_id = ? AND rota = ? AND id = ?`, orgID, rota, id)
	if err != nil {
		return fmt.Errorf("delete override %s of rota %s/%s: %w", id, orgID, rota, err)
	}
	return rotaRowGone(res, fmt.Sprintf("delete override %s of rota %s/%s", id, orgID, rota))
}

func rotaRowGone(res sql.Result, op string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	return nil
}
