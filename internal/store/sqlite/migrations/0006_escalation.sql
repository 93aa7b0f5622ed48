-- Vigil schema 6 (SQLite): escalation. A policy per organisation and alert
-- kind ('*' for the rest), one ladder per alert with the step and repeat
-- that fire next, and every delivery recorded before it is sent.
CREATE TABLE escalation_policies (
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    kind       TEXT NOT NULL,
    policy     TEXT NOT NULL, -- JSON, read by internal/escalation
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, kind)
) STRICT;

CREATE TABLE escalations (
    alert_id    TEXT PRIMARY KEY REFERENCES alerts (id),
    org_id      TEXT NOT NULL,
    policy      TEXT NOT NULL, -- the policy as it was when the ladder started
    started_at  INTEGER NOT NULL,
    step        INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    next_at     INTEGER NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('active', 'stopped', 'exhausted')),
    stop_reason TEXT NOT NULL DEFAULT '',
    version     INTEGER NOT NULL DEFAULT 1
) STRICT;
CREATE INDEX escalations_active ON escalations (next_at) WHERE state = 'active';

CREATE TABLE deliveries (
    key         TEXT PRIMARY KEY, -- alert, event, step, repeat, channel, target
    alert_id    TEXT NOT NULL REFERENCES alerts (id),
    org_id      TEXT NOT NULL,
    event       TEXT NOT NULL,
    step        INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    channel     TEXT NOT NULL,
    target      TEXT NOT NULL, -- an address: personal data
    status      TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    provider_id TEXT NOT NULL DEFAULT '',
    error       TEXT NOT NULL DEFAULT '',
    latency_ns  INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    done_at     INTEGER
) STRICT;
CREATE INDEX deliveries_alert ON deliveries (alert_id, created_at);
