-- Vigil schema 13 (SQLite): a device flagged for misbehaving (ACL
-- denials, floods, impossible travel) is quarantined: commands to it are
-- blocked and supervisors see why. quarantined_at is Unix nanoseconds, 0
-- when not quarantined.
ALTER TABLE devices ADD COLUMN quarantined_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN quarantine_reason TEXT NOT NULL DEFAULT '';
