-- Vigil schema 16 (PostgreSQL): an organisation's own OpenID Connect
-- identity provider. The client secret is sealed (AES-256-GCM,
-- internal/seal) by the server before it is stored.
CREATE TABLE org_sso (
    org_id        text PRIMARY KEY REFERENCES orgs (id),
    issuer        text NOT NULL,
    client_id     text NOT NULL,
    secret_sealed bytea,
    updated_at    timestamptz NOT NULL
);
