-- Vigil schema 1 (SQLite). Times are INTEGER Unix nanoseconds, UTC;
-- NULL stands for "never" / zero time. Booleans are INTEGER 0/1.

CREATE TABLE orgs (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE people (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    kind       TEXT NOT NULL CHECK (kind IN ('worker', 'resident')),
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (id, org_id)
) STRICT;
CREATE INDEX people_org ON people (org_id, id);

CREATE TABLE devices (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES orgs (id),
    name             TEXT NOT NULL,
    person_id        TEXT,
    secret_hash      BLOB,
    cert_fingerprint TEXT NOT NULL DEFAULT '',
    firmware         TEXT NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL,
    disabled_at      INTEGER,
    -- state projected from events
    last_seen        INTEGER,
    last_lat         REAL,
    last_lon         REAL,
    last_accuracy_m  REAL,
    last_speed       REAL,
    last_heading     REAL,
    last_altitude    REAL,
    last_fix_time    INTEGER,
    position_time    INTEGER,
    battery          INTEGER,
    charging         INTEGER NOT NULL DEFAULT 0,
    battery_time     INTEGER,
    event_count      INTEGER NOT NULL DEFAULT 0,
    -- a device can only be assigned to a person of its own organisation
    FOREIGN KEY (person_id, org_id) REFERENCES people (id, org_id)
) STRICT;
CREATE INDEX devices_org ON devices (org_id, id);
CREATE INDEX devices_person ON devices (person_id);

CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id      TEXT NOT NULL,
    device_id   TEXT NOT NULL REFERENCES devices (id),
    msg_id      TEXT NOT NULL,
    type        TEXT NOT NULL,
    device_time INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    source      TEXT NOT NULL,
    late        INTEGER NOT NULL,
    body        TEXT NOT NULL, -- the event as event.Marshal encodes it
    UNIQUE (device_id, msg_id)
) STRICT;
CREATE INDEX events_device_seq ON events (device_id, seq);

CREATE TABLE positions (
    device_id   TEXT NOT NULL REFERENCES devices (id),
    msg_id      TEXT NOT NULL,
    device_time INTEGER NOT NULL,
    late        INTEGER NOT NULL,
    lat         REAL NOT NULL,
    lon         REAL NOT NULL,
    accuracy_m  REAL NOT NULL,
    speed       REAL,
    heading     REAL,
    altitude    REAL,
    fix_time    INTEGER,
    PRIMARY KEY (device_id, msg_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX positions_device_time ON positions (device_id, device_time);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

-- Alerts: tables only; the alert engine's methods come with its issue.
CREATE TABLE alerts (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES orgs (id),
    device_id       TEXT REFERENCES devices (id),
    person_id       TEXT REFERENCES people (id),
    kind            TEXT NOT NULL,
    severity        TEXT NOT NULL,
    state           TEXT NOT NULL,
    dedup_key       TEXT NOT NULL UNIQUE,
    raised_at       INTEGER NOT NULL,
    acknowledged_at INTEGER,
    resolved_at     INTEGER,
    outcome         TEXT NOT NULL DEFAULT '',
    note            TEXT NOT NULL DEFAULT '',
    lat             REAL,
    lon             REAL,
    accuracy_m      REAL,
    position_time   INTEGER,
    duress          INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX alerts_org_state ON alerts (org_id, state, raised_at);

CREATE TABLE alert_events (
    alert_id TEXT NOT NULL REFERENCES alerts (id),
    seq      INTEGER NOT NULL,
    at       INTEGER NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    detail   TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (alert_id, seq)
) STRICT;
