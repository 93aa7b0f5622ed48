-- Vigil schema 5 (SQLite): the safety engine's tables. The alerts and
-- alert_events tables of schema 1 were placeholders that nothing wrote;
-- they are replaced.
DROP TABLE alert_events;
DROP TABLE alerts;

-- Where workers' positions may be kept: 'on_duty' keeps a worker's
-- positions only during an active session or an open alert; 'always'
-- keeps them all. Residents' positions are always kept.
ALTER TABLE orgs ADD COLUMN location_policy TEXT NOT NULL DEFAULT 'on_duty'
    CHECK (location_policy IN ('on_duty', 'always'));

-- A person's duress code (given instead of a cancel PIN): SHA-256 over the
-- person id and the code, NULL when none is set.
ALTER TABLE people ADD COLUMN duress_code_hash BLOB;

CREATE TABLE alerts (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES orgs (id),
    device_id       TEXT NOT NULL DEFAULT '',
    person_id       TEXT NOT NULL DEFAULT '',
    session_id      TEXT NOT NULL DEFAULT '',
    kind            TEXT NOT NULL,
    severity        TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'raised', 'acknowledged', 'resolved', 'cancelled')),
    dedup_key       TEXT NOT NULL,
    raised_at       INTEGER NOT NULL,
    cause_time      INTEGER NOT NULL,
    pending_until   INTEGER,
    cancel_until    INTEGER,
    acknowledged_at INTEGER,
    acknowledged_by TEXT NOT NULL DEFAULT '',
    closed_at       INTEGER,
    closed_by       TEXT NOT NULL DEFAULT '',
    outcome         TEXT NOT NULL DEFAULT '',
    outcome_note    TEXT NOT NULL DEFAULT '',
    note            TEXT NOT NULL DEFAULT '',
    detail          TEXT NOT NULL DEFAULT '',
    lat             REAL,
    lon             REAL,
    accuracy_m      REAL,
    fix_time        INTEGER,
    position_time   INTEGER,
    duress          INTEGER NOT NULL DEFAULT 0,
    late            INTEGER NOT NULL DEFAULT 0,
    version         INTEGER NOT NULL DEFAULT 1,
    updated_at      INTEGER NOT NULL
) STRICT;
-- At most one open alert per cause.
CREATE UNIQUE INDEX alerts_open_dedup ON alerts (dedup_key)
    WHERE state IN ('pending', 'raised', 'acknowledged');
CREATE INDEX alerts_org_raised ON alerts (org_id, raised_at);
CREATE INDEX alerts_person_raised ON alerts (person_id, raised_at);
CREATE INDEX alerts_device_raised ON alerts (device_id, raised_at);
CREATE INDEX alerts_open ON alerts (state) WHERE state IN ('pending', 'raised', 'acknowledged');

CREATE TABLE alert_entries (
    alert_id TEXT NOT NULL REFERENCES alerts (id),
    seq      INTEGER NOT NULL,
    at       INTEGER NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    detail   TEXT NOT NULL DEFAULT '',
    cause    TEXT,
    PRIMARY KEY (alert_id, seq)
) STRICT, WITHOUT ROWID;
-- A cause (an event, a deadline) is recorded once across all alerts.
CREATE UNIQUE INDEX alert_entries_cause ON alert_entries (cause) WHERE cause IS NOT NULL;

CREATE TABLE sessions (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES orgs (id),
    person_id        TEXT NOT NULL,
    device_id        TEXT NOT NULL DEFAULT '',
    preset           TEXT NOT NULL DEFAULT '',
    note             TEXT NOT NULL DEFAULT '',
    started_at       INTEGER NOT NULL,
    expected_end     INTEGER NOT NULL,
    checkin_interval INTEGER NOT NULL, -- nanoseconds
    grace            INTEGER NOT NULL, -- nanoseconds
    last_checkin     INTEGER NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('active', 'ended')),
    ended_at         INTEGER,
    ended_by         TEXT NOT NULL DEFAULT '',
    version          INTEGER NOT NULL DEFAULT 1,
    FOREIGN KEY (person_id, org_id) REFERENCES people (id, org_id)
) STRICT;
-- One active session per person.
CREATE UNIQUE INDEX sessions_one_active ON sessions (person_id) WHERE state = 'active';
CREATE INDEX sessions_org_started ON sessions (org_id, started_at);
CREATE INDEX sessions_person_started ON sessions (person_id, started_at);

CREATE TABLE session_presets (
    org_id           TEXT NOT NULL REFERENCES orgs (id),
    name             TEXT NOT NULL,
    duration         INTEGER NOT NULL,
    checkin_interval INTEGER NOT NULL,
    grace            INTEGER NOT NULL,
    PRIMARY KEY (org_id, name)
) STRICT;

CREATE TABLE geofences (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    name       TEXT NOT NULL,
    feature    TEXT NOT NULL, -- a GeoJSON Feature
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX geofences_org ON geofences (org_id, id);
