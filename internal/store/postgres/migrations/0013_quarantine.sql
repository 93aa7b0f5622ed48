-- Vigil schema 13 (PostgreSQL): a device flagged for misbehaving (ACL
-- denials, floods, impossible travel) is quarantined: commands to it are
-- blocked and supervisors see why. quarantined_at is NULL when not.
ALTER TABLE devices ADD COLUMN quarantined_at timestamptz;
ALTER TABLE devices ADD COLUMN quarantine_reason text NOT NULL DEFAULT '';
