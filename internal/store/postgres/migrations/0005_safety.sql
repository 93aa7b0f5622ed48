-- Vigil schema 5 (PostgreSQL): the safety engine's tables. The alerts and
-- alert_events tables of schema 1 were placeholders that nothing wrote;
-- they are replaced.
DROP TABLE alert_events;
DROP TABLE alerts;

-- Where workers' positions may be kept: 'on_duty' keeps a worker's
-- positions only during an active session or an open alert; 'always'
-- keeps them all. Residents' positions are always kept.
ALTER TABLE orgs ADD COLUMN location_policy text NOT NULL DEFAULT 'on_duty'
    CHECK (location_policy IN ('on_duty', 'always'));

-- A person's duress code (given instead of a cancel PIN): SHA-256 over the
-- person id and the code, NULL when none is set.
ALTER TABLE people ADD COLUMN duress_code_hash bytea;

CREATE TABLE alerts (
    id              text PRIMARY KEY,
    org_id          text NOT NULL REFERENCES orgs (id),
    device_id       text NOT NULL DEFAULT '',
    person_id       text NOT NULL DEFAULT '',
    session_id      text NOT NULL DEFAULT '',
    kind            text NOT NULL,
    severity        text NOT NULL,
    state           text NOT NULL CHECK (state IN ('pending', 'raised', 'acknowledged', 'resolved', 'cancelled')),
    dedup_key       text NOT NULL,
    raised_at       timestamptz NOT NULL,
    cause_time      timestamptz NOT NULL,
    pending_until   timestamptz,
    cancel_until    timestamptz,
    acknowledged_at timestamptz,
    acknowledged_by text NOT NULL DEFAULT '',
    closed_at       timestamptz,
    closed_by       text NOT NULL DEFAULT '',
    outcome         text NOT NULL DEFAULT '',
    outcome_note    text NOT NULL DEFAULT '',
    note            text NOT NULL DEFAULT '',
    detail          text NOT NULL DEFAULT '',
    lat             double precision,
    lon             double precision,
    accuracy_m      double precision,
    fix_time        timestamptz,
    position_time   timestamptz,
    duress          boolean NOT NULL DEFAULT false,
    late            boolean NOT NULL DEFAULT false,
    version         bigint NOT NULL DEFAULT 1,
    updated_at      timestamptz NOT NULL
);
-- At most one open alert per cause.
CREATE UNIQUE INDEX alerts_open_dedup ON alerts (dedup_key)
    WHERE state IN ('pending', 'raised', 'acknowledged');
CREATE INDEX alerts_org_raised ON alerts (org_id, raised_at);
CREATE INDEX alerts_person_raised ON alerts (person_id, raised_at);
CREATE INDEX alerts_device_raised ON alerts (device_id, raised_at);
CREATE INDEX alerts_open ON alerts (state) WHERE state IN ('pending', 'raised', 'acknowledged');

CREATE TABLE alert_entries (
    alert_id text NOT NULL REFERENCES alerts (id),
    seq      integer NOT NULL,
    at       timestamptz NOT NULL,
    actor    text NOT NULL,
    action   text NOT NULL,
    detail   text NOT NULL DEFAULT '',
    cause    text,
    PRIMARY KEY (alert_id, seq)
);
-- A cause (an event, a deadline) is recorded once across all alerts.
CREATE UNIQUE INDEX alert_entries_cause ON alert_entries (cause) WHERE cause IS NOT NULL;

CREATE TABLE sessions (
    id               text PRIMARY KEY,
    org_id           text NOT NULL REFERENCES orgs (id),
    person_id        text NOT NULL,
    device_id        text NOT NULL DEFAULT '',
    preset           text NOT NULL DEFAULT '',
    note             text NOT NULL DEFAULT '',
    started_at       timestamptz NOT NULL,
    expected_end     timestamptz NOT NULL,
    checkin_interval bigint NOT NULL, -- nanoseconds
    grace            bigint NOT NULL, -- nanoseconds
    last_checkin     timestamptz NOT NULL,
    state            text NOT NULL CHECK (state IN ('active', 'ended')),
    ended_at         timestamptz,
    ended_by         text NOT NULL DEFAULT '',
    version          bigint NOT NULL DEFAULT 1,
    FOREIGN KEY (person_id, org_id) REFERENCES people (id, org_id)
);
-- One active session per person.
CREATE UNIQUE INDEX sessions_one_active ON sessions (person_id) WHERE state = 'active';
CREATE INDEX sessions_org_started ON sessions (org_id, started_at);
CREATE INDEX sessions_person_started ON sessions (person_id, started_at);

CREATE TABLE session_presets (
    org_id           text NOT NULL REFERENCES orgs (id),
    name             text NOT NULL,
    duration         bigint NOT NULL,
    checkin_interval bigint NOT NULL,
    grace            bigint NOT NULL,
    PRIMARY KEY (org_id, name)
);

CREATE TABLE geofences (
    id         text PRIMARY KEY,
    org_id     text NOT NULL REFERENCES orgs (id),
    name       text NOT NULL,
    feature    text NOT NULL, -- a GeoJSON Feature
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX geofences_org ON geofences (org_id, id);
