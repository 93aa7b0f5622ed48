-- Vigil schema 11 (PostgreSQL): device enrolment tokens. A token is single
-- use, short-lived and bound to one device; only its SHA-256 is kept.
-- Times are Unix nanoseconds; used_at 0 while unused. No foreign key to
-- devices (as elsewhere in this dialect): CreateEnrolmentToken checks the
-- device in the same statement.
CREATE TABLE enrolment_tokens (
    token_hash bytea PRIMARY KEY,
    device_id  text NOT NULL,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    used_at    bigint NOT NULL DEFAULT 0
);
CREATE INDEX enrolment_tokens_device ON enrolment_tokens (device_id);
