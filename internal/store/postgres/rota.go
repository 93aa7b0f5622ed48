package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"vigil/internal/store"
)

// PutRota creates or replaces a rota's time zone and shifts.
func (s *Store) PutRota(ctx context.Context, r store.Rota) error {
	shifts, err := json.Marshal(r.Shifts)
	if err != nil {
		return fmt.Errorf("put rota %s/%s: %w", r.OrgID, r.Name, err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO rotas (org_id, name, time_zone, shifts, updated_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (org_id, name) DO UPDATE SET time_zone = excluded.time_zone, shifts = excluded.shifts, updated_at = excluded.updated_at`,
		r.OrgID, r.Name, r.TimeZone, string(shifts), orNow(r.UpdatedAt))
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
// overrides as of one snapshot.
func (s *Store) rotas(ctx context.Context, orgID, name string) ([]store.Rota, error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	rows, err := tx.Query(ctx, `SELECT name, time_zone, shifts, updated_at FROM rotas
		WHERE org_id = $1 AND ($2 = '' OR name = $2) ORDER BY name COLLATE "C"`, orgID, name)
	if err != nil {
		return nil, err
	}
	var out []store.Rota
	at := map[string]int{}
	for rows.Next() {
		r := store.Rota{OrgID: orgID}
		var shifts string
		if err := rows.Scan(&r.Name, &r.TimeZone, &shifts, &r.UpdatedAt); err != nil {
			rows.Close()
			return nil, err
		}
		if err := json.Unmarshal([]byte(shifts), &r.Shifts); err != nil {
			rows.Close()
			return nil, fmt.Errorf("shifts of %s: %w", r.Name, err)
		}
		r.UpdatedAt = r.UpdatedAt.UTC()
		at[r.Name] = len(out)
		out = append(out, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	orows, err := tx.Query(ctx, `SELECT id, rota, user_id, from_at, to_at, created_at FROM rota_overrides
		WHERE org_id = $1 AND ($2 = '' OR rota = $2) ORDER BY from_at, to_at, id COLLATE "C"`, orgID, name)
	if err != nil {
		return nil, err
	}
	defer orows.Close()
	for orows.Next() {
		o := store.RotaOverride{OrgID: orgID}
		var from, to, created time.Time
		if err := orows.Scan(&o.ID, &o.Rota, &o.UserID, &from, &to, &created); err != nil {
			return nil, err
		}
		o.From, o.To, o.CreatedAt = from.UTC(), to.UTC(), created.UTC()
		if i, ok := at[o.Rota]; ok {
			out[i].Overrides = append(out[i].Overrides, o)
		}
	}
	return out, orows.Err()
}

// DeleteRota removes a rota and (by cascade) its overrides.
func (s *Store) DeleteRota(ctx context.Context, orgID, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM rotas WHERE org_id = $1 AND name = $2`, orgID, name)
	return rotaRowGone(tag, err, fmt.Sprintf("delete rota %s/%s", orgID, name))
}

// AddRotaOverride stores dated cover on a rota.
func (s *Store) AddRotaOverride(ctx context.Context, o store.RotaOverride) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO rota_overrides (id, org_id, rota, user_id, from_at, to_at, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, o.ID, o.OrgID, o.Rota, o.UserID, o.From, o.To, orNow(o.CreatedAt))
	if err != nil {
		return fmt.Errorf("add override %s to rota %s/%s: %w", o.ID, o.OrgID, o.Rota, classify(err))
	}
	return nil
}

// DeleteRotaOverride removes one of a rota's overrides.
func (s *Store) DeleteRotaOverride(ctx context.Context, orgID, rota, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM rota_overrides WHERE org_id = $1 AND rota = $2 AND id = $3`, orgID, rota, id)
	return rotaRowGone(tag, err, fmt.Sprintf("delete override %s of rota %s/%s", id, orgID, rota))
}

func rotaRowGone(tag pgconn.CommandTag, err error, op string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	return nil
}
