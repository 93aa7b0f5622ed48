-- Vigil schema 18 (PostgreSQL): signed firmware updates (issue 8).
-- firmware_roots keeps every root version of the image repository (signed
-- offline) and of the director (signed online); firmware_meta the current
-- targets, snapshot and timestamp of each repository ("image",
-- "device:ID"); firmware_images the approved images with their bytes.
-- Rollouts are per organisation; firmware_rollout_devices counts who
-- installed or failed; firmware_devices is each device's last report.
CREATE TABLE firmware_roots (
    repo       text NOT NULL,
    version    bigint NOT NULL CHECK (version >= 1),
    body       bytea NOT NULL,
    expires_at timestamptz,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (repo, version)
);

CREATE TABLE firmware_meta (
    repo       text NOT NULL,
    role       text NOT NULL CHECK (role IN ('targets', 'snapshot', 'timestamp')),
    version    bigint NOT NULL,
    body       bytea NOT NULL,
    expires_at timestamptz,
    covers     text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (repo, role)
);

CREATE TABLE firmware_images (
    name            text PRIMARY KEY,
    hardware        text NOT NULL,
    version         text NOT NULL,
    known_problem   boolean NOT NULL DEFAULT false,
    length          bigint NOT NULL,
    sha256          text NOT NULL,
    targets_version bigint NOT NULL,
    bytes           bytea NOT NULL,
    created_at      timestamptz NOT NULL
);

CREATE TABLE firmware_rollouts (
    id             text PRIMARY KEY,
    org_id         text NOT NULL REFERENCES orgs (id),
    name           text NOT NULL DEFAULT '',
    image          text NOT NULL REFERENCES firmware_images (name),
    devices        text NOT NULL DEFAULT '[]', -- JSON array of device ids; empty: all
    percent        integer NOT NULL CHECK (percent BETWEEN 0 AND 100),
    paused         boolean NOT NULL DEFAULT false,
    paused_reason  text NOT NULL DEFAULT '',
    pause_failures integer NOT NULL,
    pause_percent  integer NOT NULL,
    created_by     text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);
CREATE INDEX firmware_rollouts_org ON firmware_rollouts (org_id, created_at);

CREATE TABLE firmware_rollout_devices (
    rollout_id text NOT NULL REFERENCES firmware_rollouts (id),
    device_id  text NOT NULL REFERENCES devices (id),
    state      text NOT NULL CHECK (state IN ('installed', 'failed')),
    at         timestamptz NOT NULL,
    PRIMARY KEY (rollout_id, device_id)
);

CREATE TABLE firmware_devices (
    device_id           text PRIMARY KEY REFERENCES devices (id),
    org_id              text NOT NULL,
    version             text NOT NULL,
    state               text NOT NULL,
    error               text NOT NULL DEFAULT '',
    refusal             text NOT NULL DEFAULT '',
    rollout_id          text NOT NULL DEFAULT '',
    checked_at          timestamptz NOT NULL,
    version_since       timestamptz NOT NULL,
    problem_reported_at timestamptz
);
CREATE INDEX firmware_devices_org ON firmware_devices (org_id);
