package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"vigil/internal/store"
)

// PutOrgSSO sets an organisation's identity provider; see store.OrgSSOStore.
func (s *Store) PutOrgSSO(ctx context.Context, o store.OrgSSO) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO org_sso (org_id, issuer, client_id, secret_sealed, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (org_id) DO UPDATE SET issuer = excluded.issuer, client_id = excluded.client_id,
		secret_sealed = excluded.secret_sealed, updated_at = excluded.updated_at`,
		o.OrgID, o.Issuer, o.ClientID, o.SecretSealed, orNow(o.UpdatedAt).UnixNano())
	if err != nil {
		return fmt.Errorf("put sso of %s: %w", o.OrgID, classify(err))
	}
	return nil
}

// GetOrgSSO reads an organisation's identity provider; see store.OrgSSOStore.
func (s *Store) GetOrgSSO(ctx context.Context, orgID string) (store.OrgSSO, error) {
	o := store.OrgSSO{OrgID: orgID}
	var at int64
	err := s.r.QueryRowContext(ctx, `SELECT issuer, client_id, secret_sealed, updated_at FROM org_sso WHERE org_id = ?`, orgID).
		Scan(&o.Issuer, &o.ClientID, &o.SecretSealed, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return store.OrgSSO{}, fmt.Errorf("get sso of %s: %w", orgID, store.ErrNotFound)
	}
	if err != nil {
		return store.OrgSSO{}, fmt.Errorf("get sso of %s: %w", orgID, err)
	}
	o.UpdatedAt = time.Unix(0, at).UTC()
	return o, nil
}

// DeleteOrgSSO removes an organisation's identity provider; see
// store.OrgSSOStore.
func (s *Store) DeleteOrgSSO(ctx context.Context, orgID string) error {
	n, err := s.execCount(ctx, "delete sso of "+orgID, `DELETE FROM org_sso WHERE org_id = ?`, orgID)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("delete sso of %s: %w", orgID, store.ErrNotFound)
	}
	return nil
}
