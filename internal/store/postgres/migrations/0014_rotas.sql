-- Vigil schema 14 (PostgreSQL): on-call rotas, named per organisation and
-- reached as escalation recipients. A rota has a time zone and a weekly
-- pattern of shifts (JSON, read by internal/escalation); overrides are
-- dated cover (a user on call from from_at to to_at) that replaces the
-- pattern while it lasts.
CREATE TABLE rotas (
    org_id     text NOT NULL REFERENCES orgs (id),
    name       text NOT NULL,
    time_zone  text NOT NULL, -- IANA, e.g. Europe/London
    shifts     text NOT NULL, -- JSON array of {days, start, end, users}
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, name)
);

CREATE TABLE rota_overrides (
    id         text PRIMARY KEY,
    org_id     text NOT NULL,
    rota       text NOT NULL,
    user_id    text NOT NULL REFERENCES users (id),
    from_at    timestamptz NOT NULL,
    to_at      timestamptz NOT NULL CHECK (to_at > from_at),
    created_at timestamptz NOT NULL,
    FOREIGN KEY (org_id, rota) REFERENCES rotas (org_id, name) ON DELETE CASCADE
);
CREATE INDEX rota_overrides_rota ON rota_overrides (org_id, rota, from_at);
