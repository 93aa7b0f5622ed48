package store

import (
	"context"
	"time"
)

// OrgSSO is an organisation's own OpenID Connect identity provider: its
// members may sign in through it. The client secret is sealed by the
// caller (internal/seal); the store never sees it in clear.
type OrgSSO struct {
	OrgID        string
	Issuer       string
	ClientID     string
	SecretSealed []byte // nil for a public client (PKCE only)
	UpdatedAt    time.Time
}

// OrgSSOStore keeps organisations' identity providers; part of Store.
type OrgSSOStore interface {
	// PutOrgSSO sets or replaces an organisation's provider; unknown
	// organisation: ErrNotFound.
	PutOrgSSO(ctx context.Context, s OrgSSO) error
	// GetOrgSSO: none configured: ErrNotFound.
	GetOrgSSO(ctx context.Context, orgID string) (OrgSSO, error)
	// DeleteOrgSSO removes it; none configured: ErrNotFound.
	DeleteOrgSSO(ctx context.Context, orgID string) error
}
