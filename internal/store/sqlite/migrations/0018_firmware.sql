-- Vigil schema 18 (SQLite): signed firmware updates (issue 8).
-- firmware_roots keeps every root version of the image repository (signed
-- offline) and of the director (signed online); firmware_meta the current
-- targets, snapshot and timestamp of each repository ("image",
-- "device:ID"); firmware_images the approved images with their bytes.
-- Rollouts are per organisation; firmware_rollout_devices counts who
-- installed or failed; firmware_devices is each device's last report.
CREATE TABLE firmware_roots (
    repo       TEXT NOT NULL,
    version    INTEGER NOT NULL CHECK (version >= 1),
    body       BLOB NOT NULL,
    expires_at INTEGER,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (repo, version)
) STRICT;

CREATE TABLE firmware_meta (
    repo       TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('targets', 'snapshot', 'timestamp')),
    version    INTEGER NOT NULL,
    body       BLOB NOT NULL,
    expires_at INTEGER,
    covers     TEXT NOT NULL DEFAULT '',
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (repo, role)
) STRICT;

CREATE TABLE firmware_images (
    name            TEXT PRIMARY KEY,
    hardware        TEXT NOT NULL,
    version         TEXT NOT NULL,
    known_problem   INTEGER NOT NULL DEFAULT 0,
    length          INTEGER NOT NULL,
    sha256          TEXT NOT NULL,
    targets_version INTEGER NOT NULL,
    bytes           BLOB NOT NULL,
    created_at      INTEGER NOT NULL
) STRICT;

CREATE TABLE firmware_rollouts (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES orgs (id),
    name           TEXT NOT NULL DEFAULT '',
    image          TEXT NOT NULL REFERENCES firmware_images (name),
    devices        TEXT NOT NULL DEFAULT '[]', -- JSON array of device ids; empty: all
    percent        INTEGER NOT NULL CHECK (percent BETWEEN 0 AND 100),
    paused         INTEGER NOT NULL DEFAULT 0,
    paused_reason  TEXT NOT NULL DEFAULT '',
    pause_failures INTEGER NOT NULL,
    pause_percent  INTEGER NOT NULL,
    created_by     TEXT NOT NULL DEFAULT '',
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX firmware_rollouts_org ON firmware_rollouts (org_id, created_at);

CREATE TABLE firmware_rollout_devices (
    rollout_id TEXT NOT NULL REFERENCES firmware_rollouts (id),
    device_id  TEXT NOT NULL REFERENCES devices (id),
    state      TEXT NOT NULL CHECK (state IN ('installed', 'failed')),
    at         INTEGER NOT NULL,
    PRIMARY KEY (rollout_id, device_id)
) STRICT;

CREATE TABLE firmware_devices (
    device_id           TEXT PRIMARY KEY REFERENCES devices (id),
    org_id              TEXT NOT NULL,
    version             TEXT NOT NULL,
    state               TEXT NOT NULL,
    error               TEXT NOT NULL DEFAULT '',
    refusal             TEXT NOT NULL DEFAULT '',
    rollout_id          TEXT NOT NULL DEFAULT '',
    checked_at          INTEGER NOT NULL,
    version_since       INTEGER NOT NULL,
    problem_reported_at INTEGER
) STRICT;
CREATE INDEX firmware_devices_org ON firmware_devices (org_id);
