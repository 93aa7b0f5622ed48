-- Vigil schema 16 (SQLite): an organisation's own OpenID Connect identity
-- provider. The client secret is sealed (AES-256-GCM, internal/seal) by
-- the server before it is stored.
CREATE TABLE org_sso (
    org_id        TEXT PRIMARY KEY REFERENCES orgs (id),
    issuer        TEXT NOT NULL,
    client_id     TEXT NOT NULL,
    secret_sealed BLOB,
    updated_at    INTEGER NOT NULL
) STRICT;
