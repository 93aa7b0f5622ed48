-- Vigil schema 1 (PostgreSQL). Times are timestamptz (microseconds, UTC);
-- NULL stands for "never" / zero time.

CREATE TABLE orgs (
    id         text PRIMARY KEY,
    name       text NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE TABLE people (
    id         text PRIMARY KEY,
    org_id     text NOT NULL REFERENCES orgs (id),
    kind       text NOT NULL CHECK (kind IN ('worker', 'resident')),
    name       text NOT NULL,
    created_at timestamptz NOT NULL,
    UNIQUE (id, org_id)
);
CREATE INDEX people_org ON people (org_id, id);

CREATE TABLE devices (
    id               text PRIMARY KEY,
    org_id           text NOT NULL REFERENCES orgs (id),
    name             text NOT NULL,
    person_id        text,
    secret_hash      bytea,
    cert_fingerprint text NOT NULL DEFAULT '',
    firmware         text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL,
    disabled_at      timestamptz,
    -- state projected from events
    last_seen        timestamptz,
    last_lat         double precision,
    last_lon         double precision,
    last_accuracy_m  double precision,
    last_speed       double precision,
    last_heading     double precision,
    last_altitude    double precision,
    last_fix_time    timestamptz,
    position_time    timestamptz,
    battery          integer,
    charging         boolean NOT NULL DEFAULT false,
    battery_time     timestamptz,
    event_count      bigint NOT NULL DEFAULT 0,
    -- a device can only be assigned to a person of its own organisation
    FOREIGN KEY (person_id, org_id) REFERENCES people (id, org_id)
);
CREATE INDEX devices_org ON devices (org_id, id);
CREATE INDEX devices_person ON devices (person_id);

CREATE TABLE events (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id      text NOT NULL,
    device_id   text NOT NULL REFERENCES devices (id),
    msg_id      text NOT NULL,
    type        text NOT NULL,
    device_time timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    source      text NOT NULL,
    late        boolean NOT NULL,
    -- the event as event.Marshal encodes it; json (not jsonb) keeps the
    -- bytes verbatim and accepts any string a device may send
    body        json NOT NULL,
    UNIQUE (device_id, msg_id)
);
CREATE INDEX events_device_seq ON events (device_id, seq);

CREATE TABLE positions (
    device_id   text NOT NULL REFERENCES devices (id),
    msg_id      text NOT NULL,
    device_time timestamptz NOT NULL,
    late        boolean NOT NULL,
    lat         double precision NOT NULL,
    lon         double precision NOT NULL,
    accuracy_m  double precision NOT NULL,
    speed       double precision,
    heading     double precision,
    altitude    double precision,
    fix_time    timestamptz,
    PRIMARY KEY (device_id, msg_id)
);
CREATE INDEX positions_device_time ON positions (device_id, device_time);

CREATE TABLE meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

-- Alerts: tables only; the alert engine's methods come with its issue.
CREATE TABLE alerts (
    id              text PRIMARY KEY,
    org_id          text NOT NULL REFERENCES orgs (id),
    device_id       text REFERENCES devices (id),
    person_id       text REFERENCES people (id),
    kind            text NOT NULL,
    severity        text NOT NULL,
    state           text NOT NULL,
    dedup_key       text NOT NULL UNIQUE,
    raised_at       timestamptz NOT NULL,
    acknowledged_at timestamptz,
    resolved_at     timestamptz,
    outcome         text NOT NULL DEFAULT '',
    note            text NOT NULL DEFAULT '',
    lat             double precision,
    lon             double precision,
    accuracy_m      double precision,
    position_time   timestamptz,
    duress          boolean NOT NULL DEFAULT false
);
CREATE INDEX alerts_org_state ON alerts (org_id, state, raised_at);

CREATE TABLE alert_events (
    alert_id text NOT NULL REFERENCES alerts (id),
    seq      integer NOT NULL,
    at       timestamptz NOT NULL,
    actor    text NOT NULL,
    action   text NOT NULL,
    detail   text NOT NULL DEFAULT '',
    PRIMARY KEY (alert_id, seq)
);
