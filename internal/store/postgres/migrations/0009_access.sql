-- Vigil schema 9 (PostgreSQL): people who sign in and what they may do.
-- Users (organisation staff, provider staff, carers), their roles per
-- organisation, browser sessions and API tokens stored only as hashes,
-- MFA material (the TOTP seed sealed with the install's key, recovery codes
-- hashed, WebAuthn credentials), password resets, emergency contacts,
-- teams, and the hash-chained audit log with its signed checkpoints.
-- Times here are Unix nanoseconds (0: never) in both dialects.
ALTER TABLE orgs ADD COLUMN require_webauthn boolean NOT NULL DEFAULT false;
ALTER TABLE people ADD COLUMN medical_notes text NOT NULL DEFAULT '';

CREATE TABLE users (
    id                  text PRIMARY KEY,
    email               text NOT NULL UNIQUE, -- lower-cased; personal data
    name                text NOT NULL,
    password_hash       text NOT NULL DEFAULT '', -- PHC argon2id; '' for SSO-only users
    provider            boolean NOT NULL DEFAULT false, -- managed-service provider staff
    person_id           text REFERENCES people (id), -- the worker this user is, if any
    totp_seed           bytea, -- sealed; NULL when not enrolled
    totp_last_step      bigint NOT NULL DEFAULT 0, -- highest RFC 6238 step accepted
    oidc_subject        text UNIQUE, -- issuer + subject of a linked IdP account
    created_at          bigint NOT NULL,
    password_changed_at bigint NOT NULL DEFAULT 0,
    disabled_at         bigint NOT NULL DEFAULT 0
);

CREATE TABLE memberships (
    user_id    text NOT NULL REFERENCES users (id),
    org_id     text NOT NULL REFERENCES orgs (id),
    role       text NOT NULL CHECK (role IN ('admin', 'supervisor', 'responder', 'auditor', 'worker', 'carer', 'provider')),
    created_at bigint NOT NULL,
    PRIMARY KEY (user_id, org_id)
);
CREATE INDEX memberships_org ON memberships (org_id, user_id);

CREATE TABLE carer_links (
    user_id   text NOT NULL REFERENCES users (id),
    person_id text NOT NULL REFERENCES people (id),
    PRIMARY KEY (user_id, person_id)
);

CREATE TABLE teams (
    id         text PRIMARY KEY,
    org_id     text NOT NULL REFERENCES orgs (id),
    name       text NOT NULL,
    created_at bigint NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE team_members (
    team_id text NOT NULL REFERENCES teams (id),
    user_id text NOT NULL REFERENCES users (id),
    PRIMARY KEY (team_id, user_id)
);

CREATE TABLE contacts (
    id         text PRIMARY KEY,
    org_id     text NOT NULL REFERENCES orgs (id),
    person_id  text NOT NULL REFERENCES people (id),
    name       text NOT NULL,
    relation   text NOT NULL DEFAULT '',
    phone      text NOT NULL DEFAULT '',
    email      text NOT NULL DEFAULT '',
    priority   bigint NOT NULL DEFAULT 0,
    created_at bigint NOT NULL
);
CREATE INDEX contacts_person ON contacts (person_id, priority);

CREATE TABLE web_sessions (
    id_hash      bytea PRIMARY KEY, -- SHA-256 of the cookie value
    user_id      text NOT NULL REFERENCES users (id),
    created_at   bigint NOT NULL,
    last_seen_at bigint NOT NULL,
    expires_at   bigint NOT NULL, -- the absolute lifetime
    mfa_at       bigint NOT NULL DEFAULT 0, -- 0: password only so far
    mfa_method   text NOT NULL DEFAULT '',
    source_ip    text NOT NULL DEFAULT ''
);
CREATE INDEX web_sessions_user ON web_sessions (user_id);

CREATE TABLE recovery_codes (
    user_id   text NOT NULL REFERENCES users (id),
    code_hash bytea NOT NULL,
    used_at   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE webauthn_credentials (
    id           bytea PRIMARY KEY,
    user_id      text NOT NULL REFERENCES users (id),
    name         text NOT NULL DEFAULT '',
    data         text NOT NULL, -- the credential as JSON (public key, sign count, flags)
    created_at   bigint NOT NULL,
    last_used_at bigint NOT NULL DEFAULT 0
);
CREATE INDEX webauthn_credentials_user ON webauthn_credentials (user_id);

CREATE TABLE api_tokens (
    id           text PRIMARY KEY, -- the public part of the token
    org_id       text NOT NULL REFERENCES orgs (id),
    name         text NOT NULL,
    secret_hash  bytea NOT NULL,
    permissions  text NOT NULL, -- space-separated permission names
    created_by   text NOT NULL,
    created_at   bigint NOT NULL,
    expires_at   bigint NOT NULL,
    revoked_at   bigint NOT NULL DEFAULT 0,
    last_used_at bigint NOT NULL DEFAULT 0
);
CREATE INDEX api_tokens_org ON api_tokens (org_id);

CREATE TABLE reset_tokens (
    token_hash bytea PRIMARY KEY,
    user_id    text NOT NULL REFERENCES users (id),
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    used_at    bigint NOT NULL DEFAULT 0
);

CREATE TABLE audit_log (
    seq         bigint PRIMARY KEY, -- 1, 2, 3, … without gaps
    at          bigint NOT NULL,
    org_id      text NOT NULL DEFAULT '',
    actor       text NOT NULL, -- user id, "token:<id>", "system", "bootstrap"
    source_ip   text NOT NULL DEFAULT '',
    action      text NOT NULL,
    object_type text NOT NULL DEFAULT '',
    object_id   text NOT NULL DEFAULT '',
    outcome     text NOT NULL,
    severity    text NOT NULL,
    details     text NOT NULL DEFAULT '', -- JSON; pseudonymous
    prev_hash   bytea NOT NULL,
    hash        bytea NOT NULL
);
CREATE INDEX audit_log_org ON audit_log (org_id, seq);

CREATE TABLE audit_checkpoints (
    seq       bigint PRIMARY KEY REFERENCES audit_log (seq),
    at        bigint NOT NULL,
    hash      bytea NOT NULL,
    signature bytea NOT NULL
);
