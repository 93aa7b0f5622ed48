-- Vigil schema 15 (SQLite): per-organisation retention of personal data.
-- A period is a duration in nanoseconds; 0 means "the default" (see
-- internal/retention). No row: every period is the default.
CREATE TABLE retention_policies (
    org_id     TEXT PRIMARY KEY REFERENCES orgs (id),
    positions  INTEGER NOT NULL DEFAULT 0 CHECK (positions >= 0),
    events     INTEGER NOT NULL DEFAULT 0 CHECK (events >= 0),
    alerts     INTEGER NOT NULL DEFAULT 0 CHECK (alerts >= 0),
    audit      INTEGER NOT NULL DEFAULT 0 CHECK (audit >= 0),
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL DEFAULT ''
) STRICT;

-- The purge queries: the event log by organisation and time received, and
-- closed alerts by organisation and closing time. Positions are purged per
-- device through their key (device_id, device_time, msg_id).
CREATE INDEX events_org_received ON events (org_id, received_at);
CREATE INDEX alerts_org_closed ON alerts (org_id, closed_at)
    WHERE state IN ('resolved', 'cancelled');
