-- Vigil schema 6 (PostgreSQL): escalation. A policy per organisation and
-- alert kind ('*' for the rest), one ladder per alert with the step and
-- repeat that fire next, and every delivery recorded before it is sent.
CREATE TABLE escalation_policies (
    org_id     text NOT NULL REFERENCES orgs (id),
    kind       text NOT NULL,
    policy     text NOT NULL, -- JSON, read by internal/escalation
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, kind)
);

CREATE TABLE escalations (
    alert_id    text PRIMARY KEY REFERENCES alerts (id),
    org_id      text NOT NULL,
    policy      text NOT NULL, -- the policy as it was when the ladder started
    started_at  timestamptz NOT NULL,
    step        integer NOT NULL,
    attempt     integer NOT NULL,
    next_at     timestamptz NOT NULL,
    state       text NOT NULL CHECK (state IN ('active', 'stopped', 'exhausted')),
    stop_reason text NOT NULL DEFAULT '',
    version     bigint NOT NULL DEFAULT 1
);
CREATE INDEX escalations_active ON escalations (next_at) WHERE state = 'active';

CREATE TABLE deliveries (
    key         text PRIMARY KEY, -- alert, event, step, repeat, channel, target
    alert_id    text NOT NULL REFERENCES alerts (id),
    org_id      text NOT NULL,
    event       text NOT NULL,
    step        integer NOT NULL,
    attempt     integer NOT NULL,
    channel     text NOT NULL,
    target      text NOT NULL, -- an address: personal data
    status      text NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    provider_id text NOT NULL DEFAULT '',
    error       text NOT NULL DEFAULT '',
    latency_ns  bigint NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL,
    done_at     timestamptz
);
CREATE INDEX deliveries_alert ON deliveries (alert_id, created_at);
