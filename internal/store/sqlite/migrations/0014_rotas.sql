-- Vigil schema 14 (SQLite): on-call rotas, named per organisation and
-- reached as escalation recipients. A rota has a time zone and a weekly
-- pattern of shifts (JSON, read by internal/escalation); overrides are
-- dated cover (a user on call from from_at to to_at, Unix nanoseconds)
-- that replaces the pattern while it lasts.
CREATE TABLE rotas (
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    name       TEXT NOT NULL,
    time_zone  TEXT NOT NULL, -- IANA, e.g. Europe/London
    shifts     TEXT NOT NULL, -- JSON array of {days, start, end, users}
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, name)
) STRICT;

CREATE TABLE rota_overrides (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL,
    rota       TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id),
    from_at    INTEGER NOT NULL,
    to_at      INTEGER NOT NULL CHECK (to_at > from_at),
    created_at INTEGER NOT NULL,
    FOREIGN KEY (org_id, rota) REFERENCES rotas (org_id, name) ON DELETE CASCADE
) STRICT;
CREATE INDEX rota_overrides_rota ON rota_overrides (org_id, rota, from_at);
