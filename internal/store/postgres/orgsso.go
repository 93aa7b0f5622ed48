package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"vigil/internal/store"
)

// PutOrgSSO sets an organisation's identity provider; see store.OrgSSOStore.
func (s *Store) PutOrgSSO(ctx context.Context, o store.OrgSSO) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO org_sso (org_id, issuer, client_id, secret_sealed, updated_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (org_id) DO UPDATE SET issuer = excluded.issuer, client_id = excluded.client_id,
		secret_sealed = excluded.secret_sealed, updated_at = excluded.updated_at`,
		o.OrgID, o.Issuer, o.ClientID, o.SecretSealed, orNow(o.UpdatedAt))
	if err != nil {
		return fmt.Errorf("put sso of %s: %w", o.OrgID, classify(err))
	}
	return nil
}

// GetOrgSSO reads an organisation's identity provider; see store.OrgSSOStore.
func (s *Store) GetOrgSSO(ctx context.Context, orgID string) (store.OrgSSO, error) {
	o := store.OrgSSO{OrgID: orgID}
	err := s.pool.QueryRow(ctx, `SELECT issuer, client_id, secret_sealed, updated_at FROM org_sso WHERE org_id = $1`, orgID).
		Scan(&o.Issuer, &o.ClientID, &o.SecretSealed, &o.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.OrgSSO{}, fmt.Errorf("get sso of %s: %w", orgID, store.ErrNotFound)
	}
	if err != nil {
		return store.OrgSSO{}, fmt.Errorf("get sso of %s: %w", orgID, err)
	}
	o.UpdatedAt = o.UpdatedAt.UTC()
	return o, nil
}

// DeleteOrgSSO removes an organisation's identity provider; see
// store.OrgSSOStore.
func (s *Store) DeleteOrgSSO(ctx context.Context, orgID string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM org_sso WHERE org_id = $1`, orgID)
	if err != nil {
		return fmt.Errorf("delete sso of %s: %w", orgID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete sso of %s: %w", orgID, store.ErrNotFound)
	}
	return nil
}
