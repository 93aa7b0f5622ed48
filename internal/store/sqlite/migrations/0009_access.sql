-- Vigil schema 9 (SQLite): people who sign in and what they may do.
-- Users (organisation staff, provider staff, carers), their roles per
-- organisation, browser sessions and API tokens stored only as hashes,
-- MFA material (the TOTP seed sealed with the install's key, recovery codes
-- hashed, WebAuthn credentials), password resets, emergency contacts,
-- teams, and the hash-chained audit log with its signed checkpoints.
-- Times here are Unix nanoseconds (0: never) in both dialects.
ALTER TABLE orgs ADD COLUMN require_webauthn INTEGER NOT NULL DEFAULT 0;
ALTER TABLE people ADD COLUMN medical_notes TEXT NOT NULL DEFAULT '';

CREATE TABLE users (
    id                  TEXT PRIMARY KEY,
    email               TEXT NOT NULL UNIQUE, -- lower-cased; personal data
    name                TEXT NOT NULL,
    password_hash       TEXT NOT NULL DEFAULT '', -- PHC argon2id; '' for SSO-only users
    provider            INTEGER NOT NULL DEFAULT 0, -- 1: managed-service provider staff
    person_id           TEXT REFERENCES people (id), -- the worker this user is, if any
    totp_seed           BLOB, -- sealed; NULL when not enrolled
    totp_last_step      INTEGER NOT NULL DEFAULT 0, -- highest RFC 6238 step accepted
    oidc_subject        TEXT UNIQUE, -- issuer + subject of a linked IdP account
    created_at          INTEGER NOT NULL,
    password_changed_at INTEGER NOT NULL DEFAULT 0,
    disabled_at         INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE memberships (
    user_id    TEXT NOT NULL REFERENCES users (id),
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    role       TEXT NOT NULL CHECK (role IN ('admin', 'supervisor', 'responder', 'auditor', 'worker', 'carer', 'provider')),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, org_id)
) STRICT;
CREATE INDEX memberships_org ON memberships (org_id, user_id);

CREATE TABLE carer_links (
    user_id   TEXT NOT NULL REFERENCES users (id),
    person_id TEXT NOT NULL REFERENCES people (id),
    PRIMARY KEY (user_id, person_id)
) STRICT;

CREATE TABLE teams (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (org_id, name)
) STRICT;

CREATE TABLE team_members (
    team_id TEXT NOT NULL REFERENCES teams (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    PRIMARY KEY (team_id, user_id)
) STRICT;

CREATE TABLE contacts (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    person_id  TEXT NOT NULL REFERENCES people (id),
    name       TEXT NOT NULL,
    relation   TEXT NOT NULL DEFAULT '',
    phone      TEXT NOT NULL DEFAULT '',
    email      TEXT NOT NULL DEFAULT '',
    priority   INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX contacts_person ON contacts (person_id, priority);

CREATE TABLE web_sessions (
    id_hash      BLOB PRIMARY KEY, -- SHA-256 of the cookie value
    user_id      TEXT NOT NULL REFERENCES users (id),
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL, -- the absolute lifetime
    mfa_at       INTEGER NOT NULL DEFAULT 0, -- 0: password only so far
    mfa_method   TEXT NOT NULL DEFAULT '',
    source_ip    TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX web_sessions_user ON web_sessions (user_id);

CREATE TABLE recovery_codes (
    user_id   TEXT NOT NULL REFERENCES users (id),
    code_hash BLOB NOT NULL,
    used_at   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, code_hash)
) STRICT;

CREATE TABLE webauthn_credentials (
    id           BLOB PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id),
    name         TEXT NOT NULL DEFAULT '',
    data         TEXT NOT NULL, -- the credential as JSON (public key, sign count, flags)
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX webauthn_credentials_user ON webauthn_credentials (user_id);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY, -- the public part of the token
    org_id       TEXT NOT NULL REFERENCES orgs (id),
    name         TEXT NOT NULL,
    secret_hash  BLOB NOT NULL,
    permissions  TEXT NOT NULL, -- space-separated permission names
    created_by   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    revoked_at   INTEGER NOT NULL DEFAULT 0,
    last_used_at INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX api_tokens_org ON api_tokens (org_id);

CREATE TABLE reset_tokens (
    token_hash BLOB PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY, -- 1, 2, 3, … without gaps
    at          INTEGER NOT NULL,
    org_id      TEXT NOT NULL DEFAULT '',
    actor       TEXT NOT NULL, -- user id, "token:<id>", "system", "bootstrap"
    source_ip   TEXT NOT NULL DEFAULT '',
    action      TEXT NOT NULL,
    object_type TEXT NOT NULL DEFAULT '',
    object_id   TEXT NOT NULL DEFAULT '',
    outcome     TEXT NOT NULL,
    severity    TEXT NOT NULL,
    details     TEXT NOT NULL DEFAULT '', -- JSON; pseudonymous
    prev_hash   BLOB NOT NULL,
    hash        BLOB NOT NULL
) STRICT;
CREATE INDEX audit_log_org ON audit_log (org_id, seq);

CREATE TABLE audit_checkpoints (
    seq       INTEGER PRIMARY KEY REFERENCES audit_log (seq),
    at        INTEGER NOT NULL,
    hash      BLOB NOT NULL,
    signature BLOB NOT NULL
) STRICT;
