-- Vigil schema 11 (SQLite): device enrolment tokens. A token is single
-- use, short-lived and bound to one device; only its SHA-256 is kept.
-- Times are Unix nanoseconds; used_at 0 while unused.
CREATE TABLE enrolment_tokens (
    token_hash BLOB PRIMARY KEY,
    device_id  TEXT NOT NULL REFERENCES devices (id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX enrolment_tokens_device ON enrolment_tokens (device_id);
