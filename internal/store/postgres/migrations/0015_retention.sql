-- Vigil schema 15 (PostgreSQL): per-organisation retention of personal
-- data. A period is a duration in nanoseconds; 0 means "the default" (see
-- internal/retention). No row: every period is the default.
CREATE TABLE retention_policies (
    org_id     text PRIMARY KEY REFERENCES orgs (id),
    positions  bigint NOT NULL DEFAULT 0 CHECK (positions >= 0),
    events     bigint NOT NULL DEFAULT 0 CHECK (events >= 0),
    alerts     bigint NOT NULL DEFAULT 0 CHECK (alerts >= 0),
    audit      bigint NOT NULL DEFAULT 0 CHECK (audit >= 0),
    updated_at timestamptz NOT NULL,
    updated_by text NOT NULL DEFAULT ''
);

-- The purge queries: the event log by organisation and time received, and
-- closed alerts by organisation and closing time. Positions are purged per
-- device through their key (device_id, device_time, msg_id).
CREATE INDEX events_org_received ON events (org_id, received_at);
CREATE INDEX alerts_org_closed ON alerts (org_id, closed_at)
    WHERE state IN ('resolved', 'cancelled');
